package main

// The bad-input table: every command with missing, extra, negative, huge,
// unaligned and malformed arguments; images that do not exist, are
// directories or may not be opened; writes to read-only images; ENOSPC
// from blkdebug and from a full file system; an image truncated
// underneath gio; and every case where qemu-io 7.2 crashes or hangs
// (reference §10). Each row states gio's complete output (after
// _filter_qemu_io) and exit status, and checks that gio neither panics nor
// stops: the bad command is followed by "length", whose answer must
// appear. Where qemu-io has an answer the row also runs qemu-io in an
// identical directory and compares output, exit status and files; where
// qemu-io crashes or hangs the row says so and checks that it still does.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gio/internal/cvt"
)

// qemuFate says what qemu-io does with a row.
type qemuFate int

const (
	qemuCompare qemuFate = iota // run qemu-io and compare
	qemuCrashes                 // qemu-io dies of a signal
	qemuHangs                   // qemu-io never finishes
)

// step is one line of a stdin-mode row; before runs (in the case
// directory) while gio waits at the prompt for that line.
type step struct {
	line   string
	before func(t *testing.T, dir string)
}

type badRow struct {
	name string
	// size of img.raw (1 MiB when 0, none when -1).
	size int64
	// setup prepares the case directory before img.raw is made (a small
	// tmpfs, a subdirectory, a file without permission); it may skip.
	setup func(t *testing.T, dir string)
	files map[string]string
	args  []string
	// steps, if set, are fed on stdin one at a time (args has no -c).
	steps []step
	want  string
	rc    int
	qemu  qemuFate
	// follows is the output of the "length" that follows the bad input
	// and must appear ("1 MiB\n" unless set; "-" when the bad input ends
	// the run: a start-up failure, quit).
	follows string
	// full says want already holds the output of the final length (it is
	// not the last thing printed).
	full bool
	// noFiles skips comparing the final files with qemu-io's (how much
	// of a failed write reached a full file system is its business).
	noFiles bool
}

const (
	length1M = "1 MiB\n"
	lim      = "2147483136"

	readUsage     = "read [-abCqv] [-P pattern [-s off] [-l len]] off len -- reads a number of bytes at a specified offset\n"
	writeUsage    = "write [-bcCfnquz] [-P pattern | -s source_file] off len -- writes a number of bytes at a specified offset\n"
	writevUsage   = "writev [-Cfq] [-P pattern] off len [len..] -- writes a number of bytes at a specified offset\n"
	discardUsage  = "discard [-Cq] off len -- discards a number of bytes at a specified offset\n"
	truncateUsage = "truncate [-m prealloc_mode] off -- truncates the current file at the given offset\n"
	reopenUsage   = "reopen [(-r|-w)] [-c cache] [-o options] -- reopens an image with new options\n"
	parseErr      = "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- "
	roErr         = "qemu-io: Block node is read-only\n"
)

// rep is a filtered two-line I/O report.
func rep(op string, n, off int64) string {
	return fmt.Sprintf("%s %d/%d bytes at offset %d\n%s, X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)\n", op, n, n, off, cvt.Size(float64(n)))
}

// bad runs commands on img.raw (-f raw), then length.
func bad(cs ...string) []string { return badWith([]string{"-f", "raw"}, "img.raw", cs...) }

// badWith is options, the commands and length as -c, then the image.
func badWith(opts []string, image string, cs ...string) []string {
	a := append([]string(nil), opts...)
	for _, c := range append(cs, "length") {
		a = append(a, "-c", c)
	}
	if image != "" {
		a = append(a, image)
	}
	return a
}

// badRO is bad on a read-only image.
func badRO(cs ...string) []string { return badWith([]string{"-r", "-f", "raw"}, "img.raw", cs...) }

// badBD runs commands on raw over blkdebug (extra options with file.).
func badBD(extra string, cs ...string) []string {
	s := "driver=raw,file.driver=blkdebug,file.image.filename=img.raw"
	if extra != "" {
		s += "," + extra
	}
	return badWith([]string{"--image-opts"}, s, cs...)
}

// injected is raw over blkdebug with one inject-error rule.
func injected(rule string, cs ...string) []string { return injectedWith(nil, rule, cs...) }

// injectedWith is injected with more program options.
func injectedWith(opts []string, rule string, cs ...string) []string {
	return badWith(opts, `json:{"driver":"raw","file":{"driver":"blkdebug","image":{"driver":"file","filename":"img.raw"},"inject-error":[{`+rule+`}]}}`, cs...)
}

// startup runs a program invocation whose image never opens.
func startup(args ...string) []string { return append(args, "-c", "length") }

// mkdirSub makes the directory "sub" in the case directory.
func mkdirSub(t *testing.T, dir string) {
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// noPerm makes noperm.raw, which nobody may read or write; root may, so
// the row is skipped there.
func noPerm(t *testing.T, dir string) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores file permissions")
	}
	p := filepath.Join(dir, "noperm.raw")
	if err := os.WriteFile(p, make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
}

