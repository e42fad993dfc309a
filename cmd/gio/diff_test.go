package main

// Differential tests: every case runs the real qemu-io (7.2) and gio with
// identical arguments, each in a fresh directory holding identical files,
// stdout and stderr sharing one pipe (as with 2>&1), and compares the
// output after qemu-iotests' _filter_qemu_io, the exit status and the
// final bytes of every file in the directory.
//
// Cases whose qemu-io behaviour is not deterministic (aio completion order
// on the file driver), or where qemu-io crashes or hangs, are not compared;
// gioOnlyCases pins gio's own behaviour for a few of them instead.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var gioBin string

// raceEnabled is set when the tests run with -race (race_test.go).
var raceEnabled bool

func TestMain(m *testing.M) {
	// qemu-io's abort must not leave core files in the case directories.
	_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{})
	dir, err := os.MkdirTemp("", "gio-difftest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gioBin = filepath.Join(dir, "gio")
	args := []string{"build", "-o", gioBin}
	if raceEnabled {
		// go test -race: run gio itself under the race detector too.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building gio: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// reportTail is the statistics expression of _filter_qemu_io.
var reportTail = regexp.MustCompile(`[0-9]* ops; [0-9/:. sec]* \([0-9/.inf]* [EPTGMKiBbytes]*/sec and [0-9/.inf]* ops/sec\)`)

// machineReport is a -C report line (not normalised by _filter_qemu_io,
// but its time and rates vary just the same).
var machineReport = regexp.MustCompile(`(?m)^([0-9]+),([0-9]+),[0-9]+:[0-9]{2}:[0-9]{2}\.[0-9]{2},[0-9.inf]+,[0-9.inf]+$`)

// filterQemuIO is qemu-iotests' _filter_qemu_io (the expression of
// repl.Normalize), plus the timing fields of -C lines.
func filterQemuIO(s string) string {
	s = strings.ReplaceAll(s, "\r", "")
	s = reportTail.ReplaceAllString(s, "X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)")
	s = strings.ReplaceAll(s, "qemu-io> ", "")
	return machineReport.ReplaceAllString(s, "$1,$2,TIME,RATE,OPS")
}

// diffCase is one comparison.
type diffCase struct {
	name string
	// size of img.raw in bytes, created sparse with truncate; -1 = no
	// image file.
	size int64
	// prep are qemu-io commands run on img.raw (-f raw) to lay out data
	// before the case runs, identically in both directories.
	prep []string
	// files are more files to create (rules, source data, images).
	files map[string]string
	args  []string
	// stdin, when set, is fed to the program (stdin mode: no -c in args);
	// otherwise stdin is /dev/null.
	stdin *string
	// garbage says why the final image bytes are not compared: qemu-io
	// wrote uninitialised memory (the output is still compared).
	garbage string
	// racy says why qemu-io's output depends on timing (a thread-pool
	// request must finish within a sleep); on a mismatch qemu-io runs
	// again, up to three more times.
	racy string
}

// Helpers that build argument lists.

func cmds(cs ...string) []string {
	var a []string
	for _, c := range cs {
		a = append(a, "-c", c)
	}
	return a
}

// rawc runs commands on img.raw opened with -f raw.
func rawc(cs ...string) []string { return withArgs([]string{"-f", "raw"}, "img.raw", cs...) }

// withArgs is options, then -c commands, then the image.
func withArgs(opts []string, image string, cs ...string) []string {
	a := append([]string(nil), opts...)
	a = append(a, cmds(cs...)...)
	if image != "" {
		a = append(a, image)
	}
	return a
}

// bdOpts is raw over blkdebug over file for --image-opts.
func bdOpts(extra string) []string {
	s := "driver=raw,file.driver=blkdebug,file.image.filename=img.raw"
	if extra != "" {
		s += "," + extra
	}
	return []string{"--image-opts", s}
}

// bd runs commands on raw over blkdebug (extra blkdebug options given
// with their file. prefix), with more qemu-io options first.
func bd(opts []string, extra string, cs ...string) []string {
	a := append([]string(nil), opts...)
	a = append(a, cmds(cs...)...)
	return append(a, bdOpts(extra)...)
}

func script(lines ...string) *string {
	s := strings.Join(lines, "\n") + "\n"
	return &s
}

func str(s string) *string { return &s }

const (
	k  = 1 << 10
	mb = 1 << 20
)

var helpCommands = []string{"abort", "aio_flush", "aio_read", "aio_write", "alloc", "break", "close",
	"discard", "flush", "help", "info", "length", "map", "open", "quit", "read", "readv",
	"remove_break", "reopen", "resume", "sigraise", "sleep", "truncate", "wait_break", "write", "writev"}

const rulesCfg = `[inject-error]
event = "read_aio"
errno = "28"
`

const stateCfg = `# set-state then a one-shot error
[set-state]
event = "write_aio"
state = "1"
new_state = "2"

[inject-error]
event = "write_aio"
state = "2"
errno = "5"
once = "on"
`

// racySleep marks cases where qemu-io's thread pool must finish a request
// within a sleep.
const racySleep = "a thread-pool request must complete within a sleep"

const jsonBD = `json:{"driver":"raw","file":{"driver":"blkdebug","image":{"driver":"file","filename":"img.raw"}}}`

// rmwScript is Appendix B.1, the 077-style RMW serialisation race.
var rmwScript = script(
	"break pwritev_rmw_after_tail A",
	"aio_write -P 0xaa 0 512",
	"wait_break A",
	"break pwritev_rmw_head B",
	"aio_write -P 0xbb 512 512",
	"sleep 100",
	"resume A",
	"sleep 100",
	"resume B",
	"aio_flush",
	"read -P 0xaa 0 512",
	"read -P 0xbb 512 512",
)

func diffCases() []diffCase {
	filled := []string{"write -P 0xaa 0 64k"}
	holes := []string{"write -P 0x11 0 4k", "write -P 0x22 28k 8k", "write -P 0x33 60k 4k"}
	cs := []diffCase{
		// ---- command line ----
		{name: "cli/help", size: 64 * k, args: []string{"-h"}},
		{name: "cli/help-long", size: 64 * k, args: []string{"--help", "-f", "raw"}},
		{name: "cli/format-bogus", size: 64 * k, args: withArgs([]string{"-f", "bogus"}, "img.raw", "length")},
		{name: "cli/image-opts-and-f", size: 64 * k, args: withArgs([]string{"--image-opts", "-f", "raw"}, "driver=raw,file.filename=img.raw", "length")},
		{name: "cli/cache-bogus", size: 64 * k, args: withArgs([]string{"-t", "bogus", "-f", "raw"}, "img.raw", "length")},
		{name: "cli/aio-bogus", size: 64 * k, args: withArgs([]string{"-i", "bogus", "-f", "raw"}, "img.raw", "length")},
		{name: "cli/discard-bogus", size: 64 * k, args: withArgs([]string{"-d", "bogus", "-f", "raw"}, "img.raw", "length")},
		{name: "cli/force-share-read-write", size: 64 * k, args: withArgs([]string{"-U", "-f", "raw"}, "img.raw", "length")},
		{name: "cli/force-share-read-only-clustered", size: 64 * k, prep: filled,
			args: withArgs([]string{"-rU", "-f", "raw"}, "img.raw", "read -P 0xaa 0 512", "write 0 512")},
		{name: "cli/two-files", size: 64 * k, files: map[string]string{"img2.raw": strings.Repeat("\x00", 4096)},
			args: []string{"-f", "raw", "-c", "length", "img.raw", "img2.raw"}},
		{name: "cli/invalid-short-option", size: 64 * k, args: []string{"-x", "-f", "raw", "img.raw"}},
		{name: "cli/unrecognized-long-option", size: 64 * k, args: []string{"--bogus", "img.raw"}},
		{name: "cli/missing-option-argument", size: 64 * k, args: []string{"img.raw", "-f"}},
		{name: "cli/nonexistent-file", size: 64 * k, args: withArgs([]string{"-f", "raw"}, "nonexist.raw", "length")},
		{name: "cli/probe-warning-read-write", size: 64 * k, args: withArgs(nil, "img.raw", "write -P 0x5a 0 512", "read -P 0x5a 0 512")},
		{name: "cli/probe-read-only-no-warning", size: 64 * k, args: withArgs([]string{"-r"}, "img.raw", "read 0 512")},
		{name: "cli/probe-blkdebug", size: 64 * k, args: withArgs(nil, "blkdebug::img.raw", "length")},
		{name: "cli/native-aio-needs-direct", size: 64 * k, args: withArgs([]string{"-k", "-f", "raw"}, "img.raw", "length")},
		{name: "cli/native-aio-nocache", size: 64 * k, args: withArgs([]string{"-k", "-n", "-f", "raw"}, "img.raw", "write 0 4k", "read -P 0xcd 0 4k")},
		{name: "cli/nocache-after-cache", size: 64 * k, args: withArgs([]string{"-t", "writeback", "-n", "-k", "-f", "raw"}, "img.raw", "length")},
		{name: "cli/cache-after-nocache", size: 64 * k, args: withArgs([]string{"-n", "-t", "writeback", "-k", "-f", "raw"}, "img.raw", "length")},
		{name: "cli/native-aio-sticky", size: 64 * k, args: withArgs([]string{"-i", "native", "-i", "threads", "-f", "raw"}, "img.raw", "length")},
		{name: "cli/aio-modes", size: 64 * k, args: withArgs([]string{"-i", "threads", "--aio=io_uring", "-f", "raw"}, "img.raw", "write 0 4k", "read -P 0xcd 0 4k")},
		{name: "cli/options-after-file", size: 64 * k, args: []string{"img.raw", "-f", "raw", "-c", "length"}},
		{name: "cli/long-options-with-equals", size: 64 * k, args: []string{"--format=raw", "--cmd=length", "--cmd", "info", "--read-only", "img.raw"}},
		{name: "cli/empty-command", size: 64 * k, args: rawc("", "length")},
		{name: "cli/c-takes-c", size: 64 * k, args: []string{"-f", "raw", "-c", "-c", "length"}},
		{name: "cli/image-opts-bare-word", size: 64 * k, args: withArgs([]string{"--image-opts"}, "img.raw", "length")},
		{name: "cli/object-bogus", size: 64 * k, args: withArgs([]string{"--object", "foo", "-f", "raw"}, "img.raw", "length")},
		{name: "cli/json-malformed", size: 64 * k, args: withArgs(nil, "json:{bad", "length")},
		{name: "cli/json-raw-file", size: 64 * k, args: withArgs(nil, `json:{"driver":"raw","file":{"driver":"file","filename":"img.raw"}}`, "write -P 7 1k 1k", "read -P 7 1k 1k", "info")},
		{name: "cli/stderr-before-buffered-stdout", size: mb, args: rawc("length", "foo", "length", "bar")},
		// stderr lands at 4096-byte boundaries of buffered stdout (the
		// stdout text must not contain timings, whose length varies).
		{name: "cli/stdout-4096-buffering", size: 64 * k, args: rawc("help", "help", "foo", "help read", "help", "bar", "length")},
		{name: "cli/no-file", size: -1, args: cmds("length", "read 0 512", "help quit")},
		{name: "cli/cache-writeback", size: 64 * k, args: withArgs([]string{"-t", "writeback", "-f", "raw"}, "img.raw", "write -P 1 0 4k", "flush", "read -P 1 0 4k")},
		{name: "cli/cache-none-directsync-unsafe", size: 64 * k, args: withArgs([]string{"-t", "none", "-t", "directsync", "-t", "unsafe", "-f", "raw"}, "img.raw", "write -P 2 0 4k", "flush", "read -P 2 0 4k")},
		{name: "cli/nocache", size: 64 * k, args: withArgs([]string{"-n", "-f", "raw"}, "img.raw", "write -P 3 4k 4k", "read -P 3 4k 4k")},
		{name: "cli/discard-ignore", size: 64 * k, prep: filled, args: withArgs([]string{"-d", "ignore", "-f", "raw"}, "img.raw", "discard 0 4k", "read -P 0xaa 0 4k")},
		{name: "cli/discard-off-then-unmap", size: 64 * k, prep: filled, args: withArgs([]string{"--discard=off", "-d", "unmap", "-f", "raw"}, "img.raw", "discard 0 4k", "read -P 0 0 4k")},
		{name: "cli/copy-on-read-misalign", size: 64 * k, prep: filled, args: withArgs([]string{"-C", "-m", "-f", "raw"}, "img.raw", "read -P 0xaa 0 4k")},
		{name: "cli/format-file", size: 64 * k, args: withArgs([]string{"-f", "file"}, "img.raw", "info", "write 0 512", "map")},
		{name: "cli/format-option-rejected", size: 64 * k, args: withArgs([]string{"--image-opts"}, "driver=raw,x=1,file.filename=img.raw", "length")},
		{name: "cli/read-only-option", size: 64 * k, args: withArgs([]string{"--image-opts"}, "driver=raw,file.filename=img.raw,read-only=on", "length")},
		{name: "cli/read-only-option-with-r", size: 64 * k, args: withArgs([]string{"-r", "--image-opts"}, "driver=raw,file.filename=img.raw,read-only=on", "write 0 1", "length")},
		{name: "cli/read-only-off-overrides-r", size: 64 * k, args: withArgs([]string{"-r", "--image-opts"}, "driver=raw,file.filename=img.raw,read-only=off", "write -P 9 0 1", "read -P 9 0 1")},
		{name: "cli/read-only-child", size: 64 * k, args: withArgs([]string{"--image-opts"}, "driver=raw,file.filename=img.raw,file.read-only=on", "length")},
		{name: "cli/read-only-child-off", size: 64 * k, args: withArgs([]string{"-r", "--image-opts"}, "driver=raw,file.filename=img.raw,file.read-only=off", "write 0 1", "length")},
		{name: "cli/read-only-bogus", size: 64 * k, args: withArgs([]string{"--image-opts"}, "driver=raw,file.filename=img.raw,read-only=bogus", "length")},
		{name: "cli/read-only-json", size: 64 * k, args: withArgs(nil, `json:{"driver":"raw","read-only":true,"file":{"driver":"file","filename":"img.raw"}}`, "length")},
		{name: "cli/format-protocol-with-filename", size: 64 * k, args: withArgs([]string{"-f", "file"}, "file:img.raw", "write -P 8 0 512", "read -P 8 0 512", "info")},
		{name: "cli/format-null-with-filename", size: -1, args: withArgs([]string{"-f", "null-co"}, "null-co://", "read -v 0 16", "info", "length")},
		{name: "cli/format-blkdebug-with-filename", size: 64 * k, args: withArgs([]string{"-f", "blkdebug"}, "blkdebug::img.raw", "info", "write -P 7 0 512", "read -P 7 0 512")},
		{name: "cli/json-filename-without-driver", size: 64 * k, args: withArgs(nil, `json:{"filename":"img.raw"}`, "length")},
		{name: "cli/probe-warning-names", size: 64 * k, args: withArgs(nil, `json:{"file":{"filename":"img.raw"}}`, "length", "close", "open -o file.aio=threads,file.locking=off img.raw", "close", "open -o file.driver=file img.raw")},
		{name: "cli/probe-warning-image-opts", size: 64 * k, args: withArgs([]string{"--image-opts"}, "file.filename=img.raw", "length")},
		{name: "cli/image-opts-filename-without-driver", size: 64 * k, args: withArgs([]string{"--image-opts"}, "filename=img.raw", "length")},
		{name: "cli/image-opts-no-file", size: 64 * k, args: withArgs([]string{"--image-opts"}, "driver=raw", "length")},

		// ---- stdin mode ----
		{name: "stdin/prompts", size: 64 * k, args: []string{"-f", "raw", "img.raw"}, stdin: script("write 0 512", "read 0 512")},
		{name: "stdin/empty", size: 64 * k, args: []string{"-f", "raw", "img.raw"}, stdin: str("")},
		{name: "stdin/no-trailing-newline", size: 64 * k, args: []string{"-f", "raw", "img.raw"}, stdin: str("length\nlength")},
		{name: "stdin/carriage-return-kept", size: 64 * k, args: []string{"-f", "raw", "img.raw"}, stdin: str("length\r\nlength\n")},
		{name: "stdin/tab-not-separator", size: 64 * k, args: []string{"-f", "raw", "img.raw"}, stdin: script("read\t0 512", "# comment", "", "   ", "  length  ")},
		{name: "stdin/long-line-split", size: 64 * k, args: []string{"-f", "raw", "img.raw"}, stdin: script("length" + strings.Repeat(" ", 1017) + "XYZ")},
		{name: "stdin/quit-stops", size: 64 * k, args: []string{"-f", "raw", "img.raw"}, stdin: script("foo", "length", "quit", "length")},
		{name: "stdin/interleaved-streams", size: 64 * k, args: []string{"-f", "raw", "img.raw"}, stdin: script("length", "foo", "length", "bar")},
		{name: "stdin/no-image", size: -1, args: nil, stdin: script("open -f raw img.raw", "open img.raw", "length")},

		// ---- dispatch ----
		{name: "dispatch/unknown-and-counts", size: mb, args: rawc("nosuch", "read 0", "r 0", "map 1", "alloc", "break read_aio", "open", "alloc 1 2 3")},
		{name: "dispatch/quit-ignores-args", size: mb, args: rawc("quit 1", "length")},
		{name: "dispatch/failure-then-quit", size: mb, args: rawc("foo", "q", "length")},
		{name: "dispatch/getopt-errors", size: mb, args: rawc("read -x 0 512", "read -P", "r -x 0 1", "write -zu -P", "truncate -m", "discard -v 0 1")},

		// ---- read ----
		{name: "read/pattern-filled", size: 64 * k, prep: filled, args: rawc("read -P 0xaa 0 64k", "r -P 170 1 100", "read -P0xaa 512 512", "read -P 0xab 0 1")},
		{name: "read/sparse-zeroes", size: 64 * k, args: rawc("read -P 0 0 64k", "read -v 65520 16")},
		{name: "read/holes", size: 64 * k, prep: holes, args: rawc("read -P 0x11 0 4k", "read -P 0 4k 24k", "read -P 0x22 28k 8k", "read -P 0 36k 24k", "read -P 0x33 60k 4k", "read -P 0 4095 2")},
		{name: "read/dump", size: 64 * k, prep: []string{"write -P 0x41 0 16", "write -P 0x2e 16 8", "write -P 0xff 24 3"}, args: rawc("read -v 0 40", "read -v 3 5", "read -v 0 0", "read 0 512 -v -q")},
		{name: "read/dump-high-offset", size: 64 * k, args: rawc("read -v 65532 4")},
		{name: "read/machine-and-quiet", size: 64 * k, args: rawc("read -C 0 4k", "read -q 0 4k", "read -qC 0 1", "read -Cv 0 3")},
		{name: "read/pattern-mismatch", size: 64 * k, prep: []string{"write -P 0xaa 0 1024", "write -P 0xbb 1024 1024"}, args: rawc("read -P 0xaa -v 1020 8", "read -P 0xaa -s 512 -l 1k 0 2k", "read -P 0xbb -s 1024 0 2k", "read -P 0xbb -l 0 0 2k", "read -P 0xaa -s 1020 -l 4 0 2k")},
		{name: "read/pattern-range-errors", size: 64 * k, args: rawc("read -s 1 0 1", "read -l 1 0 1", "read -P 1 -s 2 0 1", "read -P 1 -l 2 0 1", "read -P 1 -s 1 -l 1 0 1")},
		{name: "read/vmstate-and-a", size: 64 * k, args: rawc("read -b 0 512", "read -b 1 512", "read -b 0 1", "read -a 0 512", "read -p 0 512")},
		{name: "read/permuted-and-dashdash", size: 64 * k, args: rawc("read 0 512 -q", "read -- 0 16", "read 0 -- 16")},
		{name: "read/out-of-range", size: mb, args: rawc("read 1M 1", "read 1M 0", "read 2M 0", "read 1020k 8k", "read 0 2G", "read 0x7fffffffffffffff 1", "read 9223372036854775807 0")},
		// Both allocate and fill a 2 GiB buffer before the block layer
		// refuses the request.
		{name: "read/max-length-beyond-end", size: mb, args: rawc("read 0 2147483136")},
		{name: "read/negative", size: mb, args: rawc("read -1 1", "read 0 -1")},
		{name: "read/arg-count", size: mb, args: rawc("read 0 1 2", "read -v 0")},
		{name: "read/unaligned", size: 64 * k, prep: filled, args: rawc("read -P 0xaa 1 511", "read -P 0xaa 513 1023", "read -P 0xaa 65535 1")},
		{name: "read/pattern-bytes", size: 64 * k, prep: []string{"write -P 63 0 512"}, args: rawc("read -P 077 0 512", "read -P 0x3f 0 512", "read -P 63 0 512", "read -P 300 0 1", "read -P -1 0 1", "read -P 0x1g 0 1", "read -P 1k 0 1", "read -P x 0 1", "read -P 0252 -P 63 0 1")},

		// ---- number parsing (§3.1) ----
		{name: "num/malformed", size: mb, args: rawc("read 0x 1", "read 1kb 1", "read 1KiB 1", "read 1k1 1", "read 1_000 1", "read 1e3 1", "read .5k 1",
			"read 1.5 1", "read 0.5b 1", "read 1.5B 1", "read 00x10 1", "read 0xg 1", "read 0x1.0 1", "read 1.5e3 1", "read -0 1", "read 1.0000000001 1", "read abc 1", "read 0 1.5")},
		{name: "num/too-large", size: mb, args: rawc("read 8E 1", "read 8.0E 1", "read 16E 1", "read 9223372036854775808 1", "read 18446744073709551616 1", "read 7E 1", "read 7.99999E 1")},
		{name: "num/valid", size: mb, args: rawc("read 0x200 0X1F", "read 010 08", "read 1. 1.k", "read 0.5k 0.1k", "read 1.0 0.0", "read +512 +1", "read 0x10b 0x1e", "read 0.25M 1.1k", "read 0.1M 0.9999999999k", "read 0.00000001k 1.99999999999999999999k", "read 12.0 1.000")},
		{name: "num/hex-suffix-warning", size: mb, args: rawc("read 0x10k 0x1k", "alloc 0x1K")},

		// ---- readv ----
		{name: "readv/vector", size: 64 * k, prep: filled, args: rawc("readv 0 512 1k 3", "readv -P 0xaa 100 1 2 3", "readv -v 0 3 5", "readv -C 0 512", "readv -q 0 512 512")},
		{name: "readv/mismatch", size: 64 * k, prep: []string{"write -P 1 0 512"}, args: rawc("readv -P 1 0 512 512", "readv -P 1 0 256 256")},
		{name: "readv/errors", size: mb, args: rawc("readv 0 2147483137", "readv 0 1G 1G", "readv 1M 1", "readv 0", "readv -v 0", "readv 0 x", "readv -b 0 1")},

		// ---- write ----
		{name: "write/basic", size: 64 * k, args: rawc("write 0 4k", "w -P 0x55 4k 4k", "write -q -P 1 8k 1", "write -C 9k 3", "write -p 10k 100", "read -P 0xcd 0 4k", "read -P 0x55 4k 4k")},
		{name: "write/fua", size: 64 * k, args: rawc("write -f -P 9 0 4k", "read -P 9 0 4k")},
		{name: "write/unaligned", size: 64 * k, prep: filled, args: rawc("write -P 0x12 1000 100", "write -P 0x13 511 2", "write -P 0x14 65535 1", "read -v 998 4")},
		{name: "write/zeroes", size: 64 * k, prep: filled, args: rawc("write -z 4k 4k", "write -z -u 12k 4k", "write -zu 1 2", "write -z -n 20k 4k", "read -P 0 4k 4k", "read -P 0 12k 4k", "read -P 0xaa 8k 4k", "read -v 0 4")},
		{name: "write/flag-conflicts", size: 64 * k, args: rawc("write -b -z 0 512", "write -f -b 0 512", "write -f -c 0 512", "write -n 0 1", "write -u 0 1", "write -P 1 -s x 0 1", "write -z -P 1 0 1", "write -z -s x 0 1")},
		{name: "write/vmstate-compressed", size: 64 * k, args: rawc("write -b 0 512", "write -c 0 512", "write -c 1 512", "write -c 0 1", "write -b 0 1")},
		{name: "write/source-file", size: 64 * k, files: map[string]string{"src.bin": "Hello, World!", "empty.bin": ""},
			args: rawc("write -s src.bin 0 40", "read -v 0 48", "write -s src.bin 100 5", "read -v 96 16", "write -s nonexist.bin 0 1", "write -s empty.bin 0 1", "write -s 0 1", "write -s src.bin 0 0", "write -s . 0 1")},
		{name: "write/out-of-range", size: mb, args: rawc("write 1020k 8k", "write 1M 1", "write 1M 0", "write 2M 0", "write 0 2G", "write -z -n 0 2G", "write -z 0 2G", "write -z 1M 1")},
		{name: "write/arg-count", size: mb, args: rawc("write 0", "write 0 1 2", "w 0")},
		{name: "write/read-only", size: mb, args: withArgs([]string{"-r", "-f", "raw"}, "img.raw", "write 0 512", "writev 0 512", "aio_write 0 512", "discard 0 512", "truncate 512", "write -z 0 1")},

		// ---- writev ----
		{name: "writev/vector", size: 64 * k, args: rawc("writev 0 512 1k 3", "writev -P 0x77 2k 1 2 3", "writev -f -q 4k 512", "writev -C 8k 1k", "read -P 0xcd 0 1539", "read -P 0x77 2k 6", "read -v 2044 12")},
		{name: "writev/errors", size: mb, args: rawc("writev 0 2147483137", "writev 0 1G 1G", "writev 1M 1", "writev -z 0 1", "writev 0", "writev -P 256 0 1")},

		// ---- discard ----
		{name: "discard/basic", size: 64 * k, prep: filled, args: rawc("discard 4k 4k", "d -q 12k 4k", "discard -C 20k 1", "discard 30001 3", "read -P 0 4k 4k", "read -P 0 12k 4k", "read -v 20476 8", "read -v 29998 8")},
		{name: "discard/errors", size: mb, args: rawc("discard 1M 1", "discard 0 2147483137", "discard 0 -1", "discard 0", "discard 0 1 2", "discard 2M 0")},

		// ---- flush ----
		{name: "flush/basic", size: 64 * k, args: rawc("flush", "f", "write 0 512", "flush", "flush 1")},

		// ---- truncate ----
		{name: "truncate/shrink-grow", size: 64 * k, prep: filled, args: rawc("truncate 32k", "length", "truncate 128k", "length", "read -P 0xaa 0 32k", "read -P 0 32k 96k")},
		{name: "truncate/odd-length", size: 64 * k, args: rawc("t 1000", "length", "map", "read -v 990 34", "write -P 0x61 1020 4", "length")},
		{name: "truncate/modes", size: 64 * k, args: rawc("truncate -m off 8k", "truncate -m falloc 16k", "truncate -m full 24k", "truncate -m metadata 32k", "truncate -m bogus 16k", "length")},
		{name: "truncate/errors", size: 64 * k, args: rawc("truncate x", "truncate 1 2", "length", "truncate 7E", "truncate -m falloc x", "truncate", "truncate 0x10k")},

		// ---- length ----
		{name: "length/sizes", size: 1000, args: rawc("length", "l")},
		{name: "length/1048000", size: 1048000, args: rawc("length", "map", "alloc 1047990 100")},
		{name: "length/zero", size: 0, args: rawc("length", "map", "alloc 0", "read 0 0", "read 0 1")},
		{name: "length/6000", size: 6000, args: rawc("length", "read -P 0 5000 1144")},

		// ---- info ----
		{name: "info/raw", size: 64 * k, args: rawc("info", "i")},
		{name: "info/blkdebug-top", size: 64 * k, args: withArgs([]string{"--image-opts"}, "driver=blkdebug,image.filename=img.raw", "info")},

		// ---- map / alloc ----
		{name: "map/sparse-and-filled", size: mb, prep: []string{"write -P 1 64k 4k"}, args: rawc("map", "write -q 128k 4k", "discard -q 512k 64k", "map", "alloc 60k 8k", "alloc 1020k 8k")},
		{name: "alloc/variants", size: mb, args: rawc("alloc 0", "a 1 1", "alloc 1M", "alloc 2M 1", "alloc 1023k 1G", "alloc -1", "alloc x", "alloc 0 x")},

		// ---- large sparse image ----
		{name: "large/zero-writes-beyond-2G", size: 3 << 30, prep: []string{"write -P 1 2G 4k"}, args: rawc("write -z -n 1G 2G", "write -z 0 2G", "aio_write -z 0 2147483137", "aio_flush",
			"read -P 0 2G 4k", "read -v 3221225456 16", "alloc 1G 4G", "map", "write -P 2 3221225472 1")},

		// ---- odd sizes ----
		{name: "odd/1000-tail", size: 1000, prep: []string{"write -P 0x44 0 1000"}, args: rawc("read -v 992 32", "write -P 0x45 1020 4", "read -v 992 32", "read 1000 24", "read 1024 1")},
		{name: "odd/1048000-rmw", size: 1048000, args: rawc("write -P 0x66 1047990 3", "read -P 0x66 1047990 3", "read -P 0 1047993 7", "write -z 1047000 100", "discard 1047500 100", "read 1048000 576", "read 1048000 577")},

		// ---- open / close ----
		{name: "open/close-and-reopen", size: 64 * k, prep: filled, args: rawc("close", "length", "close", "open -r img.raw", "read -P 0xaa 0 512", "write 0 512", "c", "o -f raw img.raw")},
		{name: "open/already-open", size: 64 * k, args: rawc("open img.raw", "open -r -o driver=raw img.raw")},
		{name: "open/options", size: 64 * k, args: cmds("open -o driver=raw img.raw", "info", "close", "open -n -C -t writeback -d ignore -i threads -o driver=raw img.raw", "write 0 512", "discard 0 512", "read -P 0xcd 0 512")},
		{name: "open/errors", size: 64 * k, args: cmds("open -t bogus img.raw", "open -d bogus img.raw", "open -i bogus img.raw", "open -k img.raw", "open -U img.raw", "open img.raw img2.raw", "open nonexist.raw", "open -o driver=raw,x=1 img.raw", "open -o driver=raw", "open -o bogus=,, img.raw", "open -x img.raw", "length")},
		{name: "open/probe-warning", size: 64 * k, args: cmds("open img.raw", "write -P 1 0 1", "close", "open -r -U img.raw", "read -P 1 0 1", "close", "open -k -n -o driver=raw img.raw", "write 0 4k")},
		{name: "open/blkdebug-align-probe", size: 64 * k, args: cmds("open -o driver=raw,file.align=4k blkdebug::img.raw", "write -P 2 512 512", "read -P 2 512 512")},
		{name: "open/probe-warning-before-error", size: 64 * k, args: cmds("open -o bogus=1 img.raw", "open -r -o bogus=1 img.raw", "open -o file.bogus=1 img.raw")},
		{name: "open/filename-option", size: 64 * k, args: cmds("open -o filename=img.raw", "open -o filename=img.raw img.raw", "open -o driver=file,filename=img.raw img.raw",
			"open -o driver=null-co,filename=x null-co://", "open -o driver=raw,filename=img.raw", "length")},
		{name: "open/raw-offset-size", size: 64 * k, prep: []string{"write -P 1 0 1k", "write -P 2 1k 1k"}, args: cmds(
			"open -o driver=raw,offset=1k,size=1k,file.filename=img.raw", "length", "read -P 2 0 1k", "write 0 1k", "write 512 1k", "read 1k 1", "read 0 0", "map", "alloc 0 4k", "truncate 4k", "close",
			"open -o driver=raw,offset=100,file.filename=img.raw", "length", "read -v 0 4", "close",
			"open -o driver=raw,offset=64k,file.filename=img.raw", "length", "read 0 1", "map")},
		{name: "open/raw-hex-suffix-warning", size: 64 * k, args: cmds("open -o driver=raw,offset=0x1k,file.filename=img.raw", "length", "close", "open -o driver=raw,size=0x1k,file.filename=img.raw", "length")},
		{name: "open/raw-offset-size-errors", size: 64 * k, args: cmds(
			"open -o driver=raw,offset=128k,file.filename=img.raw", "open -o driver=raw,offset=1k,size=64k,file.filename=img.raw",
			"open -o driver=raw,size=1000,file.filename=img.raw", "open -o size=1000 img.raw", "open -o driver=raw,offset=x,file.filename=img.raw", "length")},
		{name: "open/image-opts", size: 64 * k, args: withArgs([]string{"--image-opts"}, "driver=raw,file.filename=img.raw", "close", "open driver=raw,file.filename=img.raw,read-only=on", "write 0 512", "read 0 512")},

		// ---- reopen ----
		{name: "reopen/read-only-and-back", size: 64 * k, args: rawc("reopen -r", "write 0 512", "reopen -w", "write -P 4 0 512", "reopen", "read -P 4 0 512")},
		{name: "reopen/from-read-only", size: 64 * k, args: withArgs([]string{"-r", "-f", "raw"}, "img.raw", "write 0 512", "reopen -w", "write -P 5 0 512")},
		{name: "reopen/errors", size: 64 * k, args: rawc("reopen -r -w", "reopen -c bogus", "reopen -o x=1", "reopen -o file.align=4096", "reopen 1", "reopen -x")},
		{name: "reopen/child-option-names", size: 64 * k, args: withArgs(nil, "blkdebug::img.raw", "reopen -o file.image.x=1", "reopen -o file.align=512", "reopen -o x=1,file.y=1")},
		{name: "reopen/cache", size: 64 * k, args: rawc("reopen -c writeback", "write 0 512", "reopen -c none", "write 512 512", "reopen -c unsafe -r", "read -P 0xcd 0 1k")},

		// ---- aio ----
		{name: "aio/read", size: 64 * k, prep: filled, args: rawc("aio_read -P 0xaa 0 4k", "aio_flush", "aio_read -v 0 3 5", "aio_flush", "aio_read -C -q 0 512", "aio_flush", "aio_read -C 0 512", "aio_flush", "aio_read -P 0xbb 0 512", "aio_flush")},
		{name: "aio/read-errors-keep-rc", size: mb, args: rawc("aio_read 1M 1", "aio_flush", "aio_read -i x y", "aio_read -P 1 0 2 -i")},
		{name: "aio/read-validation", size: mb, args: rawc("aio_read 0 2147483137", "aio_read 0 1G 1G", "aio_read -P 300 0 1", "aio_read -x -i 0 1", "aio_read 0")},
		{name: "aio/write", size: 64 * k, args: rawc("aio_write -P 0x21 0 4k", "aio_flush", "aio_write -f -P 0x22 4k 1 2 3", "aio_flush", "aio_write -q 8k 512", "aio_flush", "aio_write -C 9k 512", "aio_flush", "read -P 0x21 0 4k", "read -v 4k 8")},
		{name: "aio/write-zeroes", size: 64 * k, prep: filled, args: rawc("aio_write -z 0 4k", "aio_flush", "aio_write -z -u -q 8k 4k", "aio_flush", "aio_write -z -P 5 16k 512", "aio_flush", "read -P 0 16k 512", "read -P 0 0 4k", "read -P 0 8k 4k", "read -P 0xaa 4k 4k")},
		{name: "aio/write-errors", size: mb, args: rawc("aio_write 1M 1", "aio_flush", "aio_write -z 1M 1", "aio_flush", "aio_write -z 0 1 1", "aio_write -u 0 1", "aio_write -n 0 1", "aio_write -i x", "aio_write 0 2147483137", "aio_write -P 1000 0 1")},
		{name: "aio/drain-at-exit", size: 64 * k, args: rawc("aio_write 0 512", "length")},
		{name: "aio/flush-idle", size: 64 * k, args: rawc("aio_flush", "aio_flush 1")},
		{name: "aio/stdin", size: 64 * k, args: []string{"-f", "raw", "img.raw"}, stdin: script("aio_write -P 3 0 512", "aio_flush", "aio_read -P 3 0 512", "aio_flush", "aio_read -P 4 0 512", "aio_flush")},

		// ---- sleep / sigraise / abort ----
		{name: "shell/sleep", size: 64 * k, args: rawc("sleep 10", "sleep 0x10", "sleep 010", "sleep abc", "sleep -5", "sleep 1k", "sleep 1.5", "sleep")},
		{name: "shell/sigraise-errors", size: 64 * k, args: rawc("sigraise 99", "sigraise 0", "sigraise 65", "sigraise x")},
		{name: "shell/sigraise-term", size: 64 * k, args: rawc("length", "sigraise 15", "length")},
		{name: "shell/sigraise-survived", size: 64 * k, args: rawc("length", "sigraise 7", "sigraise 10", "sigraise 13", "sigraise 14", "sigraise 29", "sigraise 17", "sigraise 28", "foo", "length")},
		{name: "shell/sigraise-segv", size: 64 * k, args: rawc("length", "foo", "sigraise 11", "length")},
		{name: "shell/abort-loses-stdout", size: 64 * k, args: rawc("length", "abort")},

		// ---- breakpoints without blkdebug ----
		{name: "break/no-blkdebug", size: 64 * k, args: rawc("break read_aio A", "remove_break A", "resume A")},
		{name: "break/errors", size: 64 * k, args: bd(nil, "", "break bogus X", "break READ_AIO X", "remove_break X", "resume X", "break none X", "remove_break X", "remove_break X")},

		// ---- blkdebug spellings and options ----
		{name: "blkdebug/empty-config", size: 64 * k, args: withArgs([]string{"-f", "raw"}, "blkdebug::img.raw", "write -P 1 0 512", "read -P 1 0 512", "info")},
		{name: "blkdebug/spelling-errors", size: 64 * k, args: cmds("open -o driver=raw blkdebug:img.raw", "open -o driver=raw blkdebug:", "open -o driver=raw blkdebug::", "open -o driver=raw,file.driver=blkdebug,file.image=img.raw", "open -o driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.bogus=1", "open -o driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.config=nonexist.cfg")},
		{name: "blkdebug/json-f-raw", size: 64 * k, args: withArgs([]string{"-f", "raw"}, `json:{"driver":"blkdebug","image":{"driver":"file","filename":"img.raw"}}`, "length")},
		{name: "blkdebug/align-errors", size: 64 * k, args: cmds("open -o file.align=3 blkdebug::img.raw",
			"open -o driver=raw,file.align=2147483648 blkdebug::img.raw",
			"open -o driver=raw,file.align=512,file.max-transfer=100 blkdebug::img.raw",
			"open -o driver=raw,file.align=512,file.opt-write-zero=100 blkdebug::img.raw",
			"open -o driver=raw,file.align=512,file.opt-discard=100 blkdebug::img.raw",
			"open -o driver=raw,file.align=512,file.max-discard=100 blkdebug::img.raw",
			"open -o driver=raw,file.align=512,file.opt-write-zero=1024,file.max-write-zero=1536 blkdebug::img.raw")},
		{name: "blkdebug/align-length", size: 1000, args: cmds("open -o driver=raw,file.align=4k blkdebug::img.raw", "open -r -o driver=raw,file.align=4k blkdebug::img.raw", "read -v 996 8", "length")},
		{name: "blkdebug/align-rmw", size: 64 * k, prep: filled, args: bd(nil, "file.align=4096", "write -P 1 512 512", "write -P 2 2048 4096", "write -P 3 10000 100", "write -z 20000 10000", "read -v 508 8", "read -P 0 20000 10000", "read -P 0xaa 30000 100", "map", "alloc 100 100")},
		{name: "blkdebug/align-zero-nofallback", size: 64 * k, args: bd(nil, "file.align=4096", "write -z -n 512 512", "write -z -n 4k 4k")},
		{name: "blkdebug/max-transfer", size: 64 * k, args: bd([]string{"-t", "writeback"}, "file.align=512,file.max-transfer=4096", "write -P 9 0 16k", "read -P 9 0 16k", "read -P 9 100 10000")},
		{name: "blkdebug/opt-discard", size: 64 * k, prep: filled, args: bd(nil, "file.align=4096,file.opt-discard=4096", "discard 512 512", "discard 2048 8192", "discard 16k 4k", "read -P 0xaa 0 4k", "read -P 0 4k 4k", "read -P 0xaa 8k 8k", "read -P 0 16k 4k")},
		{name: "blkdebug/opt-discard-512", size: 64 * k, prep: filled, args: bd(nil, "file.align=512,file.opt-discard=4096,file.max-discard=8192", "discard 100 20000", "read -P 0xaa 0 512", "read -P 0 512 19456", "read -P 0xaa 19968 1024")},
		{name: "blkdebug/event-order-writeback", size: 64 * k, args: bd([]string{"-t", "writeback"}, "file.align=4096",
			"break write_aio A", "break pwritev_rmw_head B", "break pwritev_rmw_tail C", "break pwritev_rmw_after_head D", "break pwritev_rmw_after_tail E", "break pwritev F", "break pwritev_done G",
			"aio_write -P 5 2048 4096", "wait_break A", "resume A", "wait_break B", "resume B", "wait_break C", "resume C", "wait_break D", "resume D",
			"wait_break E", "resume E", "wait_break F", "resume F", "wait_break G", "resume G", "aio_flush", "read -P 5 2048 4096")},
		{name: "blkdebug/event-order-zero", size: 64 * k, args: bd([]string{"-t", "writeback"}, "file.align=4096",
			"break pwritev_rmw_head B", "break pwritev_rmw_after_tail C", "break pwritev D", "break pwritev_zero E", "break pwritev_done G",
			"aio_write -z 2048 8192", "wait_break B", "resume B", "wait_break C", "resume C", "wait_break D", "resume D",
			"wait_break G", "resume G", "wait_break E", "resume E", "aio_flush", "read -P 0 2048 8192")},
		{name: "blkdebug/writethrough-flush", size: 64 * k, args: bd(nil, "", "break flush_to_os A", "aio_write 0 512", "wait_break A", "resume A", "aio_flush", "aio_read 0 512", "aio_flush")},
		{name: "blkdebug/resume-inside-command", size: 64 * k, args: bd([]string{"-t", "writeback"}, "", "break pwritev_done A", "aio_write 0 512", "wait_break A", "resume A", "length")},
		{name: "blkdebug/resume-writethrough", size: 64 * k, args: bd(nil, "", "break pwritev_done A", "aio_write 0 512", "wait_break A", "resume A", "length", "aio_flush")},
		{name: "blkdebug/resume-most-recent", size: 64 * k, racy: racySleep, args: bd([]string{"-t", "writeback"}, "", "break write_aio A", "aio_write 0 512", "wait_break A", "break write_aio A",
			"aio_write 512 512", "wait_break A", "resume A", "sleep 100", "resume A", "aio_flush")},
		{name: "blkdebug/resume-before-data-write", size: 64 * k, args: bd([]string{"-t", "writeback"}, "", "break pwritev A", "aio_write 0 512", "wait_break A", "resume A", "length", "aio_flush")},
		{name: "blkdebug/resume-zero-write", size: 64 * k, args: bd(nil, "", "break pwritev_done A", "aio_write -z 0 512", "wait_break A", "resume A", "length", "aio_flush")},
		{name: "blkdebug/flush-events", size: 64 * k, args: bd([]string{"-t", "writeback"}, "", "break flush_to_disk A", "aio_write 0 512", "aio_flush", "remove_break A", "flush", "length")},
		{name: "blkdebug/same-tag-twice", size: 64 * k, args: bd(nil, "", "break write_aio A", "break write_aio A", "aio_write 0 512", "resume A", "resume A", "aio_flush")},
		{name: "blkdebug/remove-break-two-suspended", size: 64 * k, args: bd(nil, "", "break write_aio A", "aio_write 0 512", "break read_aio A", "aio_read 0 512", "wait_break A", "remove_break A", "aio_flush")},
		{name: "blkdebug/wait-break-already-suspended", size: 64 * k, args: bd(nil, "", "break read_aio A", "aio_read -P 0 0 512", "wait_break A", "wait_break A", "resume A", "aio_flush")},
		{name: "blkdebug/two-rules-one-event", racy: racySleep, size: 64 * k, args: bd(nil, "", "break write_aio A", "break write_aio B", "aio_write 0 512", "sleep 100", "aio_write 512 512", "sleep 100", "resume A", "sleep 100", "resume B", "aio_flush")},
		{name: "blkdebug/remove-break-resumes", size: 64 * k, args: bd(nil, "", "break write_aio A", "break read_aio A", "aio_write -P 6 0 512", "wait_break A", "remove_break A", "aio_flush", "read -P 6 0 512", "remove_break A")},
		{name: "blkdebug/sync-alongside-suspended", racy: racySleep, size: 64 * k, args: bd(nil, "", "break write_aio A", "aio_write -P 7 0 512", "wait_break A", "read 0 512", "read 4096 512", "write 8192 512", "aio_read 0 512", "sleep 100", "resume A", "aio_flush", "read -P 7 0 512")},
		{name: "blkdebug/timed-breakpoint", racy: racySleep, size: 64 * k, args: withArgs(nil, jsonBD, "break write_aio A", "aio_write 0 512", "wait_break A", "sleep 150", "resume A", "aio_flush", "break write_aio B", "aio_write -C 0 512", "wait_break B", "sleep 50", "resume B", "aio_flush")},

		// ---- error injection ----
		{name: "inject/config-file", size: 64 * k, files: map[string]string{"rules.cfg": rulesCfg}, args: withArgs([]string{"-f", "raw"}, "blkdebug:rules.cfg:img.raw", "read 0 512", "read 0 512", "write 0 512")},
		{name: "inject/state-machine", size: 64 * k, files: map[string]string{"state.cfg": stateCfg}, args: withArgs([]string{"-f", "raw"}, "blkdebug:state.cfg:img.raw", "write 0 512", "write 0 512", "write 0 512", "write 0 512")},
		{name: "inject/options", size: 64 * k, args: bd(nil, "file.inject-error.event=read_aio,file.inject-error.errno=28", "write 0 512", "read 0 512", "write 0 512", "aio_read 0 512", "aio_flush", "readv 0 1 2", "writev 0 512", "discard 0 512", "alloc 0", "map", "flush")},
		{name: "inject/sector", size: 64 * k, args: bd(nil, "file.inject-error.0.event=none,file.inject-error.0.sector=2", "read 1500 100", "read 1024 1", "read 0 2k", "read 2048 512")},
		{name: "inject/sector-align", size: 64 * k, args: bd(nil, "file.align=4096,file.inject-error.0.event=none,file.inject-error.0.sector=2", "read 1500 100", "read 8k 512")},
		{name: "inject/once-iotype", size: 64 * k, args: bd(nil, "file.inject-error.0.event=none,file.inject-error.0.once=on,file.inject-error.0.iotype=write,file.inject-error.0.errno=1", "read 0 512", "write 0 512", "write 0 512", "aio_write 0 512", "aio_flush")},
		{name: "inject/unknown-errno-immediately", size: 64 * k, args: bd(nil, "file.inject-error.0.event=none,file.inject-error.0.errno=999,file.inject-error.0.immediately=on", "read 0 512", "write -z 0 512", "discard 0 512", "aio_write -z 0 512", "aio_flush")},
		{name: "inject/flush", size: 64 * k, args: bd(nil, "file.inject-error.0.event=none,file.inject-error.0.iotype=flush", "flush", "write 0 512", "read 0 512", "flush")},
		{name: "inject/flush-writeback", size: 64 * k, args: bd([]string{"-t", "writeback"}, "file.inject-error.0.event=none,file.inject-error.0.iotype=flush", "flush", "write 0 512", "flush", "write -f 0 512")},
		{name: "inject/block-status", size: 64 * k, args: bd(nil, "file.inject-error.0.event=none,file.inject-error.0.iotype=block-status,file.inject-error.0.errno=5", "map", "alloc 0", "read 0 512")},
		{name: "probe-warning/blkdebug-align-json", size: 64 * k, args: cmds("open -o file.align=4k blkdebug::img.raw", "length")},
		{name: "probe-warning/blkdebug-rule-json", size: 64 * k, args: cmds("open -o file.inject-error.0.event=read_aio blkdebug::img.raw", "length")},
		{name: "probe-warning/blkdebug-plain", size: 64 * k, args: cmds("open -o file.image.driver=file blkdebug::img.raw", "length")},
		{name: "probe-warning/image-opts-blkdebug", size: 64 * k, args: []string{"--image-opts", "file.driver=blkdebug,file.image.filename=img.raw", "-c", "length"}},
		{name: "inject/json-strings", size: 64 * k, args: withArgs(nil, `json:{"driver":"raw","file":{"driver":"blkdebug","image":{"driver":"file","filename":"img.raw"},"inject-error":[{"event":"read_aio","errno":"28"}]}}`, "read 0 512", "write 0 512")},
		{name: "inject/errno-zero-negative", size: 64 * k, args: bd(nil, "file.inject-error.0.event=none,file.inject-error.0.errno=0,file.inject-error.1.event=read_aio,file.inject-error.1.errno=-5", "write 0 512", "read 0 512")},
		{name: "inject/option-errors", size: 64 * k, args: cmds(
			"open -o driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.inject-error.errno=5",
			"open -o driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.inject-error.event=bogus",
			"open -o driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.inject-error.event=none,file.inject-error.iotype=bogus",
			"open -o driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.inject-error.event=none,file.inject-error.once=maybe",
			"open -o driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.inject-error.event=none,file.inject-error.sector=1k",
			"open -o driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.set-state.state=1")},
		{name: "inject/config-errors", size: 64 * k, files: map[string]string{
			"group.cfg": "[foo]\n", "spaced.cfg": "[ inject-error ]\n", "nospace.cfg": "[inject-error]\nevent=\"read_aio\"\n",
			"unquoted.cfg": "[inject-error]\nevent = read_aio\n", "nogroup.cfg": "event = \"read_aio\"\n",
			"badkey.cfg": "[inject-error]\nbogus = \"1\"\n", "crlf.cfg": "[inject-error]\r\nevent = \"read_aio\"\r\nerrno = \"1\" trailing\r\n",
			"empty.cfg": ""},
			args: cmds("open -o driver=raw blkdebug:group.cfg:img.raw", "open -o driver=raw blkdebug:spaced.cfg:img.raw", "open -o driver=raw blkdebug:nospace.cfg:img.raw",
				"open -o driver=raw blkdebug:unquoted.cfg:img.raw", "open -o driver=raw blkdebug:nogroup.cfg:img.raw", "open -o driver=raw blkdebug:badkey.cfg:img.raw",
				"open -o driver=raw blkdebug:crlf.cfg:img.raw", "read 0 512", "close", "open -o driver=raw blkdebug:empty.cfg:img.raw", "read 0 512")},

		// ---- null-co ----
		{name: "null/co", size: -1, args: withArgs(nil, "null-co://", "read -v 0 16", "length", "info", "map", "alloc 0 1G", "write 0 512", "write -z 0 512", "write -z -n 0 512", "discard 0 512", "flush", "truncate 512")},
		{name: "null/aio-opts", size: -1, args: withArgs([]string{"--image-opts"}, "driver=null-aio,size=4096,read-zeroes=on", "read -v 0 16", "length", "map", "alloc 0", "aio_read 0 512", "aio_flush")},
		{name: "null/aio-completion-order", size: -1, args: withArgs(nil, "null-co://", "aio_read 0 512", "aio_read 512 512", "aio_write 1024 512", "aio_flush")},
		{name: "null/stdin-completions", size: -1, args: []string{"null-co://"}, stdin: script("aio_read 0 512", "aio_read 512 512", "length", "aio_write -q 0 1", "aio_flush")},
		{name: "null/latency", size: -1, racy: "the latency timer must fire within a sleep", args: []string{"--image-opts", "driver=null-aio,latency-ns=50000000"},
			stdin: script("aio_read 0 512", "length", "sleep 200", "length", "read -v 0 4")},
		{name: "null/raw-over-null", size: -1, args: withArgs([]string{"--image-opts"}, "driver=raw,file.driver=null-co,file.size=1000", "length", "info", "read -P 0xab 0 512", "write -z -n 0 512")},

		// ---- 077-style serialisation (§8.3, Appendix B.1) ----
		{name: "rmw/appendix-b1", racy: racySleep, size: 64 * k, args: append([]string{"-t", "writeback"}, bdOpts("file.align=4096")...), stdin: rmwScript},
		{name: "rmw/raw-event-before-wait", size: 64 * k, args: append([]string{"-t", "writeback"}, bdOpts("file.align=4096")...), stdin: script(
			"break pwritev_rmw_after_tail A", "aio_write -P 0xaa 0 512", "wait_break A",
			"break write_aio B", "aio_write -P 0xbb 512 512", "wait_break B", "resume B", "sleep 100",
			"resume A", "aio_flush", "read -P 0xaa 0 512", "read -P 0xbb 512 512")},
		{name: "rmw/rmw-waits-for-aligned", racy: racySleep, size: 64 * k, args: append([]string{"-t", "writeback"}, bdOpts("file.align=4096")...), stdin: script(
			"break pwritev A", "aio_write -P 0x11 0 4k", "wait_break A",
			"break pwritev_rmw_head B", "aio_write -P 0x22 512 512", "sleep 100",
			"resume A", "wait_break B", "resume B", "aio_flush", "read -P 0x11 0 512", "read -P 0x22 512 512", "read -P 0x11 1k 3k")},
		{name: "rmw/aligned-waits-for-rmw", racy: racySleep, size: 64 * k, args: append([]string{"-t", "writeback"}, bdOpts("file.align=4096")...), stdin: script(
			"break pwritev_rmw_after_tail A", "aio_write -P 0x11 0 512", "wait_break A",
			"break pwritev C", "aio_write -P 0x33 0 4k", "sleep 100",
			"resume A", "wait_break C", "resume C", "aio_flush", "read -P 0x33 0 4k")},
		{name: "rmw/reads-wait-widened", racy: racySleep, size: 64 * k, args: append([]string{"-t", "writeback"}, bdOpts("file.align=4096")...), stdin: script(
			"break pwritev_rmw_after_tail A", "aio_write -P 0x11 0 512", "wait_break A",
			"aio_read -P 0 1024 512", "sleep 100",
			"aio_write -P 0x44 8704 512", "sleep 100",
			"resume A", "aio_flush", "read -P 0x44 8704 512")},
		// (Two reads waiting for the same request complete in the file
		// driver's thread-pool order: one waiting read per case.)
		{name: "rmw/read-sees-rmw-data", size: 64 * k, args: append([]string{"-t", "writeback"}, bdOpts("file.align=4096")...), stdin: script(
			"break pwritev_rmw_after_tail A", "aio_write -P 0x11 0 512", "wait_break A",
			"aio_read -P 0x11 0 512", "sleep 100", "resume A", "aio_flush")},
		{name: "rmw/aligned-writes-race", racy: racySleep, size: 64 * k, args: append([]string{"-t", "writeback"}, bdOpts("file.align=4096")...), stdin: script(
			"break pwritev A", "aio_write -P 0xaa 0 4k", "wait_break A",
			"aio_write -P 0xbb 0 4k", "sleep 100", "aio_read -P 0xbb 0 4k", "sleep 100",
			"resume A", "aio_flush", "read -P 0xaa 0 4k")},
		{name: "rmw/tail-only-chain", racy: racySleep, size: 64 * k, args: append([]string{"-t", "writeback"}, bdOpts("file.align=4096")...), stdin: script(
			"break pwritev_rmw_after_tail A", "aio_write -P 0x10 0 100", "wait_break A",
			"break pwritev_rmw_after_tail B", "aio_write -P 0x20 100 100", "sleep 50",
			"break pwritev_rmw_after_tail C", "aio_write -P 0x30 200 100", "sleep 50",
			"resume A", "wait_break B", "resume B", "wait_break C", "resume C", "aio_flush",
			"read -P 0x10 0 100", "read -P 0x20 100 100", "read -P 0x30 200 100", "read -P 0 300 3796")},
		{name: "rmw/zero-write-serialised", racy: racySleep, size: 64 * k, prep: filled, args: append([]string{"-t", "writeback"}, bdOpts("file.align=4096")...), stdin: script(
			"break pwritev_rmw_after_head A", "aio_write -z 2048 8192", "wait_break A",
			"break pwritev_rmw_tail B", "aio_write -P 0x55 8192 512", "sleep 100",
			"resume A", "wait_break B", "resume B", "aio_flush",
			"read -P 0xaa 0 2048", "read -P 0 2048 6144", "read -P 0x55 8192 512", "read -P 0 8704 1536", "read -P 0xaa 10240 2048")},
	}
	for _, c := range helpCommands {
		cs = append(cs, diffCase{name: "help/" + c, size: -1, args: cmds("help " + c)})
	}
	cs = append(cs,
		diffCase{name: "help/all", size: -1, args: cmds("help")},
		diffCase{name: "help/alias-and-errors", size: -1, args: cmds("?", "help r", "? w", "help nosuch", "help read write")},
	)
	return cs
}

// setupDir lays out a case's files in dir.
func setupDir(t *testing.T, dir string, c diffCase) {
	t.Helper()
	if c.size >= 0 {
		p := filepath.Join(dir, "img.raw")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, c.size); err != nil {
			t.Fatal(err)
		}
		if len(c.prep) > 0 {
			args := append([]string{"-f", "raw"}, cmds(c.prep...)...)
			cmd := exec.Command("qemu-io", append(args, "img.raw")...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("prep %q: %v\n%s", c.prep, err, out)
			}
		}
	}
	for name, content := range c.files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// result is what one run produced.
type result struct {
	out   string
	rc    int
	files map[string]string // name to path
}

const runTimeout = 3 * time.Minute

// runIn runs bin with args in dir: stdout and stderr into one pipe.
func runIn(t *testing.T, bin, dir string, args []string, stdin *string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf // same writer: exec gives both the same pipe
	if stdin != nil {
		cmd.Stdin = strings.NewReader(*stdin)
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q: timed out after %v; output so far:\n%s", filepath.Base(bin), args, runTimeout, buf.String())
	}
	rc := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s: %v", bin, err)
		}
		ws := ee.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			rc = 128 + int(ws.Signal())
		default:
			rc = ws.ExitStatus()
		}
	}
	return result{out: buf.String(), rc: rc, files: readFiles(t, dir)}
}

// readFiles lists the regular files of dir (name to path).
func readFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range ents {
		if e.Type().IsRegular() {
			files[e.Name()] = filepath.Join(dir, e.Name())
		}
	}
	return files
}

// firstDifference compares two files chunk by chunk (images may be
// large and sparse); -1 means equal.
func firstDifference(a, b string) (int64, error) {
	fa, err := os.Open(a)
	if err != nil {
		return 0, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return 0, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		n := min(na, nb)
		if i := firstMismatch(ba[:n], bb[:n]); i >= 0 {
			return off + int64(i), nil
		}
		if na != nb {
			return off + int64(n), nil
		}
		off += int64(n)
		if ea != nil || eb != nil {
			return -1, nil
		}
	}
}

func firstMismatch(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// compareFiles describes how two directory snapshots differ ("" = same).
func compareFiles(q, g map[string]string) string {
	var names []string
	for n := range q {
		names = append(names, n)
	}
	for n := range g {
		if _, ok := q[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var diffs []string
	for _, n := range names {
		qp, qok := q[n]
		gp, gok := g[n]
		switch {
		case !qok:
			diffs = append(diffs, fmt.Sprintf("%s: only in gio's directory", n))
		case !gok:
			diffs = append(diffs, fmt.Sprintf("%s: only in qemu-io's directory", n))
		default:
			qs, err1 := os.Stat(qp)
			gs, err2 := os.Stat(gp)
			if err1 != nil || err2 != nil {
				diffs = append(diffs, fmt.Sprintf("%s: %v %v", n, err1, err2))
				continue
			}
			if qs.Size() != gs.Size() {
				diffs = append(diffs, fmt.Sprintf("%s: size qemu-io %d, gio %d", n, qs.Size(), gs.Size()))
				continue
			}
			off, err := firstDifference(qp, gp)
			switch {
			case err != nil:
				diffs = append(diffs, fmt.Sprintf("%s: %v", n, err))
			case off >= 0:
				diffs = append(diffs, fmt.Sprintf("%s: first difference at byte %d", n, off))
			}
		}
	}
	return strings.Join(diffs, "\n")
}

func TestDiff(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not on PATH")
	}
	seen := map[string]bool{}
	for _, c := range diffCases() {
		if seen[c.name] {
			t.Fatalf("duplicate case name %s", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			gdir := t.TempDir()
			setupDir(t, gdir, c)
			g := runIn(t, gioBin, gdir, c.args, c.stdin)
			problems := compareWithQemu(t, c, g)
			// A timing-dependent case gets more qemu-io runs: gio
			// matches if it matches any of them.
			for try := 0; len(problems) > 0 && c.racy != "" && try < 3; try++ {
				t.Logf("qemu-io differed (%s); running it again", c.racy)
				problems = compareWithQemu(t, c, g)
			}
			for _, p := range problems {
				t.Error(p)
			}
		})
	}
}

// compareWithQemu runs qemu-io for c in a fresh directory and lists how
// gio's result g differs from it.
func compareWithQemu(t *testing.T, c diffCase, g result) []string {
	t.Helper()
	qdir := t.TempDir()
	setupDir(t, qdir, c)
	q := runIn(t, "qemu-io", qdir, c.args, c.stdin)
	var problems []string
	qo, gout := filterQemuIO(q.out), filterQemuIO(g.out)
	if qo != gout {
		problems = append(problems, fmt.Sprintf("output differs (args %q)\n--- qemu-io\n%s\n--- gio\n%s\n--- diff\n%s", c.args, qo, gout, lineDiff(qo, gout)))
	}
	if q.rc != g.rc {
		problems = append(problems, fmt.Sprintf("exit status: qemu-io %d, gio %d", q.rc, g.rc))
	}
	qf, gf := q.files, g.files
	if c.garbage != "" {
		qf, gf = maps.Clone(qf), maps.Clone(gf)
		delete(qf, "img.raw")
		delete(gf, "img.raw")
	}
	if d := compareFiles(qf, gf); d != "" {
		problems = append(problems, "files differ:\n"+d)
	}
	return problems
}

// lineDiff lists the lines that differ position by position (enough to
// read a mismatch; the full outputs are printed above it).
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("line %d:\n  qemu-io: %s\n  gio:     %s", i+1, strconv.Quote(x), strconv.Quote(y)))
		}
	}
	return strings.Join(out, "\n")
}