// smallFS mounts a 512 KiB tmpfs on the case directory, or skips.
func smallFS(t *testing.T, dir string) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("no tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// truncateImg returns a step hook that resizes img.raw behind the
// program's back.
func truncateImg(size int64) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		if err := os.Truncate(filepath.Join(dir, "img.raw"), size); err != nil {
			t.Fatal(err)
		}
	}
}

func badRows() []badRow {
	eio := func(op string) string { return op + " failed: Input/output error\n" }
	enospc := func(op string) string { return op + " failed: No space left on device\n" }
	count := func(n int, cmd, exp string) string {
		return fmt.Sprintf("bad argument count %d to %s, expected %s\n", n, cmd, exp)
	}
	return []badRow{
		// ---- read ----
		{name: "read/past-end", args: bad("read 1M 1"), want: eio("read"), rc: 1},
		{name: "read/empty-at-end", args: bad("read 1M 0"), want: rep("read", 0, mb)},
		{name: "read/empty-past-end", args: bad("read 2M 0"), want: eio("read"), rc: 1},
		{name: "read/straddles-end", args: bad("read 1020k 8k"), want: eio("read"), rc: 1},
		{name: "read/negative-offset", args: bad("read -1 1"), want: "read: invalid option -- '1'\n" + readUsage, rc: 1},
		{name: "read/negative-length", args: bad("read 0 -1"), want: "read: invalid option -- '1'\n" + readUsage, rc: 1},
		{name: "read/bare-hex-prefix", args: bad("read 0x 1"), want: parseErr + "0x\n", rc: 1},
		{name: "read/bad-suffix", args: bad("read 0 1Q"), want: parseErr + "1Q\n", rc: 1},
		{name: "read/length-2G", args: bad("read 0 2G"), want: "length cannot exceed " + lim + ", given 2G\n", rc: 1},
		{name: "read/length-1E", args: bad("read 0 1E"), want: "length cannot exceed " + lim + ", given 1E\n", rc: 1},
		{name: "read/offset-1E", args: bad("read 1E 1"), want: eio("read"), rc: 1},
		{name: "read/offset-8E", args: bad("read 8E 1"), want: "Parsing error: argument too large -- 8E\n", rc: 1},
		{name: "read/offset-int64-max", args: bad("read 9223372036854775807 1"), want: eio("read"), rc: 1},
		{name: "read/extra-argument", args: bad("read 0 1 2"), want: readUsage, rc: 1},
		{name: "read/one-argument", args: bad("read 0"), want: count(1, "read", "at least 2 arguments"), rc: 1},
		{name: "read/no-arguments", args: bad("read"), want: count(0, "read", "at least 2 arguments"), rc: 1},
		{name: "read/alias-one-argument", args: bad("r 0"), want: count(1, "r", "at least 2 arguments"), rc: 1},
		{name: "read/only-flags", args: bad("read -v 0"), want: readUsage, rc: 1},
		{name: "read/pattern-300", args: bad("read -P 300 0 1"), want: "300 is not a valid pattern byte\n", rc: 1},
		{name: "read/s-without-P", args: bad("read -s 1 0 1"), want: readUsage, rc: 1},
		{name: "read/pattern-range-past-data", args: bad("read -P 1 -s 2 0 1"), want: "pattern verification range exceeds end of read data\n", rc: 1},
		{name: "read/pattern-mismatch", args: bad("read -P 1 0 512"), want: "Pattern verification failed at offset 0, 512 bytes\n" + rep("read", 512, 0), rc: 1},
		{name: "read/b-unaligned-count", args: bad("read -b 0 1"), want: "1 is not a sector-aligned value for 'count'\n", rc: 1},
		{name: "read/b-unaligned-offset", args: bad("read -b 1 512"), want: "1 is not a sector-aligned value for 'offset'\n", rc: 1},
		{name: "read/unknown-flag", args: bad("read -x 0 1"), want: "read: invalid option -- 'x'\n" + readUsage, rc: 1},
		{name: "read/flag-missing-argument", args: bad("read 0 1 -P"), want: "read: option requires an argument -- 'P'\n" + readUsage, rc: 1},
		{name: "read/tab-is-no-separator", args: bad("read\t0 512"), want: "command \"read\t0\" not found\n", rc: 1},

		// ---- write ----
		{name: "write/straddles-end", args: bad("write 1020k 8k"), want: eio("write"), rc: 1},
		{name: "write/past-end", args: bad("write 1M 1"), want: eio("write"), rc: 1},
		{name: "write/empty-at-end", args: bad("write 1M 0"), want: rep("wrote", 0, mb)},
		{name: "write/length-2G", args: bad("write 0 2G"), want: "length cannot exceed " + lim + " without -n, given 2G\n", rc: 1},
		{name: "write/length-1E", args: bad("write 0 1E"), want: "length cannot exceed " + lim + " without -n, given 1E\n", rc: 1},
		{name: "write/zeroes-2G-past-end", args: bad("write -z -n 0 2G"), want: eio("write"), rc: 1},
		{name: "write/zeroes-1E-past-end", args: bad("write -z -n 0 1E"), want: eio("write"), rc: 1},
		{name: "write/negative-length", args: bad("write 0 -5"), want: "write: invalid option -- '5'\n" + writeUsage, rc: 1},
		{name: "write/one-argument", args: bad("write 0"), want: count(1, "write", "at least 2 arguments"), rc: 1},
		{name: "write/extra-argument", args: bad("write 0 1 2"), want: writeUsage, rc: 1},
		{name: "write/compressed", args: bad("write -c 0 512"), want: "write failed: Operation not supported\n", rc: 1},
		{name: "write/compressed-unaligned", args: bad("write -c 1 512"), want: "1 is not a sector-aligned value for 'offset'\n", rc: 1},
		{name: "write/b-and-z", args: bad("write -b -z 0 512"), want: "-b and -z cannot be specified at the same time\n", rc: 1},
		{name: "write/source-missing", args: bad("write -s nonexist.bin 0 1"), want: "nonexist.bin: No such file or directory\n", rc: 1},
		{name: "write/source-directory", setup: mkdirSub, args: bad("write -s sub 0 1"), want: "sub: Is a directory\n", rc: 1},
		{name: "write/pattern-and-source", args: bad("write -P 1 -s x 0 1"), want: "Only one of -z, -P, and -s can be specified at the same time\n", rc: 1},
		{name: "write/u-without-z", args: bad("write -u 0 1"), want: "-u requires -z to be specified\n", rc: 1},
		{name: "write/n-without-z", args: bad("write -n 0 1"), want: "-n requires -z to be specified\n", rc: 1},
		{name: "write/pattern-word", args: bad("write -P abc 0 1"), want: "abc is not a valid pattern byte\n", rc: 1},
		{name: "write/pattern-0x100", args: bad("write -P 0x100 0 1"), want: "0x100 is not a valid pattern byte\n", rc: 1},

		// ---- readv / writev ----
		{name: "readv/too-long", args: bad("readv 0 2147483137"), want: "Argument '2147483137' exceeds maximum size " + lim + "\n", rc: 1},
		{name: "readv/total-too-long", args: bad("readv 0 1G 1G"), want: "The total number of bytes exceed the maximum size " + lim + "\n", rc: 1},
		{name: "readv/past-end", args: bad("readv 1M 1"), want: eio("readv"), rc: 1},
		{name: "readv/no-arguments", args: bad("readv"), want: count(0, "readv", "at least 2 arguments"), rc: 1},
		{name: "readv/empty", args: bad("readv 0 0"), want: rep("read", 0, 0)},
		{name: "readv/bad-length", args: bad("readv 0 512 x"), want: parseErr + "x\n", rc: 1},
		{name: "writev/past-end", args: bad("writev 1M 1"), want: eio("writev"), rc: 1},
		{name: "writev/negative-length", args: bad("writev 0 -5"), want: "writev: invalid option -- '5'\n" + writevUsage, rc: 1},
		{name: "writev/bad-length", args: bad("writev 0 1x"), want: parseErr + "1x\n", rc: 1},
		{name: "writev/one-argument", args: bad("writev 0"), want: count(1, "writev", "at least 2 arguments"), rc: 1},

		// ---- aio ----
		{name: "aio_read/past-end", args: bad("aio_read 1M 1", "aio_flush"), want: eio("readv")},
		{name: "aio_write/past-end", args: bad("aio_write 1M 1", "aio_flush"), want: eio("aio_write")},
		{name: "aio_write/z-with-lengths", args: bad("aio_write -z 0 1 1"), want: "-z supports only a single length parameter\n", rc: 1},
		{name: "aio_write/one-argument", args: bad("aio_write 0"), want: count(1, "aio_write", "at least 2 arguments"), rc: 1},
		{name: "aio_read/invalid-request", args: bad("aio_read -i x y"), want: "injecting invalid read request\n"},
		{name: "aio_read/pattern-mismatch", args: bad("aio_read -P 1 0 512", "aio_flush"), want: "Pattern verification failed at offset 0, 512 bytes\n" + rep("read", 512, 0)},
		{name: "aio_flush/extra-argument", args: bad("aio_flush x"), want: count(1, "aio_flush", "0 arguments"), rc: 1},

		// ---- discard ----
		{name: "discard/past-end", args: bad("discard 1M 1"), want: eio("discard"), rc: 1},
		{name: "discard/too-long", args: bad("discard 0 2147483137"), want: "length cannot exceed " + lim + ", given 2147483137\n", rc: 1},
		{name: "discard/negative-length", args: bad("discard 0 -1"), want: "discard: invalid option -- '1'\n" + discardUsage, rc: 1},
		{name: "discard/bad-offset", args: bad("discard x 1"), want: parseErr + "x\n", rc: 1},
		{name: "discard/one-argument", args: bad("discard 0"), want: count(1, "discard", "at least 2 arguments"), rc: 1},
		{name: "discard/unaligned", args: bad("discard 1 511"), want: rep("discard", 511, 1)},

		// ---- truncate ----
		{name: "truncate/bad-size", args: bad("truncate x"), want: parseErr + "x\n", rc: 1},
		{name: "truncate/bad-mode", args: bad("truncate -m bogus 16k"), want: "qemu-io: Invalid preallocation mode 'bogus'\n", rc: 1},
		{name: "truncate/mode-missing-argument", args: bad("truncate -m"), want: "truncate: option requires an argument -- 'm'\n" + truncateUsage, rc: 1},
		{name: "truncate/no-arguments", args: bad("truncate"), want: count(0, "truncate", "between 1 and 3 arguments"), rc: 1},
		{name: "truncate/four-arguments", args: bad("truncate 1 2 3 4"), want: count(4, "truncate", "between 1 and 3 arguments"), rc: 1},
		{name: "truncate/negative", args: bad("truncate -1"), want: "truncate: invalid option -- '1'\n" + truncateUsage, rc: 1},
		{name: "truncate/1E", args: bad("truncate 1E"), want: "qemu-io: Could not resize file: File too large\n", rc: 1},
		{name: "truncate/extra-word-ignored", args: bad("truncate 1M 2"), want: ""},

		// ---- alloc, map, length, info, flush ----
		{name: "alloc/negative", args: bad("alloc -1"), want: parseErr + "-1\n", rc: 1},
		{name: "alloc/no-arguments", args: bad("alloc"), want: count(0, "alloc", "between 1 and 2 arguments"), rc: 1},
		{name: "alloc/three-arguments", args: bad("alloc 0 1 2"), want: count(3, "alloc", "between 1 and 2 arguments"), rc: 1},
		{name: "alloc/past-end", args: bad("alloc 2M"), want: "0/0 bytes allocated at offset 2 MiB\n"},
		{name: "alloc/bad-count", args: bad("alloc 0 x"), want: parseErr + "x\n", rc: 1},
		{name: "map/argument", args: bad("map 1"), want: count(1, "map", "0 arguments"), rc: 1},
		{name: "length/argument", args: bad("length 1"), want: count(1, "length", "0 arguments"), rc: 1},
		{name: "info/argument", args: bad("info x"), want: count(1, "info", "0 arguments"), rc: 1},
		{name: "flush/argument", args: bad("flush x"), want: count(1, "flush", "0 arguments"), rc: 1},

		// ---- sleep, sigraise, help, unknown ----
		{name: "sleep/word", args: bad("sleep abc"), want: "abc is not a valid number\n", rc: 1},
		{name: "sleep/negative", args: bad("sleep -1"), want: "-1 is not a valid number\n", rc: 1},
		{name: "sleep/no-argument", args: bad("sleep"), want: count(0, "sleep", "1 arguments"), rc: 1},
		{name: "sigraise/too-large", args: bad("sigraise 99"), want: "signal argument '99' is too large to be a valid signal\n", rc: 1},
		{name: "sigraise/word", args: bad("sigraise abc"), want: parseErr + "abc\n", rc: 1},
		{name: "sigraise/negative", args: bad("sigraise -1"), want: parseErr + "-1\n", rc: 1},
		{name: "help/unknown-command", args: bad("help nosuch"), want: "command nosuch not found\n", rc: 1},
		{name: "help/two-arguments", args: bad("help read write"), want: count(2, "help", "between 0 and 1 arguments"), rc: 1},
		{name: "unknown-command", args: bad("nosuch"), want: "command \"nosuch\" not found\n", rc: 1},
		{name: "unknown-command-cr", args: bad("length\r"), want: "command \"length\r\" not found\n", rc: 1},
		{name: "quit/argument", args: bad("quit 1"), want: "", follows: "-"},

		// ---- breakpoints ----
		{name: "break/one-argument", args: bad("break read_aio"), want: count(1, "break", "2 arguments"), rc: 1},
		{name: "break/unknown-event", args: badBD("", "break bogus X"), want: "Could not set breakpoint: No such file or directory\n", rc: 1},
		{name: "break/no-blkdebug", args: bad("break read_aio X"), want: "Could not set breakpoint: Operation not supported\n", rc: 1},
		{name: "resume/no-blkdebug", args: bad("resume X"), want: "Could not resume request: Operation not supported\n", rc: 1},
		{name: "resume/unknown-tag", args: badBD("", "resume X"), want: "Could not resume request: No such file or directory\n", rc: 1},
		{name: "remove_break/no-blkdebug", args: bad("remove_break X"), want: "Could not remove breakpoint X: Operation not supported\n", rc: 1},
		{name: "remove_break/unknown-tag", args: badBD("", "remove_break X"), want: "Could not remove breakpoint X: No such file or directory\n", rc: 1},
		{name: "wait_break/no-argument", args: bad("wait_break"), want: count(0, "wait_break", "1 arguments"), rc: 1},

		// ---- open, close, reopen ----
		{name: "open/no-arguments", args: bad("open"), want: count(0, "open", "at least 1 arguments"), rc: 1},
		{name: "open/already-open", args: bad("open img.raw"), want: "qemu-io: file open already, try 'help close'\n", rc: 1},
		{name: "open/nonexistent", args: bad("close", "open -o driver=raw nonexist.raw", "open -o driver=raw img.raw"),
			want: "qemu-io: can't open device nonexist.raw: Could not open 'nonexist.raw': No such file or directory\n", rc: 1},
		{name: "open/directory", setup: mkdirSub, args: bad("close", "open -o driver=raw sub", "open -o driver=raw img.raw"),
			want: "qemu-io: can't open device sub: Could not open 'sub': Is a directory\n", rc: 1},
		{name: "open/no-permission", setup: noPerm, args: bad("close", "open -o driver=raw noperm.raw", "open -o driver=raw img.raw"),
			want: "qemu-io: can't open device noperm.raw: Could not open 'noperm.raw': Permission denied\n", rc: 1},
		{name: "open/unknown-option", args: bad("close", "open -o driver=raw,bogus=1 img.raw", "open -o driver=raw img.raw"),
			want: "qemu-io: can't open device img.raw: Block format 'raw' does not support the option 'bogus'\n", rc: 1},
		{name: "close/then-read", args: bad("close", "read 0 1", "open -o driver=raw img.raw"), want: "no file open, try 'help open'\n", rc: 1},
		{name: "close/argument", args: bad("close x"), want: count(1, "close", "0 arguments"), rc: 1},
		{name: "reopen/r-and-w", args: bad("reopen -r -w"), want: "qemu-io: Only one -r/-w option may be given\n", rc: 1},
		{name: "reopen/bad-cache", args: bad("reopen -c bogus"), want: "qemu-io: Invalid cache option: bogus\n", rc: 1},
		{name: "reopen/unknown-option", args: bad("reopen -o bogus=1"), want: "qemu-io: Cannot change the option 'bogus'\n", rc: 1},
		{name: "reopen/extra-argument", args: bad("reopen x"), want: reopenUsage, rc: 1},

		// ---- the command line and the image at start-up ----
		{name: "start/nonexistent", size: -1, args: startup("-f", "raw", "nonexist.raw"),
			want: "qemu-io: can't open device nonexist.raw: Could not open 'nonexist.raw': No such file or directory\n", rc: 1, follows: "-"},
		{name: "start/directory", setup: mkdirSub, args: startup("-f", "raw", "sub"),
			want: "qemu-io: can't open device sub: Could not open 'sub': Is a directory\n", rc: 1, follows: "-"},
		{name: "start/no-permission", setup: noPerm, args: startup("-f", "raw", "noperm.raw"),
			want: "qemu-io: can't open device noperm.raw: Could not open 'noperm.raw': Permission denied\n", rc: 1, follows: "-"},
		{name: "start/no-permission-read-only", setup: noPerm, args: startup("-r", "-f", "raw", "noperm.raw"),
			want: "qemu-io: can't open device noperm.raw: Could not open 'noperm.raw': Permission denied\n", rc: 1, follows: "-"},
		{name: "start/unknown-driver", args: startup("-f", "bogus", "img.raw"),
			want: "qemu-io: can't open device img.raw: Unknown driver 'bogus'\n", rc: 1, follows: "-"},
		{name: "start/unknown-option", args: startup("-x", "img.raw"), want: "qemu-io: invalid option -- 'x'\n" + usageText, rc: 1, follows: "-"},
		{name: "start/unknown-long-option", args: startup("--bogus", "img.raw"), want: "qemu-io: unrecognized option '--bogus'\n" + usageText, rc: 1, follows: "-"},
		{name: "start/missing-argument", args: []string{"img.raw", "-f"}, want: "qemu-io: option requires an argument -- 'f'\n" + usageText, rc: 1, follows: "-"},
		{name: "start/bad-cache", args: startup("-t", "bogus", "img.raw"), want: "qemu-io: Invalid cache option: bogus\n", rc: 1, follows: "-"},
		{name: "start/bad-aio", args: startup("-i", "bogus", "img.raw"), want: "qemu-io: Invalid aio option: bogus\n", rc: 1, follows: "-"},
		{name: "start/bad-discard", args: startup("-d", "bogus", "img.raw"), want: "qemu-io: Invalid discard option: bogus\n", rc: 1, follows: "-"},
		{name: "start/two-images", args: startup("-f", "raw", "img.raw", "img.raw"), want: usageText, rc: 1, follows: "-"},
		{name: "start/image-opts-and-format", args: startup("-f", "raw", "--image-opts", "driver=raw,file.filename=img.raw"),
			want: "qemu-io: --image-opts and -f are mutually exclusive\n", rc: 1, follows: "-"},
		{name: "start/native-aio-without-direct", args: startup("-k", "-f", "raw", "img.raw"),
			want: "qemu-io: can't open device img.raw: aio=native was specified, but it requires cache.direct=on, which was not specified.\n", rc: 1, follows: "-"},
		{name: "start/force-share-writable", args: startup("-U", "-f", "raw", "img.raw"),
			want: "qemu-io: can't open device img.raw: force-share=on can only be used with read-only images\n", rc: 1, follows: "-"},
		{name: "start/blkdebug-without-image", args: startup("-f", "raw", "blkdebug:img.raw"),
			want: "qemu-io: can't open device blkdebug:img.raw: blkdebug requires both config file and image path\n", rc: 1, follows: "-"},
		{name: "start/blkdebug-missing-config", args: startup("-f", "raw", "blkdebug:nonexist.cfg:img.raw"),
			want: "qemu-io: can't open device blkdebug:nonexist.cfg:img.raw: Could not read blkdebug config file: No such file or directory\n", rc: 1, follows: "-"},
		{name: "start/bad-json", args: startup("json:{bad"),
			want: "qemu-io: can't open device json:{bad: Could not parse the JSON options: JSON parse error, invalid keyword 'bad'\n", rc: 1, follows: "-"},
		{name: "start/blkdebug-align-3", args: startup("--image-opts", "driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.align=3"),
			want: "qemu-io: can't open: Cannot meet constraints with align 3\n", rc: 1, follows: "-"},
		{name: "start/blkdebug-max-transfer-unaligned", args: startup("--image-opts", "driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.align=4096,file.max-transfer=1000"),
			want: "qemu-io: can't open: Cannot meet constraints with max-transfer 1000\n", rc: 1, follows: "-"},

		// ---- writes on a read-only image ----
		{name: "read-only/write", args: badRO("write 0 512"), want: roErr, rc: 1},
		{name: "read-only/write-zeroes", args: badRO("write -z 0 512"), want: roErr, rc: 1},
		{name: "read-only/writev", args: badRO("writev 0 512"), want: roErr, rc: 1},
		{name: "read-only/aio_write", args: badRO("aio_write 0 512", "aio_flush"), want: roErr, rc: 1},
		{name: "read-only/discard", args: badRO("discard 0 512"), want: roErr, rc: 1},
		{name: "read-only/truncate", args: badRO("truncate 0"), want: roErr, rc: 1},
		{name: "read-only/bad-arguments-first", args: badRO("write 0"), want: count(1, "write", "at least 2 arguments"), rc: 1},

		// ---- ENOSPC ----
		{name: "enospc/write", args: injected(`"event":"write_aio","errno":28`, "write 0 512"), want: enospc("write"), rc: 1},
		{name: "enospc/writev", args: injected(`"event":"write_aio","errno":28`, "writev 0 512 512"), want: enospc("writev"), rc: 1},
		{name: "enospc/aio_write", args: injected(`"event":"write_aio","errno":28`, "aio_write 0 512", "aio_flush"), want: enospc("aio_write")},
		{name: "enospc/write-zeroes", args: injected(`"event":"none","iotype":"write-zeroes","errno":28`, "write -z 0 64k"), want: enospc("write"), rc: 1},
		{name: "enospc/write-zeroes-unmap", args: injected(`"event":"none","iotype":"write-zeroes","errno":28`, "write -z -u 0 64k"), want: enospc("write"), rc: 1},
		{name: "enospc/discard", args: injected(`"event":"none","iotype":"discard","errno":28`, "discard 0 64k"), want: enospc("discard"), rc: 1},
		{name: "enospc/read", args: injected(`"event":"read_aio","errno":28`, "read 0 512"), want: enospc("read"), rc: 1},
		// A flush reaches blkdebug only when something was written since
		// the last one; its failure is silent.
		{name: "enospc/flush", args: injectedWith([]string{"-t", "writeback"}, `"event":"none","iotype":"flush","errno":28`, "write 0 512", "flush"),
			want: rep("wrote", 512, 0), rc: 1},
		{name: "enospc/flush-of-writethrough-write", args: injected(`"event":"none","iotype":"flush","errno":28`, "write 0 512"), want: enospc("write"), rc: 1},
		{name: "enospc/full-file-system", setup: smallFS, args: bad("write 0 1M"), want: enospc("write"), rc: 1, noFiles: true},
		{name: "enospc/full-file-system-aio", setup: smallFS, args: bad("aio_write 0 1M", "aio_flush"), want: enospc("aio_write"), noFiles: true},

		// ---- the image changes underneath ----
		{name: "underneath/shrunk", args: []string{"-f", "raw", "img.raw"}, steps: []step{
			{line: "length"},
			{line: "read 768k 4k", before: truncateImg(512 << 10)},
			{line: "write 768k 4k"},
			{line: "read 0 4k"},
			{line: "length"},
		}, want: "1 MiB\n" + rep("read", 4096, 768<<10) + rep("wrote", 4096, 768<<10) + rep("read", 4096, 0) + "1 MiB\n"},
		{name: "underneath/emptied", args: []string{"-f", "raw", "img.raw"}, steps: []step{
			{line: "write -P 1 0 4k"},
			{line: "read -P 1 0 4k", before: truncateImg(0)},
			{line: "length"},
		}, want: rep("wrote", 4096, 0) + "Pattern verification failed at offset 0, 4096 bytes\n" + rep("read", 4096, 0) + "1 MiB\n", rc: 1},
		{name: "underneath/grown", args: []string{"-f", "raw", "img.raw"}, steps: []step{
			{line: "length"},
			{line: "read -P 0 1536k 4k", before: truncateImg(2 << 20)},
			{line: "length"},
		}, want: "1 MiB\n" + eio("read") + "1 MiB\n", rc: 1},

		// ---- where qemu-io 7.2 crashes or hangs (reference §10) ----
		{name: "qemu-crash/unaligned-discard-through-align", qemu: qemuCrashes,
			args: badBD("file.align=4096", "write -q -P 1 0 8k", "discard 512 512", "read -P 1 0 8k"),
			want: rep("discard", 512, 512) + rep("read", 8192, 0)},
		{name: "qemu-crash/truncate-mode-without-offset", qemu: qemuCrashes, args: bad("truncate -m full"), want: truncateUsage, rc: 1},
		{name: "qemu-crash/null-co-bad-size", qemu: qemuCrashes, size: -1, args: startup("--image-opts", "driver=null-co,size=foo"),
			want: "qemu-io: can't open: Parameter 'size' expects a non-negative number below 2^64\n", rc: 1, follows: "-"},
		{name: "qemu-crash/null-co-negative-size", qemu: qemuCrashes, size: -1, args: startup("--image-opts", "driver=null-co,size=-1"),
			want: "qemu-io: can't open: Parameter 'size' expects a non-negative number below 2^64\n", rc: 1, follows: "-"},
		{name: "qemu-crash/max-transfer-below-probed-alignment", qemu: qemuCrashes,
			args: badWith(nil, "", "open -r -o file.align=4,file.max-transfer=4 blkdebug::img.raw", "read -P 0 0 4k"),
			want: rep("read", 4096, 0)},
		{name: "qemu-hang/sync-read-at-breakpoint", qemu: qemuHangs, args: badBD("", "break read_aio A", "read 0 512"),
			want: "gio: #1 read 0 512 can never happen: #1 read 0 512 suspended at 'A'\n" +
				"gio: close can never happen: #1 read 0 512 suspended at 'A'\n" +
				"blkdebug: Suspended request 'A'\n", rc: 1},
		{name: "qemu-hang/sync-write-at-breakpoint", qemu: qemuHangs, args: badBD("", "break write_aio A", "write 0 512"),
			want: "gio: #1 write 0 512 can never happen: #1 write 0 512 suspended at 'A'\n" +
				"gio: close can never happen: #1 write 0 512 suspended at 'A'\n" +
				"blkdebug: Suspended request 'A'\n", rc: 1},
		{name: "qemu-hang/sync-flush-at-breakpoint", qemu: qemuHangs, args: badBD("", "break flush_to_os A", "flush"),
			want: "gio: #1 flush can never happen: #1 flush suspended at 'A'\n" +
				"gio: close can never happen: #1 flush suspended at 'A'\n" +
				"blkdebug: Suspended request 'A'\n", rc: 1},
		{name: "qemu-hang/quit-with-suspended-request", qemu: qemuHangs, args: badBD("", "break write_aio A", "aio_write 0 512", "quit"),
			want: "gio: close can never happen: #1 aio_write 0 512 suspended at 'A'\nblkdebug: Suspended request 'A'\n", rc: 1, follows: "-"},
		{name: "qemu-hang/close-with-suspended-request", qemu: qemuHangs,
			args: badBD("", "break write_aio A", "aio_write 0 512", "close", "open driver=raw,file.filename=img.raw"),
			want: "gio: close can never happen: #1 aio_write 0 512 suspended at 'A'\nblkdebug: Suspended request 'A'\n", rc: 1},
		{name: "qemu-hang/aio_flush-with-suspended-request", qemu: qemuHangs, args: badBD("", "break write_aio A", "aio_write 0 512", "aio_flush"),
			want: "gio: aio_flush can never happen: #1 aio_write 0 512 suspended at 'A'\n" +
				"gio: close can never happen: #1 aio_write 0 512 suspended at 'A'\n" +
				"blkdebug: Suspended request 'A'\n", rc: 1},
		{name: "qemu-hang/wait_break-never-fires", qemu: qemuHangs, args: badBD("", "break read_aio A", "wait_break A"),
			want: "gio: wait_break A can never happen\n", rc: 1},
		{name: "qemu-hang/wait_break-without-blkdebug", qemu: qemuHangs, args: bad("wait_break A"),
			want: "gio: wait_break A: no blkdebug node, nothing can suspend a request\n", rc: 1},
		{name: "qemu-hang/flush-breakpoint-at-exit", qemu: qemuHangs, args: badBD("", "break flush_to_os A"),
			want: "gio: flush at close can never happen: #2 flush at close suspended at 'A'\n1 MiB\nblkdebug: Suspended request 'A'\n", rc: 1, full: true},
	}
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runBad runs bin in dir with stdout and stderr on one pipe. With steps,
// each line is written to stdin once the prompt for it has appeared,
// after its before hook ran. It reports a timeout instead of failing, so
// that a hang of qemu-io can be recorded.
func runBad(t *testing.T, bin, dir string, args []string, steps []step, timeout time.Duration) (out string, rc int, timedOut bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	var stdin interface {
		Write([]byte) (int, error)
		Close() error
	}
	if steps != nil {
		w, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdin = w
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	for i, st := range steps {
		for strings.Count(buf.String(), "qemu-io> ") <= i {
			if ctx.Err() != nil {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		if st.before != nil {
			st.before(t, dir)
		}
		if _, err := stdin.Write([]byte(st.line + "\n")); err != nil {
			break
		}
	}
	if stdin != nil {
		stdin.Close()
	}
	err := cmd.Wait()
	if ctx.Err() != nil {
		return buf.String(), -1, true
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s: %v", bin, err)
		}
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return buf.String(), 128 + int(ws.Signal()), false
		}
		return buf.String(), ws.ExitStatus(), false
	}
	return buf.String(), 0, false
}

// setupBad lays out a row's directory.
func setupBad(t *testing.T, dir string, r badRow) {
	t.Helper()
	if r.setup != nil {
		r.setup(t, dir)
	}
	size := r.size
	if size == 0 {
		size = mb
	}
	setupDir(t, dir, diffCase{size: size, files: r.files})
}

func TestBadInput(t *testing.T) {
	rows := badRows()
	if len(rows) < 80 {
		t.Fatalf("the bad-input table has %d rows, want at least 80", len(rows))
	}
	_, err := exec.LookPath("qemu-io")
	haveQemu := err == nil
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.name] {
			t.Fatalf("duplicate row %s", r.name)
		}
		seen[r.name] = true
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			gdir := t.TempDir()
			setupBad(t, gdir, r)
			gout, grc, hung := runBad(t, gioBin, gdir, r.args, r.steps, 60*time.Second)
			if hung {
				t.Fatalf("gio hung (args %q); output so far:\n%s", r.args, gout)
			}
			out := filterQemuIO(gout)
			for _, crash := range []string{"panic:", "goroutine ", "runtime error", "SIGSEGV"} {
				if strings.Contains(out, crash) {
					t.Fatalf("gio crashed:\n%s", out)
				}
			}
			follows := r.follows
			if follows == "" {
				follows = length1M
			}
			want := filterQemuIO(r.want)
			if follows != "-" && r.steps == nil && !r.full {
				want += follows
			}
			if out != want {
				t.Errorf("gio output (args %q):\n%s\nwant:\n%s\ndiff:\n%s", r.args, out, want, lineDiff(want, out))
			}
			if follows != "-" && !strings.Contains(out, follows) {
				t.Errorf("gio did not go on: the final length (%q) is missing", follows)
			}
			if grc != r.rc {
				t.Errorf("gio exit status %d, want %d", grc, r.rc)
			}
			if !haveQemu {
				return
			}
			qdir := t.TempDir()
			setupBad(t, qdir, r)
			switch r.qemu {
			case qemuCompare:
				qout, qrc, qhung := runBad(t, "qemu-io", qdir, r.args, r.steps, 60*time.Second)
				if qhung {
					t.Fatalf("qemu-io hung where it was expected to answer; output:\n%s", qout)
				}
				if q := filterQemuIO(qout); q != out {
					t.Errorf("qemu-io and gio differ:\n--- qemu-io\n%s--- gio\n%s--- diff\n%s", q, out, lineDiff(q, out))
				}
				if qrc != grc {
					t.Errorf("exit status: qemu-io %d, gio %d", qrc, grc)
				}
				if !r.noFiles {
					if d := compareFiles(readFiles(t, qdir), readFiles(t, gdir)); d != "" {
						t.Errorf("files differ:\n%s", d)
					}
				}
			case qemuCrashes:
				qout, qrc, qhung := runBad(t, "qemu-io", qdir, r.args, r.steps, 20*time.Second)
				if qhung || qrc <= 128 {
					t.Logf("qemu-io was expected to crash here but did not (rc %d, hung %v):\n%s", qrc, qhung, qout)
				}
			case qemuHangs:
				qout, qrc, qhung := runBad(t, "qemu-io", qdir, r.args, r.steps, 3*time.Second)
				if !qhung {
					t.Logf("qemu-io was expected to hang here but finished (rc %d):\n%s", qrc, qout)
				}
			}
		})
	}
}