// gioOnlyCase pins gio's behaviour where qemu-io cannot be the oracle
// (it crashes, hangs or is not deterministic).
type gioOnlyCase struct {
	name  string
	size  int64
	args  []string
	stdin *string
	// want is the complete filtered output, rc the exit status.
	want string
	rc   int
}

func gioOnlyCases() []gioOnlyCase {
	report := func(op string, n, off int) string {
		return fmt.Sprintf("%s %d/%d bytes at offset %d\n%s, X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)\n",
			op, n, n, off, map[int]string{512: "512 bytes"}[n])
	}
	return []gioOnlyCase{
		{
			// qemu-io 7.2 ignores a failed read-modify-write padding read
			// and writes its uninitialised padding buffer over the
			// neighbouring bytes; gio fails the write and keeps the data.
			name: "rmw-padding-read-error-fails-the-write", size: 64 * k,
			args: bd(nil, "file.align=4096,file.inject-error.event=pwritev_rmw_head,file.inject-error.iotype=read,file.inject-error.once=on",
				"write -q -P 0x11 0 64k", "write -P 0x22 10000 100", "read -q -P 0x11 0 64k"),
			want: "write failed: Input/output error\n", rc: 1,
		},
		{
			// qemu-io 7.2 dies with SIGSEGV.
			name: "truncate-mode-without-offset", size: 64 * k,
			args: rawc("truncate -m full", "length"),
			want: "truncate [-m prealloc_mode] off -- truncates the current file at the given offset\n64 KiB\n", rc: 1,
		},
		{
			// qemu-io 7.2 dies with SIGFPE; gio skips the unaligned
			// pieces as if opt-discard were set.
			name: "unaligned-discard-without-opt-discard", size: 64 * k,
			args: bd(nil, "file.align=4096", "write -q -P 1 0 8k", "discard 512 512", "discard 2048 4096", "read -P 1 0 8k"),
			want: report("discard", 512, 512) + "discard 4096/4096 bytes at offset 2048\n4 KiB, X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)\n" +
				"read 8192/8192 bytes at offset 0\n8 KiB, X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)\n",
		},
		{
			// qemu-io hangs forever draining a suspended request.
			name: "quit-with-suspended-request", size: 64 * k,
			args: bd(nil, "", "break write_aio A", "aio_write 0 512", "quit"),
			// stderr is unbuffered, stdout is flushed at exit.
			want: "gio: close can never happen: #1 aio_write 0 512 suspended at 'A'\nblkdebug: Suspended request 'A'\n", rc: 1,
		},
		{
			// qemu-io hangs: the exit-time flush hits the breakpoint.
			name: "flush-breakpoint-at-exit", size: 64 * k,
			args: bd(nil, "", "break flush_to_os A"),
			rc:   1,
		},
		{
			// qemu-io hangs in aio_flush.
			name: "aio-flush-with-suspended-request", size: 64 * k,
			args: bd(nil, "", "break read_aio A", "aio_read 0 512", "aio_flush", "resume A", "aio_flush"),
			rc:   1,
		},
		{
			// qemu-io hangs in a synchronous command stopped at a breakpoint.
			name: "sync-read-at-breakpoint", size: 64 * k,
			args: bd(nil, "", "break read_aio A", "read 0 512", "resume A", "length"),
			rc:   1,
		},
		{
			// qemu-io waits forever for a breakpoint nothing can reach.
			name: "wait-break-never", size: 64 * k,
			args: rawc("wait_break A", "length"),
			want: "gio: wait_break A: no blkdebug node, nothing can suspend a request\n64 KiB\n", rc: 1,
		},
		{
			// qemu-io's completion order of unsuspended file-driver aio
			// requests varies; gio's is submission order.
			name: "aio-completion-order", size: 64 * k,
			args: rawc("aio_write 0 512", "aio_write 512 512", "aio_write 1024 512", "aio_flush"),
			want: report("wrote", 512, 0) + report("wrote", 512, 512) + report("wrote", 512, 1024),
		},
		{
			// qemu-io reports the machine's uptime as the time of aio_write -z.
			name: "aio-write-zeroes-machine-report", size: 64 * k,
			args: rawc("aio_write -z -C 0 512", "aio_flush"),
			want: "512,1,TIME,RATE,OPS\n",
		},
	}
}

// TestGioOnly checks gio where qemu-io crashes, hangs or varies: gio must
// finish, must not crash, and must explain an impossible wait in one line.
func TestGioOnly(t *testing.T) {
	for _, c := range gioOnlyCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			setupDir(t, dir, diffCase{size: c.size})
			r := runIn(t, gioBin, dir, c.args, c.stdin)
			out := filterQemuIO(r.out)
			if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") {
				t.Fatalf("gio crashed:\n%s", out)
			}
			if r.rc != c.rc {
				t.Errorf("exit status %d, want %d\n%s", r.rc, c.rc, out)
			}
			if c.want != "" && out != c.want {
				t.Errorf("output:\n%s\nwant:\n%s", out, c.want)
			}
			if c.want == "" {
				// An impossible wait: exactly one line explains it.
				n := 0
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, "gio: ") {
						n++
					}
				}
				if n != 1 {
					t.Errorf("want exactly one gio: error line, got:\n%s", out)
				}
			}
		})
	}
}
