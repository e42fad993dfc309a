package main

// Recorded differential cases: testdata/{diff,bad,qcow2,vhdx,formats,
// crypto,iotests}/*.txt hold qemu-io 7.2's answers as files, so that a plain
// "go test" compares gio with them and needs no qemu-io. Each case is
//
//	case NAME
//	size 65536                       img.raw, sparse (absent: no image)
//	prep write -P 0xaa 0 64k         qemu-io command run on img.raw first
//	file NAME "Go-quoted content"    more files in the case directory
//	sparse NAME SIZE                 a sparse file of zeroes
//	mkdir NAME                       a subdirectory
//	noperm NAME                      a 4 KiB file nobody may open (skips as root)
//	tmpfs SIZE                       a small tmpfs on the case directory (root only)
//	setup ARGV...                    a setup command, run before the program
//	                                 (qemu-img, qemu-io, gio, sh...: see "Programs")
//	args ARG...                      the command line (Go-quoted where needed)
//	run ARGV...                      or, instead of args, a multi-step case: the
//	                                 programs run in turn, each one's output and
//	                                 exit status recorded (see "Programs")
//	stdin "Go-quoted"                fed on stdin (else /dev/null), or
//	stdin <<EOF ... EOF              the same as a here-document, or
//	step [truncate=SIZE] LINE        stdin one prompt at a time (img.raw resized first)
//	qemu crashes|hangs|differs       qemu-io cannot be the oracle: the
//	                                 expectation is gio's own, and the live
//	                                 run checks that qemu-io still crashes
//	                                 or hangs ("differs": gio differs on
//	                                 purpose, or qemu-io varies; README)
//	racy REASON                      qemu-io's output depends on timing: the
//	                                 live run retries it up to three times
//	unordered REASON                 outputs are compared with their lines sorted
//	garbage REASON                   img.raw is not compared (qemu-io writes
//	                                 uninitialised memory)
//	nofiles                          no file is compared
//	nohash NAME REASON               NAME's bytes are not compared (random
//	                                 keys or dates of the tool that made it)
//	mask NAME SPEC...                bytes of NAME (a glob) left out of its hash:
//	                                 OFF+LEN (OFF < 0: from the end) or
//	                                 /REGEXP/ (matches replaced by X in each
//	                                 4 KiB block), e.g. vmdk's random CID
//	realqemu REASON                  qemu-io lines need the real qemu-io
//	filter /REGEXP/                  matches in the outputs replaced by X (random
//	                                 fields qemu-img put in the image, as LUKS
//	                                 iteration counts and UUIDs)
//	convert NAME [SRC...]            NAME's guest content is recorded, as
//	                                 qemu-img convert -O raw SRC reads it
//	                                 (SRC: --object/--image-opts; default NAME)
//	check leaks|none                 qcow2: qemu-img check may find leaks / is not run
//	anylayout                        qcow2: image content, not bytes, is compared
//	image NAME                       a setup case's image in another format
//	                                 (img.vhdx): checked and its content
//	                                 compared as a qcow2 one's, its bytes
//	                                 (random GUIDs) and map not compared
//	---- output [noeol]
//	the output after _filter_qemu_io (stdout and stderr on one pipe);
//	a run case has one output section per run line, in order
//	---- map                         qcow2: qemu-img map --output=human, then json
//	...
//	---- result
//	exit 1                           (a run case: one status per run, "exit 0 1 0")
//	hash NAME SIZE HEX               every regular file the case leaves
//	content NAME HEX                 the guest content (qcow2 args cases: of
//	                                 img.qcow2; convert lines: of NAME)
//
// A case with setup lines and args is a qcow2 case of the implicit kind:
// gio's img.qcow2 must pass qemu-img check, and its content and map are
// recorded. A run case checks only what its runs show (run qemu-img check
// img.qcow2 records the check's output) and its files.
//
// Programs. The first word of a setup or run line is
//   - IO: the program under test, gio (or qemu-io in the live run);
//   - qemu-io: the real qemu-io, making or reading an image; gio where
//     qemu-io is not installed, unless the case says "realqemu REASON"
//     (gio would make other bytes, e.g. compressed clusters), then the
//     case skips;
//   - gio: gio, in either run;
//   - qemu-img: qemu-img. Where it is not installed, "qemu-img create" of
//     a raw, qcow2, qed or qcow image runs gio's create instead
//     (TestCreateFallback checks that the bytes are qemu-img's), and any
//     other use skips the case with the reason;
//   - anything else (sh, od, cp, mv): that program (the case skips without).
// Secrets and other objects are plain arguments (--object secret,...).
//
// The files of setup lines that make LUKS images come from
// testdata/setups (setups_test.go), not from qemu-img, unless -update.
//
// Plain "go test" runs gio and compares with the record. With
// GIO_QEMU_ORACLE=1 each case also runs the real qemu-io and fails if gio
// or the record differs from it (CI does this, so records cannot go
// stale). "go test -run TestRecorded -update" re-records the cases from
// qemu-io (gio's own answers where qemu-io crashes, hangs or differs are
// recorded only for a case that has none yet). To add a case, append its
// input lines to a file (or a new .txt file) with "---- output" and
// "---- result" empty, and run with -update; read the diff. A run case
// looks like
//
//	case lazy/killed
//	setup qemu-img create -q -f qcow2 -o lazy_refcounts=on img.qcow2 16M
//	run IO -t writethrough -c "write -P 0x5a 0 512" -c "sigraise 9" img.qcow2
//	run od -An -tx1 -j72 -N8 img.qcow2
//	run qemu-img check img.qcow2
//	---- output
//	---- result

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "re-record testdata/{diff,bad,qcow2} from the real qemu-io")

// oracleLive says whether qemu-io runs beside gio (GIO_QEMU_ORACLE=1).
func oracleLive() bool { return os.Getenv("GIO_QEMU_ORACLE") == "1" }

// recFile is a file laid out before a case runs.
type recFile struct {
	name    string
	content string
	sparse  int64 // > 0: a sparse file of this size instead of content
}

// recStep is one stdin line fed when its prompt appears.
type recStep struct {
	line     string
	truncate int64 // >= 0: img.raw is resized to this first
}

// recHash is one file's recorded hash.
type recHash struct {
	name string
	size int64
	hex  string
}

// recCase is one recorded case: its input and qemu-io's answer.
type recCase struct {
	file string
	line int

	name      string
	size      int64 // of img.raw, -1: none
	prep      []string
	files     []recFile
	mkdirs    []string
	noperm    []string
	tmpfs     string
	setup     [][]string
	args      []string
	stdin     *string
	steps     []recStep
	qemu      string // "", "crashes", "hangs", "differs"
	racy      string
	garbage   string
	nofiles   bool
	check     string // qcow2: "", "leaks", "none"
	anyLayout bool
	runs      [][]string // a multi-step case: the programs run in turn
	nohash    []recNoHash
	masks     []recMask
	converts  [][]string // convert NAME [ARGS...]: guest content recorded
	unordered string
	filters   []*regexp.Regexp
	realQemu  string
	image     string // a setup case's image when not img.qcow2

	freshSetup bool // its setup lines run, whatever the setup caches hold (TestCommittedSetupFresh)

	// The record: one output and exit status per program run.
	recorded bool
	outs     []string
	qmap     *string
	rcs      []int
	hashes   []recHash
	content  []recHash
}

// recNoHash is a file whose bytes are not compared.
type recNoHash struct{ name, reason string }

// recMask hides bytes of a file from its hash: a range (off < 0 counts
// from the end of the file) or the matches of a regular expression.
type recMask struct {
	name string
	spec string // as written
	off  int64
	n    int64
	re   *regexp.Regexp
}

func (c *recCase) pos() string { return fmt.Sprintf("%s:%d", c.file, c.line) }

// qcow2 says whether the case checks a qcow2 image the implicit way
// (setup commands and args: qemu-img check, map and content of img.qcow2).
func (c *recCase) qcow2() bool { return len(c.setup) > 0 && c.runs == nil }

// programs are the command lines the case runs: its runs, or "IO" (the
// program under test) with its args.
func (c *recCase) programs() [][]string {
	if c.runs != nil {
		return c.runs
	}
	return [][]string{append([]string{"IO"}, c.args...)}
}

// quoteArg writes a word plainly when it reads back the same, else
// Go-quoted.
func quoteArg(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"\\\r\n") || !strconv.IsPrint(rune(s[0])) || strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func quoteArgs(a []string) string {
	q := make([]string, len(a))
	for i, s := range a {
		q[i] = quoteArg(s)
	}
	return strings.Join(q, " ")
}

// splitArgs reads back quoteArgs.
func splitArgs(s string) ([]string, error) {
	var a []string
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return a, nil
		}
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("bad quoted word %q", s)
			}
			u, _ := strconv.Unquote(q)
			a = append(a, u)
			s = s[len(q):]
			if s != "" && s[0] != ' ' {
				return nil, fmt.Errorf("no space after quoted word %s", q)
			}
			continue
		}
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			i = len(s)
		}
		a = append(a, s[:i])
		s = s[i:]
	}
}

// parseRecords reads a record file.
func parseRecords(path string) ([]*recCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(data), "\n")
	var cs []*recCase
	var c *recCase
	fail := func(i int, format string, a ...any) error {
		return fmt.Errorf("%s:%d: %s", path, i+1, fmt.Sprintf(format, a...))
	}
	// verbatim reads lines up to the next "---- " line.
	verbatim := func(i int) (string, int) {
		var b strings.Builder
		for ; i < len(lines) && !strings.HasPrefix(lines[i], "---- "); i++ {
			b.WriteString(lines[i])
			b.WriteByte('\n')
		}
		return b.String(), i
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if c == nil || !strings.HasPrefix(l, "---- ") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
		}
		word, rest, _ := strings.Cut(l, " ")
		if word == "case" {
			c = &recCase{file: path, line: i + 1, name: rest, size: -1}
			cs = append(cs, c)
			continue
		}
		if c == nil {
			return nil, fail(i, "%q before the first case", l)
		}
		switch word {
		case "size":
			n, err := strconv.ParseInt(rest, 10, 64)
			if err != nil {
				return nil, fail(i, "%v", err)
			}
			c.size = n
		case "prep":
			c.prep = append(c.prep, rest)
		case "file":
			name, q, _ := strings.Cut(rest, " ")
			s, err := strconv.Unquote(q)
			if err != nil {
				return nil, fail(i, "file content: %v", err)
			}
			c.files = append(c.files, recFile{name: name, content: s})
		case "sparse":
			name, n, _ := strings.Cut(rest, " ")
			sz, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return nil, fail(i, "%v", err)
			}
			c.files = append(c.files, recFile{name: name, sparse: sz})
		case "mkdir":
			c.mkdirs = append(c.mkdirs, rest)
		case "noperm":
			c.noperm = append(c.noperm, rest)
		case "tmpfs":
			c.tmpfs = rest
		case "setup", "args", "run", "convert":
			a, err := splitArgs(rest)
			if err != nil {
				return nil, fail(i, "%v", err)
			}
			if len(a) == 0 && word != "args" {
				return nil, fail(i, "%s without arguments", word)
			}
			switch word {
			case "setup":
				c.setup = append(c.setup, a)
			case "args":
				c.args = a
			case "run":
				c.runs = append(c.runs, a)
			case "convert":
				c.converts = append(c.converts, a)
			}
		case "nohash":
			name, reason, _ := strings.Cut(rest, " ")
			c.nohash = append(c.nohash, recNoHash{name, reason})
		case "mask":
			f := strings.Fields(rest)
			if len(f) < 2 {
				return nil, fail(i, "mask NAME SPEC...")
			}
			for _, spec := range f[1:] {
				m, err := parseMask(f[0], spec)
				if err != nil {
					return nil, fail(i, "%v", err)
				}
				c.masks = append(c.masks, m)
			}
		case "unordered":
			c.unordered = rest
		case "realqemu":
			c.realQemu = rest
		case "filter":
			if len(rest) < 2 || rest[0] != '/' || rest[len(rest)-1] != '/' {
				return nil, fail(i, "filter /REGEXP/")
			}
			re, err := regexp.Compile(rest[1 : len(rest)-1])
			if err != nil {
				return nil, fail(i, "%v", err)
			}
			c.filters = append(c.filters, re)
		case "stdin":
			if strings.HasPrefix(rest, "<<") {
				end := strings.TrimPrefix(rest, "<<")
				var b strings.Builder
				for i++; i < len(lines) && lines[i] != end; i++ {
					b.WriteString(lines[i])
					b.WriteByte('\n')
				}
				if i == len(lines) {
					return nil, fail(c.line-1, "stdin here-document without %s", end)
				}
				s := b.String()
				c.stdin = &s
				continue
			}
			s, err := strconv.Unquote(rest)
			if err != nil {
				return nil, fail(i, "stdin: %v", err)
			}
			c.stdin = &s
		case "step":
			st := recStep{truncate: -1}
			if v, ok := strings.CutPrefix(rest, "truncate="); ok {
				n, line, _ := strings.Cut(v, " ")
				sz, err := strconv.ParseInt(n, 10, 64)
				if err != nil {
					return nil, fail(i, "%v", err)
				}
				st.truncate, rest = sz, line
			}
			s, err := strconv.Unquote(rest)
			if err != nil {
				return nil, fail(i, "step: %v", err)
			}
			st.line = s
			c.steps = append(c.steps, st)
		case "qemu":
			if rest != "crashes" && rest != "hangs" && rest != "differs" {
				return nil, fail(i, "qemu %q: want crashes, hangs or differs", rest)
			}
			c.qemu = rest
		case "racy":
			c.racy = rest
		case "garbage":
			c.garbage = rest
		case "nofiles":
			c.nofiles = true
		case "check":
			c.check = rest
		case "anylayout":
			c.anyLayout = true
		case "image":
			c.image = rest
		case "----":
			// The record: output, map, result.
			for i < len(lines) && strings.HasPrefix(lines[i], "---- ") {
				sec := strings.Fields(strings.TrimPrefix(lines[i], "---- "))
				switch {
				case len(sec) > 0 && sec[0] == "output":
					out, j := verbatim(i + 1)
					if len(sec) > 1 && sec[1] == "noeol" {
						out = strings.TrimSuffix(out, "\n")
					}
					c.outs, i = append(c.outs, out), j
				case len(sec) == 1 && sec[0] == "map":
					m, j := verbatim(i + 1)
					c.qmap, i = &m, j
				case len(sec) == 1 && sec[0] == "result":
					for i++; i < len(lines) && lines[i] != ""; i++ {
						f := strings.Fields(lines[i])
						switch {
						case len(f) >= 2 && f[0] == "exit":
							for _, s := range f[1:] {
								rc, err := strconv.Atoi(s)
								if err != nil {
									return nil, fail(i, "%v", err)
								}
								c.rcs = append(c.rcs, rc)
							}
							c.recorded = true
						case len(f) == 4 && f[0] == "hash":
							sz, err := strconv.ParseInt(f[2], 10, 64)
							if err != nil {
								return nil, fail(i, "%v", err)
							}
							c.hashes = append(c.hashes, recHash{f[1], sz, f[3]})
						case len(f) == 3 && f[0] == "content":
							c.content = append(c.content, recHash{f[1], -1, f[2]})
						default:
							return nil, fail(i, "bad result line %q", lines[i])
						}
					}
				default:
					return nil, fail(i, "unknown section %q", lines[i])
				}
			}
			if c.args != nil && c.runs != nil {
				return nil, fail(c.line-1, "case %s has both args and run lines", c.name)
			}
			if c.recorded && (len(c.outs) != len(c.programs()) || len(c.rcs) != len(c.programs())) {
				return nil, fail(c.line-1, "case %s: %d outputs and %d exit statuses for %d programs", c.name, len(c.outs), len(c.rcs), len(c.programs()))
			}
			c = nil
		default:
			return nil, fail(i, "unknown directive %q", word)
		}
	}
	return cs, nil
}

// formatRecord writes c back in the form parseRecords reads.
func formatRecord(w *bytes.Buffer, c *recCase) {
	fmt.Fprintf(w, "case %s\n", c.name)
	if c.size >= 0 {
		fmt.Fprintf(w, "size %d\n", c.size)
	}
	for _, p := range c.prep {
		fmt.Fprintf(w, "prep %s\n", p)
	}
	for _, f := range c.files {
		if f.sparse > 0 {
			fmt.Fprintf(w, "sparse %s %d\n", f.name, f.sparse)
		} else {
			fmt.Fprintf(w, "file %s %s\n", f.name, strconv.Quote(f.content))
		}
	}
	for _, d := range c.mkdirs {
		fmt.Fprintf(w, "mkdir %s\n", d)
	}
	for _, d := range c.noperm {
		fmt.Fprintf(w, "noperm %s\n", d)
	}
	if c.tmpfs != "" {
		fmt.Fprintf(w, "tmpfs %s\n", c.tmpfs)
	}
	for _, s := range c.setup {
		fmt.Fprintf(w, "setup %s\n", quoteArgs(s))
	}
	if c.runs == nil {
		fmt.Fprintf(w, "args %s\n", quoteArgs(c.args))
	}
	for _, r := range c.runs {
		fmt.Fprintf(w, "run %s\n", quoteArgs(r))
	}
	if c.stdin != nil {
		s := *c.stdin
		lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		clean := strings.HasSuffix(s, "\n") && !strings.ContainsAny(s, "\r") && strconv.CanBackquote(strings.ReplaceAll(s, "\n", ""))
		for _, l := range lines {
			if l == "EOF" {
				clean = false
			}
		}
		if clean {
			fmt.Fprintf(w, "stdin <<EOF\n%sEOF\n", s)
		} else {
			fmt.Fprintf(w, "stdin %s\n", strconv.Quote(s))
		}
	}
	for _, st := range c.steps {
		if st.truncate >= 0 {
			fmt.Fprintf(w, "step truncate=%d %s\n", st.truncate, strconv.Quote(st.line))
		} else {
			fmt.Fprintf(w, "step %s\n", strconv.Quote(st.line))
		}
	}
	if c.qemu != "" {
		fmt.Fprintf(w, "qemu %s\n", c.qemu)
	}
	if c.racy != "" {
		fmt.Fprintf(w, "racy %s\n", c.racy)
	}
	if c.garbage != "" {
		fmt.Fprintf(w, "garbage %s\n", c.garbage)
	}
	if c.nofiles {
		fmt.Fprintf(w, "nofiles\n")
	}
	if c.check != "" {
		fmt.Fprintf(w, "check %s\n", c.check)
	}
	if c.anyLayout {
		fmt.Fprintf(w, "anylayout\n")
	}
	for _, n := range c.nohash {
		fmt.Fprintf(w, "nohash %s %s\n", n.name, n.reason)
	}
	for i := 0; i < len(c.masks); {
		j := i
		var specs []string
		for ; j < len(c.masks) && c.masks[j].name == c.masks[i].name; j++ {
			specs = append(specs, c.masks[j].spec)
		}
		fmt.Fprintf(w, "mask %s %s\n", c.masks[i].name, strings.Join(specs, " "))
		i = j
	}
	for _, a := range c.converts {
		fmt.Fprintf(w, "convert %s\n", quoteArgs(a))
	}
	if c.unordered != "" {
		fmt.Fprintf(w, "unordered %s\n", c.unordered)
	}
	for _, re := range c.filters {
		fmt.Fprintf(w, "filter /%s/\n", re)
	}
	if c.realQemu != "" {
		fmt.Fprintf(w, "realqemu %s\n", c.realQemu)
	}
	if c.image != "" {
		fmt.Fprintf(w, "image %s\n", c.image)
	}
	if !c.recorded {
		w.WriteString("---- output\n---- result\n\n")
		return
	}
	for _, out := range c.outs {
		if out != "" && !strings.HasSuffix(out, "\n") {
			fmt.Fprintf(w, "---- output noeol\n%s\n", out)
		} else {
			fmt.Fprintf(w, "---- output\n%s", out)
		}
	}
	if c.qmap != nil {
		fmt.Fprintf(w, "---- map\n%s", *c.qmap)
	}
	w.WriteString("---- result\nexit")
	for _, rc := range c.rcs {
		fmt.Fprintf(w, " %d", rc)
	}
	w.WriteString("\n")
	for _, h := range c.hashes {
		fmt.Fprintf(w, "hash %s %d %s\n", h.name, h.size, h.hex)
	}
	for _, h := range c.content {
		fmt.Fprintf(w, "content %s %s\n", h.name, h.hex)
	}
	w.WriteString("\n")
}

// zeroHash hashes a file's content without reading its holes: the size,
// then the offset and bytes of every 4 KiB block that is not all zeroes.
// Two files with the same bytes hash the same whatever their holes (a
// 3 GiB sparse image hashes in milliseconds).
func zeroHash(path string, masks ...recMask) (size int64, sum string, err error) {
	m, err := mapFile(path)
	if err != nil {
		return 0, "", err
	}
	defer m.unmap()
	size = int64(len(m.b))
	h := sha256.New()
	var hdr [8]byte
	// A text mask may replace a field of varying length (vmdk's CID is
	// printed without leading zeroes), which moves the end of a
	// descriptor file by a byte or two: such a file's size is counted in
	// the 4 KiB blocks the masks work on. (A descriptor embedded in a
	// sparse extent has a padded area of fixed size.)
	reported := size
	if slices.ContainsFunc(masks, func(m recMask) bool { return m.re != nil }) {
		reported = (size + 4095) &^ 4095
	}
	binary.LittleEndian.PutUint64(hdr[:], uint64(reported))
	h.Write(hdr[:])
	const blk = 4096
	zero := zeroPage()
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(m.f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			data = off // no SEEK_DATA here: read everything
		}
		data -= data % blk
		hole, err := unix.Seek(int(m.f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		hole = min(hole, size)
		applyMasks(m.b[data:hole], data, size, masks)
		for off = data; off < hole; off += blk {
			b := m.b[off:min(hole, off+blk)]
			if len(masks) > 0 {
				b = maskText(b, masks)
			}
			if !bytes.Equal(b, zero[:min(len(b), blk)]) {
				binary.LittleEndian.PutUint64(hdr[:], uint64(off))
				h.Write(hdr[:])
				h.Write(b)
			}
		}
		off = max(off, hole)
	}
	return reported, hex.EncodeToString(h.Sum(nil))[:32], nil
}

// mappedFile is a file mapped copy-on-write: the hashes and comparisons
// read it in place, and masks clear bytes of the copy only. Memory
// outside the Go heap is also memory the race detector does not
// annotate, which for the test binary's reads of gigabytes of images
// under -race was most of their cost (every read and bytes.Equal marks
// each byte of its buffers).
type mappedFile struct {
	f *os.File
	b []byte // the file's bytes, len the file's size
}

func mapFile(path string) (*mappedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	m := &mappedFile{f: f}
	if st.Size() > 0 {
		if m.b, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE); err != nil {
			f.Close()
			return nil, fmt.Errorf("mmap %s: %w", path, err)
		}
	}
	return m, nil
}

func (m *mappedFile) unmap() {
	if m.b != nil {
		unix.Munmap(m.b)
	}
	m.f.Close()
}

// zeroPage is 4 KiB of zeroes outside the Go heap (see mappedFile).
var zeroPage = sync.OnceValue(func() []byte {
	b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return make([]byte, 4096)
	}
	return b
})

// parseMask reads a mask SPEC of file name: OFF+LEN (OFF < 0 counts
// from the end) or /REGEXP/.
func parseMask(name, spec string) (recMask, error) {
	m := recMask{name: name, spec: spec}
	if len(spec) >= 2 && spec[0] == '/' && spec[len(spec)-1] == '/' {
		re, err := regexp.Compile(spec[1 : len(spec)-1])
		m.re = re
		return m, err
	}
	o, n, ok := strings.Cut(spec, "+")
	off, err1 := strconv.ParseInt(o, 0, 64)
	ln, err2 := strconv.ParseInt(n, 0, 64)
	if !ok || err1 != nil || err2 != nil || ln <= 0 {
		return m, fmt.Errorf("bad mask %q: want OFF+LEN or /REGEXP/", spec)
	}
	m.off, m.n = off, ln
	return m, nil
}

// applyMasks zeroes the masked ranges within b, which holds the bytes of
// a file of size size at off.
func applyMasks(b []byte, off, size int64, masks []recMask) {
	for _, m := range masks {
		if m.re != nil {
			continue
		}
		start := m.off
		if start < 0 {
			start += size
		}
		lo, hi := max(start, off), min(start+m.n, off+int64(len(b)))
		if lo < hi {
			clear(b[lo-off : hi-off])
		}
	}
}

// maskText replaces the regular expression matches within one block
// with "X" (a text field of varying length, such as vmdk's CID, hashes
// the same whatever its value), and drops the block's trailing zeroes
// (the text after it moves; the hash has the block's offset and the
// file's size, so nothing is lost).
//
// A C string rewritten in place leaves the old string's last bytes after
// the new one's NUL when the new one is shorter: vmdk_write_cid writes a
// random CID into the descriptor, and gio a CID derived from the old one,
// so those leftover bytes (at most a CID's 8 digits) differ from run to
// run. Up to 8 bytes after the first NUL that follows the last match are
// cleared.
func maskText(b []byte, masks []recMask) []byte {
	for _, m := range masks {
		if m.re == nil {
			continue
		}
		if locs := m.re.FindAllIndex(b, -1); len(locs) > 0 {
			end := locs[len(locs)-1][1]
			if nul := bytes.IndexByte(b[end:], 0); nul >= 0 {
				rest := b[end+nul+1:]
				for i := 0; i < len(rest) && i < 8 && rest[i] != 0; i++ {
					rest[i] = 0
				}
			}
		}
		b = bytes.TrimRight(m.re.ReplaceAll(b, []byte("X")), "\x00")
	}
	return b
}

// masksOf lists the masks of file name (a mask's name may be a pattern).
func masksOf(c *recCase, name string) []recMask {
	var ms []recMask
	for _, m := range c.masks {
		if ok, _ := filepath.Match(m.name, name); ok {
			ms = append(ms, m)
		}
	}
	return ms
}

// hashFiles hashes the regular files of a run's directory, by name.
func hashFiles(t *testing.T, c *recCase, files map[string]string, skip ...string) []recHash {
	t.Helper()
	var hs []recHash
	for name, p := range files {
		if contains(skip, name) {
			continue
		}
		sz, sum, err := zeroHash(p, masksOf(c, name)...)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, recHash{name, sz, sum})
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].name < hs[j].name })
	return hs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runOut is what one run of a program produced.
type runOut struct {
	outs     []string // filtered, one per program run
	rcs      []int
	timedOut bool
	files    map[string]string
}

// setupCase lays out c's directory; tool (the program under test) runs
// the prep commands, and setup lines run as resolveTool says.
func setupCase(t *testing.T, dir string, c *recCase, tool string) {
	t.Helper()
	setupCaseWith(t, dir, c, tool, haveTool("qemu-img"))
}

// setupCaseWith is setupCase, with qemu-img's creates run by gio unless
// useQemuImg.
func setupCaseWith(t *testing.T, dir string, c *recCase, tool string, useQemuImg bool) {
	t.Helper()
	if c.tmpfs != "" {
		if os.Geteuid() != 0 {
			t.Skip("mounting a tmpfs needs root")
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+c.tmpfs, "tmpfs", dir).CombinedOutput(); err != nil {
			t.Skipf("no tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() { unmount(t, dir) })
	}
	for _, d := range c.mkdirs {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.noperm {
		if os.Geteuid() == 0 {
			t.Skip("root ignores file permissions")
		}
		if err := os.WriteFile(filepath.Join(dir, n), make([]byte, 4096), 0); err != nil {
			t.Fatal(err)
		}
	}
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
			cmd := exec.Command(tool, append(args, "img.raw")...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("prep %q: %v\n%s", c.prep, err, out)
			}
		}
	}
	for _, f := range c.files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte(f.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if f.sparse > 0 {
			if err := os.Truncate(p, f.sparse); err != nil {
				t.Fatal(err)
			}
		}
	}
	lines := c.setup
	if n := cacheablePrefix(c); n > 0 && !c.freshSetup {
		key := fmt.Sprintf("%s %v %d %q %v %q", tool, useQemuImg, c.size, c.prep, c.files, c.setup[:n])
		setupCache.restoreOrBuild(t, key, dir, func() {
			if ck := committedKey(c, n); ck != "" {
				if !*update && committedSetups.restore(t, ck, dir) {
					return
				}
				if *update {
					for _, argv := range c.setup[:n] {
						runSetup(t, dir, c, argv, tool, true)
					}
					committedSetups.save(t, ck, dir)
					return
				}
			}
			lk := lastingKey(c, n, useQemuImg)
			if lk != "" && lastingSetups.restore(t, lk, dir) {
				return
			}
			for _, argv := range c.setup[:n] {
				runSetup(t, dir, c, argv, tool, useQemuImg)
			}
			if lk != "" {
				lastingSetups.save(t, lk, dir)
			}
		})
		lines = lines[n:]
	}
	for _, argv := range lines {
		runSetup(t, dir, c, argv, tool, useQemuImg)
	}
}

// runSetup runs a setup line, gio's create standing in for qemu-img's
// unless useQemuImg.
func runSetup(t *testing.T, dir string, c *recCase, argv []string, tool string, useQemuImg bool) {
	t.Helper()
	if g, ok := gioCreate(argv, dir); ok && !useQemuImg {
		argv = append([]string{"gio"}, g...)
	}
	runSetupLine(t, dir, c, argv, tool)
}

// cacheablePrefix is the number of leading setup lines that run qemu-img
// or qemu-io: their files are made once per test run for all the cases
// that share them (a LUKS image costs qemu-img a second of CPU to
// calibrate PBKDF2). Lines after them (sh patches...) run per case.
func cacheablePrefix(c *recCase) int {
	if len(c.mkdirs) > 0 || len(c.noperm) > 0 || c.tmpfs != "" {
		return 0
	}
	n := 0
	for n < len(c.setup) && (c.setup[n][0] == "qemu-img" || c.setup[n][0] == "qemu-io") {
		n++
	}
	return n
}

// lastingKey is the key under which the files of c's first n setup
// lines are kept from one test run to the next ("": they are not).
// That is done for the setups that create LUKS images only (see
// makesLUKS) that have no committed entry (committedSetups). Only the
// real tools' setups of cases without prep lines qualify; the key holds
// the tools' version and everything the files come from.
func lastingKey(c *recCase, n int, useQemuImg bool) string {
	if !useQemuImg || !haveTool("qemu-io") || os.Getenv("GIO_TEST_CACHE") == "off" {
		return ""
	}
	k := setupKey(c, n)
	if k == "" {
		return ""
	}
	return qemuVersion() + "\n" + k
}

// setupKey is everything the files of c's first n setup lines come
// from, for the setups worth keeping ("": not worth it): those without
// prep lines that create a LUKS image (makesLUKS).
func setupKey(c *recCase, n int) string {
	if len(c.prep) > 0 || !makesLUKS(c.setup[:n]) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "size %d\n", c.size)
	for _, f := range c.files {
		fmt.Fprintf(&b, "file %s %q %d\n", f.name, f.content, f.sparse)
	}
	for _, a := range c.setup[:n] {
		fmt.Fprintf(&b, "setup %s\n", quoteArgs(a))
	}
	return b.String()
}

// makesLUKS says whether lines create a LUKS image (of format luks, or a
// qcow2 one with LUKS encryption) or add a LUKS key slot (qemu-img
// amend): QEMU's qcrypto_pbkdf2_count_iters runs PBKDF2 for at least
// 500 ms of CPU, twice per create, whatever iter-time says, so each costs
// qemu-img about 2 s of CPU (some 20 of them made up a tenth of the
// suite's CPU time).
func makesLUKS(lines [][]string) bool {
	for _, a := range lines {
		if a[0] == "qemu-img" && len(a) > 1 && (a[1] == "create" || a[1] == "amend") && strings.Contains(quoteArgs(a), "luks") {
			return true
		}
	}
	return false
}

// qemuVersion is the first line of qemu-img --version (qemu-io comes
// from the same build).
var qemuVersion = sync.OnceValue(func() string {
	out, _ := exec.Command("qemu-img", "--version").Output()
	v, _, _ := strings.Cut(string(out), "\n")
	return v
})

// lastingSetups is the setup cache that outlives the test run, in the
// user's cache directory (~/.cache/gio-test/setups; GIO_TEST_CACHE=off
// does without it). An entry is a directory named by the hash of its
// key, holding the key and the files; it is made under another name and
// renamed into place, so concurrent test runs see whole entries only.
var lastingSetups = lastingCache{}

type lastingCache struct{}

// entry is the directory of key's entry, "" without a cache directory.
func (lastingCache) entry(key string) string {
	base, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(base, "gio-test", "setups", hex.EncodeToString(sum[:16]))
}

// restore fills dir with the files of key's entry and says whether
// there was one.
func (lc lastingCache) restore(t *testing.T, key, dir string) bool {
	t.Helper()
	e := lc.entry(key)
	if e == "" {
		return false
	}
	if k, err := os.ReadFile(filepath.Join(e, "key")); err != nil || string(k) != key {
		return false
	}
	if err := copyFiles(filepath.Join(e, "files"), dir); err != nil {
		t.Fatal(err)
	}
	return true
}

// save keeps the files of dir under key (a failure to keep them only
// costs the next run the setup).
func (lc lastingCache) save(t *testing.T, key, dir string) {
	t.Helper()
	e := lc.entry(key)
	if e == "" || os.MkdirAll(filepath.Dir(e), 0o755) != nil {
		return
	}
	tmp, err := os.MkdirTemp(filepath.Dir(e), ".new-")
	if err != nil {
		return
	}
	defer os.RemoveAll(tmp)
	if os.Mkdir(filepath.Join(tmp, "files"), 0o755) != nil || copyFiles(dir, filepath.Join(tmp, "files")) != nil ||
		os.WriteFile(filepath.Join(tmp, "key"), []byte(key), 0o644) != nil {
		return
	}
	os.RemoveAll(e) // a stale entry (a key that did not match)
	os.Rename(tmp, e)
}

// setupCache holds the files setups made, by the case layout and setup
// lines that made them.
var setupCache = &filesCache{entries: map[string]*cacheEntry{}}

type filesCache struct {
	mu      sync.Mutex
	dir     string
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	mu    sync.Mutex
	dir   string // "" until built
	built bool
}

// restoreOrBuild fills dir with the files cached under key; the first
// case with the key runs build in dir, and its files are kept.
func (fc *filesCache) restoreOrBuild(t *testing.T, key, dir string, build func()) {
	t.Helper()
	fc.mu.Lock()
	if fc.dir == "" {
		// Beside the gio binary: TestMain removes it at the end.
		d, err := os.MkdirTemp(filepath.Dir(gioBin), "setup-cache-")
		if err != nil {
			fc.mu.Unlock()
			t.Fatal(err)
		}
		fc.dir = d
	}
	e := fc.entries[key]
	if e == nil {
		e = &cacheEntry{}
		fc.entries[key] = e
	}
	root := fc.dir
	fc.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.built {
		if err := copyFiles(e.dir, dir); err != nil {
			t.Fatal(err)
		}
		return
	}
	build() // a failure or skip leaves the entry unbuilt: the next case tries again
	d, err := os.MkdirTemp(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := copyFiles(dir, d); err != nil {
		t.Fatal(err)
	}
	e.dir, e.built = d, true
}

// copyFiles copies the regular files of src into dst, holes as holes.
func copyFiles(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := copySparse(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// copySparse copies a file's data extents (a 2 GiB sparse vmdk extent
// copies in no time).
func copySparse(src, dst string) error {
	in, st, err := openStat(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	defer out.Close()
	size := st.Size()
	buf := make([]byte, 1<<20)
	err = dataExtents(in, size, func(data, hole int64) error {
		for off := data; off < hole; {
			// In the kernel when it can: no user-space buffer to fill,
			// nor (under -race) to annotate.
			roff, woff := off, off
			if n, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(hole-off), 0); err == nil && n > 0 {
				off += int64(n)
				continue
			}
			n, err := in.ReadAt(buf[:min(int64(len(buf)), hole-off)], off)
			if n > 0 {
				if _, werr := out.WriteAt(buf[:n], off); werr != nil {
					return werr
				}
			}
			off += int64(n)
			if err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	return out.Close()
}

// openStat opens the file at path for reading, with its FileInfo.
func openStat(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// dataExtents calls fn for each data extent [data, hole) of the file f
// of size bytes, in order (SEEK_DATA/SEEK_HOLE; where the file system
// cannot say, the whole file is data).
func dataExtents(f *os.File, size int64, fn func(data, hole int64) error) error {
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil
		}
		if err != nil {
			data = off
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if err := fn(data, hole); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// runSetupLine runs one setup line in dir.
func runSetupLine(t *testing.T, dir string, c *recCase, argv []string, tool string) {
	t.Helper()
	bin, args := resolveTool(t, c, dir, argv, tool)
	for try := 1; ; try++ {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		// qemu-img's PBKDF2 calibration for a LUKS create fails now and
		// then on a loaded machine (it measures CPU time of a few ms):
		// QEMU's noise, not the case's.
		if try < 3 && bytes.Contains(out, []byte("Unable to get accurate CPU usage")) {
			continue
		}
		t.Fatalf("setup %q: %v\n%s", argv, err, out)
	}
}

func haveTool(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// resolveTool is the program and arguments of a setup or run line, by
// its first word ("Programs" at the top of this file); tool is the
// program under test.
func resolveTool(t *testing.T, c *recCase, dir string, argv []string, tool string) (string, []string) {
	t.Helper()
	switch argv[0] {
	case "IO":
		return tool, argv[1:]
	case "qemu-io":
		if haveTool("qemu-io") {
			return "qemu-io", argv[1:]
		}
		if c.realQemu != "" {
			t.Skipf("%s: needs qemu-io: %s", c.pos(), c.realQemu)
		}
		return gioBin, argv[1:]
	case "gio":
		return gioBin, argv[1:]
	case "qemu-img":
		if haveTool("qemu-img") {
			return "qemu-img", argv[1:]
		}
		if g, ok := gioCreate(argv, dir); ok {
			return gioBin, g
		}
		t.Skipf("%s: needs qemu-img for %s", c.pos(), quoteArgs(argv))
	}
	if !haveTool(argv[0]) {
		t.Skipf("%s: needs %s", c.pos(), argv[0])
	}
	return argv[0], argv[1:]
}

// gioCreateFormats are the formats whose images gio's create makes as
// qemu-img create does, byte for byte (the others draw UUIDs, keys or
// timestamps at random).
var gioCreateFormats = []string{"raw", "qcow2", "qed", "qcow"}

// gioCreateOptions are the -o options of those formats gio's create takes.
var gioCreateOptions = []string{"cluster_size", "compat", "refcount_bits", "lazy_refcounts", "backing_file", "backing_fmt", "table_size"}

// gioCreate turns "qemu-img create [-q] -f FMT [-o OPTS] [-b B -F F]
// NAME [SIZE]" into gio's arguments for the same create; ok is false for
// anything else. Without SIZE, the size is the backing file's (a raw or
// qcow2 one in dir).
func gioCreate(argv []string, dir string) (args []string, ok bool) {
	if len(argv) < 2 || argv[0] != "qemu-img" || argv[1] != "create" {
		return nil, false
	}
	format := "raw"
	var opts, pos []string
	var backing, backingFmt string
	for i := 2; i < len(argv); i++ {
		a := argv[i]
		if a == "-q" {
			continue
		}
		if !strings.HasPrefix(a, "-") {
			pos = append(pos, a)
			continue
		}
		if i+1 == len(argv) {
			return nil, false
		}
		i++
		switch a {
		case "-f":
			format = argv[i]
		case "-o":
			opts = append(opts, argv[i])
		case "-b":
			backing = argv[i]
			opts = append(opts, "backing_file="+argv[i])
		case "-F":
			backingFmt = argv[i]
			opts = append(opts, "backing_fmt="+argv[i])
		default:
			return nil, false
		}
	}
	if len(pos) == 1 && backing != "" && dir != "" {
		sz, ok := virtualSize(filepath.Join(dir, backing), backingFmt)
		if !ok {
			return nil, false
		}
		pos = append(pos, strconv.FormatInt(sz, 10))
	}
	if len(pos) != 2 || strings.Contains(pos[0], "/") || strings.ContainsAny(strings.Join(opts, ","), " \"'") || !contains(gioCreateFormats, format) {
		return nil, false
	}
	for _, kv := range strings.Split(strings.Join(opts, ","), ",") {
		if k, _, _ := strings.Cut(kv, "="); kv != "" && !contains(gioCreateOptions, k) {
			return nil, false
		}
	}
	cmd := "create -f " + format
	if len(opts) > 0 {
		cmd += " -o " + strings.Join(opts, ",")
	}
	return []string{"-c", cmd + " ./" + pos[0] + " " + pos[1]}, true
}

// virtualSize is the size of a raw or qcow2 image as a backing file.
func virtualSize(path, format string) (int64, bool) {
	switch format {
	case "raw":
		st, err := os.Stat(path)
		if err != nil {
			return 0, false
		}
		return st.Size(), true
	case "qcow2":
		f, err := os.Open(path)
		if err != nil {
			return 0, false
		}
		defer f.Close()
		var b [8]byte
		if _, err := f.ReadAt(b[:], 24); err != nil {
			return 0, false
		}
		return int64(binary.BigEndian.Uint64(b[:])), true
	}
	return 0, false
}

// unmount unmounts the tmpfs on dir. A process forked by another test
// may hold a descriptor of a file in it for a moment (between fork and
// exec), which makes umount fail with "target is busy" on a loaded
// machine: try again, then detach it.
func unmount(t *testing.T, dir string) {
	t.Helper()
	var out []byte
	var err error
	for try := 0; try < 20; try++ {
		if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out2, err2 := exec.Command("umount", "-l", dir).CombinedOutput(); err2 != nil {
		t.Errorf("umount %s: %v: %s; umount -l: %v: %s", dir, err, out, err2, out2)
	}
}

// runCase runs bin for c in a fresh directory.
func runCase(t *testing.T, bin string, c *recCase, timeout time.Duration) runOut {
	t.Helper()
	dir := t.TempDir()
	setupCase(t, dir, c, bin)
	var r runOut
	for _, argv := range c.programs() {
		prog, args := resolveTool(t, c, dir, argv, bin)
		var stdin *string
		var steps []recStep
		if c.runs == nil {
			stdin, steps = c.stdin, c.steps
		}
		out, rc, timedOut := runProgram(t, prog, dir, args, stdin, steps, timeout)
		out = filterQemuIO(out)
		for _, re := range c.filters {
			out = re.ReplaceAllString(out, "X")
		}
		r.outs, r.rcs = append(r.outs, out), append(r.rcs, rc)
		if timedOut {
			r.timedOut = true
			break
		}
	}
	r.files = readFiles(t, dir)
	return r
}

// runProgram runs bin in dir with stdout and stderr on one pipe. stdin is
// fed at once; steps, one line each time a prompt for it has appeared
// (after img.raw was resized, if the step says so). A timeout is
// reported, not failed, so that a hang of qemu-io can be recorded.
func runProgram(t *testing.T, bin, dir string, args []string, stdin *string, steps []recStep, timeout time.Duration) (out string, rc int, timedOut bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf // same writer: exec gives both the same pipe
	var pipe io.WriteCloser
	switch {
	case steps != nil:
		w, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		pipe = w
	case stdin != nil:
		cmd.Stdin = strings.NewReader(*stdin)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	for i, st := range steps {
		for strings.Count(buf.String(), "qemu-io> ") <= i && ctx.Err() == nil {
			time.Sleep(2 * time.Millisecond)
		}
		if st.truncate >= 0 {
			if err := os.Truncate(filepath.Join(dir, "img.raw"), st.truncate); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := pipe.Write([]byte(st.line + "\n")); err != nil {
			break
		}
	}
	if pipe != nil {
		pipe.Close()
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

// observed is what a run gives to compare with a record: filtered
// output, exit status, file hashes, and for qcow2 the image content and
// qemu-img's map.
type observed struct {
	outs    []string
	rcs     []int
	hashes  []recHash
	content []recHash
	qmap    *string
}

// hashSkip lists the files whose bytes c does not compare.
func hashSkip(c *recCase, files map[string]string) []string {
	var skip []string
	if c.nofiles {
		for n := range files {
			skip = append(skip, n)
		}
	}
	if c.garbage != "" {
		skip = append(skip, "img.raw")
	}
	if c.anyLayout || c.image != "" {
		skip = append(skip, qcow2Image(c))
	}
	for _, n := range c.nohash {
		skip = append(skip, n.name)
	}
	return skip
}

// observe turns a run into what the record holds.
func observe(t *testing.T, c *recCase, r runOut) observed {
	t.Helper()
	o := observed{outs: r.outs, rcs: r.rcs, hashes: hashFiles(t, c, r.files, hashSkip(c, r.files)...)}
	if !haveTool("qemu-img") {
		return o // the content is not compared
	}
	if c.qcow2() && c.check != "none" {
		o.content = []recHash{{qcow2Image(c), -1, guestContent(t, r.files[qcow2Image(c)])}}
	}
	for _, a := range c.converts {
		src := a[1:]
		if len(src) == 0 {
			src = a[:1]
		}
		p, ok := r.files[a[0]]
		if !ok {
			t.Fatalf("%s: convert %s: no such file", c.pos(), a[0])
		}
		o.content = append(o.content, recHash{a[0], -1, guestContentOf(t, filepath.Dir(p), src...)})
	}
	return o
}

// qcow2Image is the image a qcow2 case checks.
func qcow2Image(c *recCase) string {
	if c.image != "" {
		return c.image
	}
	return "img.qcow2"
}

// guestContent is the zeroHash of a qcow2 image's guest view, converted
// to raw by qemu-img.
func guestContent(t *testing.T, image string) string {
	t.Helper()
	return guestContentOf(t, filepath.Dir(image), filepath.Base(image))
}

// guestContentOf is the zeroHash of the guest view of the image that
// qemu-img convert's source arguments src name, in dir.
func guestContentOf(t *testing.T, dir string, src ...string) string {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "content.raw")
	cmd := exec.Command("qemu-img", append(append([]string{"convert", "-O", "raw"}, src...), raw)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert %s: %v\n%s", quoteArgs(src), err, out)
	}
	_, sum, err := zeroHash(raw)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// differences lists how o differs from the record c (who names the
// record's side: "record" or "qemu-io").
func differences(c *recCase, want observed, who string, got observed) []string {
	var p []string
	progs := c.programs()
	for i := range max(len(want.outs), len(got.outs)) {
		var w, g string
		if i < len(want.outs) {
			w = want.outs[i]
		}
		if i < len(got.outs) {
			g = got.outs[i]
		}
		if c.unordered != "" {
			w, g = sortLines(w), sortLines(g)
		}
		if w == g {
			continue
		}
		what := "output differs (args " + quoteArgs(c.args) + ")"
		if c.runs != nil && i < len(progs) {
			what = fmt.Sprintf("output of run %d differs (%s)", i+1, quoteArgs(progs[i]))
		}
		p = append(p, fmt.Sprintf("%s\n--- %s\n%s\n--- gio\n%s\n--- diff\n%s", what, who, w, g, lineDiff(w, g)))
	}
	if a, b := fmt.Sprint(want.rcs), fmt.Sprint(got.rcs); a != b {
		p = append(p, fmt.Sprintf("exit status: %s %s, gio %s", who, a, b))
	}
	if a, b := fmt.Sprint(want.hashes), fmt.Sprint(got.hashes); a != b {
		p = append(p, fmt.Sprintf("files differ: %s %s, gio %s", who, a, b))
	}
	if want.content != nil && got.content != nil && fmt.Sprint(want.content) != fmt.Sprint(got.content) {
		p = append(p, fmt.Sprintf("image content differs: %s %v, gio %v", who, want.content, got.content))
	}
	return p
}

// sortLines sorts the lines of s (an unordered case's output).
func sortLines(s string) string {
	l := strings.Split(s, "\n")
	sort.Strings(l)
	return strings.Join(l, "\n")
}

// recordedAs is the record of c as an observation.
func recordedAs(c *recCase) observed {
	o := observed{outs: c.outs, rcs: c.rcs, hashes: c.hashes, qmap: c.qmap}
	if len(c.content) > 0 {
		o.content = c.content
	}
	return o
}

const (
	gioTimeout   = 3 * time.Minute
	qemuTimeout  = 3 * time.Minute
	crashTimeout = 60 * time.Second // a crash is quick; the margin is for a loaded machine
	hangTimeout  = 3 * time.Second
)

// recordFile is one file of recorded cases.
type recordFile struct {
	dir, path string
	cases     []*recCase
}

// readRecordFiles reads every record file of recordDirs.
func readRecordFiles(t *testing.T) []recordFile {
	t.Helper()
	var rfs []recordFile
	for _, d := range recordDirs {
		paths, _ := filepath.Glob(filepath.Join(d, "*.txt"))
		for _, path := range paths {
			cs, err := parseRecords(path)
			if err != nil {
				t.Fatal(err)
			}
			rfs = append(rfs, recordFile{d, path, cs})
		}
	}
	return rfs
}

// recordDirs hold the recorded cases, *.txt in each.
var recordDirs = []string{"testdata/diff", "testdata/bad", "testdata/qcow2", "testdata/vhdx", "testdata/formats", "testdata/crypto", "testdata/iotests"}

// TestRecorded runs every recorded case; see the top of this file.
func TestRecorded(t *testing.T) {
	t.Parallel()
	dirs := recordDirs
	live := oracleLive() || *update
	if live {
		if _, err := exec.LookPath("qemu-io"); err != nil {
			t.Fatalf("GIO_QEMU_ORACLE=1 or -update needs qemu-io: %v", err)
		}
	}
	seen := map[string]string{}
	n := 0
	for _, rf := range readRecordFiles(t) {
		d, path, cs := rf.dir, rf.path, rf.cases
		for _, c := range cs {
			if p, dup := seen[d+"/"+c.name]; dup {
				t.Fatalf("%s: case %s already at %s", c.pos(), c.name, p)
			}
			seen[d+"/"+c.name] = c.pos()
		}
		n += len(cs)
		t.Run(strings.TrimSuffix(path[len("testdata/"):], ".txt"), func(t *testing.T) {
			t.Parallel()
			for _, c := range cs {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					runRecorded(t, c, live)
				})
			}
		})
		if *update {
			t.Cleanup(func() {
				var b bytes.Buffer
				b.WriteString(header(path))
				for _, c := range cs {
					formatRecord(&b, c)
				}
				if err := os.WriteFile(path, bytes.TrimSuffix(b.Bytes(), []byte("\n")), 0o644); err != nil {
					t.Error(err)
				}
			})
		}
	}
	if n < 400 {
		t.Errorf("only %d recorded cases in %v", n, dirs)
	}
}

// header is the leading comment block of a record file, kept by -update.
func header(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() && (strings.HasPrefix(sc.Text(), "#") || sc.Text() == "") {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

// runRecorded runs one case: gio against the record, and when live
// qemu-io against both (with -update, qemu-io's answer replaces the
// record).
func runRecorded(t *testing.T, c *recCase, live bool) {
	g := runCase(t, gioBin, c, gioTimeout)
	if g.timedOut {
		t.Fatalf("%s: gio hung (%s); output so far:\n%s", c.pos(), quoteArgs(c.programs()[len(g.outs)-1]), g.outs[len(g.outs)-1])
	}
	for _, out := range g.outs {
		for _, crash := range []string{"panic:", "goroutine ", "runtime error", "SIGSEGV"} {
			if strings.Contains(out, crash) {
				t.Fatalf("%s: gio crashed:\n%s", c.pos(), out)
			}
		}
	}
	got := observe(t, c, g)
	if c.qcow2() {
		got.qmap = checkQcow2(t, c, g.files)
	}
	if live {
		q, ok := liveQemu(t, c, got)
		switch {
		case *update && ok:
			c.recorded, c.outs, c.rcs, c.hashes, c.content, c.qmap = true, q.outs, q.rcs, q.hashes, q.content, q.qmap
		case *update && !c.recorded:
			// qemu-io cannot answer here: gio's answer is the expectation
			// of a new case (read it in the diff).
			c.recorded, c.outs, c.rcs, c.hashes, c.content, c.qmap = true, got.outs, got.rcs, got.hashes, got.content, got.qmap
		case *update && c.hashes == nil:
			// A hand-written expectation without files: gio's files.
			c.hashes, c.content = got.hashes, got.content
		case ok:
			for _, p := range differences(c, q, "qemu-io", recordedAs(c)) {
				t.Errorf("%s: the record is stale (go test -run TestRecorded -update): %s", c.pos(), strings.Replace(p, "gio", "record", 1))
			}
		}
	}
	if !c.recorded {
		t.Fatalf("%s: case %s has no record (go test -run TestRecorded -update)", c.pos(), c.name)
	}
	for _, p := range checkRecord(c, got) {
		t.Errorf("%s: %s", c.pos(), p)
	}
}

// checkRecord compares what gio did with the record of c.
func checkRecord(c *recCase, got observed) []string {
	p := differences(c, recordedAs(c), "record", got)
	if c.qmap != nil && got.qmap != nil && *c.qmap != *got.qmap {
		p = append(p, fmt.Sprintf("map differs\n--- qemu-img map (record)\n%s\n--- gio map -s, map --output=json\n%s\n--- diff\n%s", *c.qmap, *got.qmap, lineDiff(*c.qmap, *got.qmap)))
	}
	return p
}

// liveQemu runs qemu-io for c. ok says qemu-io answered and the answer
// is to be compared (gio is checked against it here); otherwise it
// checks that qemu-io still crashes or hangs where the case says so.
func liveQemu(t *testing.T, c *recCase, got observed) (q observed, ok bool) {
	t.Helper()
	switch c.qemu {
	case "differs":
		return q, false
	case "crashes":
		r := runCase(t, "qemu-io", c, crashTimeout)
		if r.timedOut || r.rcs[0] <= 128 {
			t.Errorf("%s: qemu-io was expected to crash here but did not (rc %d, hung %v): drop \"qemu crashes\" and re-record:\n%s", c.pos(), r.rcs[0], r.timedOut, r.outs[0])
		}
		return q, false
	case "hangs":
		r := runCase(t, "qemu-io", c, hangTimeout)
		if !r.timedOut {
			t.Errorf("%s: qemu-io was expected to hang here but finished (rc %d): drop \"qemu hangs\" and re-record:\n%s", c.pos(), r.rcs[0], r.outs[0])
		}
		return q, false
	}
	var problems []string
	for try := 0; ; try++ {
		r := runCase(t, "qemu-io", c, qemuTimeout)
		if r.timedOut {
			t.Fatalf("%s: qemu-io hung where it was expected to answer; output:\n%s", c.pos(), r.outs[len(r.outs)-1])
		}
		q = observe(t, c, r)
		if c.qcow2() && !c.anyLayout && c.image == "" {
			q.qmap = qemuImgMap(t, c, r.files)
		}
		problems = differences(c, q, "qemu-io", got)
		if q.qmap != nil && got.qmap != nil && *q.qmap != *got.qmap {
			problems = append(problems, fmt.Sprintf("map differs\n--- qemu-img map\n%s\n--- gio\n%s", *q.qmap, *got.qmap))
		}
		// A timing-dependent case gets more qemu-io runs: gio matches
		// if it matches any of them.
		if len(problems) == 0 || c.racy == "" || try == 3 {
			break
		}
		t.Logf("qemu-io differed (%s); running it again", c.racy)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", c.pos(), p)
	}
	return q, true
}

// checkQcow2 runs qemu-img check on gio's image and returns gio's
// "map -s" and "map --output=json" of it.
func checkQcow2(t *testing.T, c *recCase, files map[string]string) *string {
	t.Helper()
	if c.check == "none" {
		return nil
	}
	image := files[qcow2Image(c)]
	if haveTool("qemu-img") {
		out, err := exec.Command("qemu-img", "check", image).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok && !(c.check == "leaks" && ee.ExitCode() == 3) || err != nil && !ok {
			t.Errorf("%s: qemu-img check on gio's image: %v\n%s", c.pos(), err, out)
		}
	}
	if c.image != "" {
		return nil
	}
	gm := exec.Command(gioBin, "-r", "-c", "map -s", "-c", "map --output=json", filepath.Base(image))
	gm.Dir = filepath.Dir(image)
	gmap, err := gm.Output() // errors go to stderr, as qemu-img's
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("gio map: %v", err)
	}
	s := string(gmap)
	if c.anyLayout {
		// gio's layout is its own: qemu-img maps gio's image here, and
		// nothing is recorded.
		if !haveTool("qemu-img") {
			return nil
		}
		if q := qemuImgMap(t, c, files); *q != s {
			t.Errorf("%s: map differs\n--- qemu-img map\n%s\n--- gio map -s, map --output=json\n%s\n--- diff\n%s", c.pos(), *q, s, lineDiff(*q, s))
		}
		return nil
	}
	return &s
}

// qemuImgMap is qemu-img map's human and JSON output for the case's image.
func qemuImgMap(t *testing.T, c *recCase, files map[string]string) *string {
	t.Helper()
	if c.check == "none" {
		return nil
	}
	image := files[qcow2Image(c)]
	var s string
	for _, f := range []string{"--output=human", "--output=json"} {
		m := exec.Command("qemu-img", "map", f, filepath.Base(image))
		m.Dir = filepath.Dir(image)
		out, err := m.Output() // the error line goes to stderr
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatalf("qemu-img map: %v", err)
		}
		s += string(out)
	}
	return &s
}

// TestRecordEditFails edits each part of a recorded expectation and
// checks that the comparison then fails.
func TestRecordEditFails(t *testing.T) {
	cs, err := parseRecords("testdata/diff/write.txt")
	if err != nil {
		t.Fatal(err)
	}
	var c *recCase
	for _, x := range cs {
		if x.name == "write/basic" {
			c = x
		}
	}
	if c == nil {
		t.Fatal("write/basic not in testdata/diff/write.txt")
	}
	got := observe(t, c, runCase(t, gioBin, c, gioTimeout))
	if p := checkRecord(c, got); len(p) > 0 {
		t.Fatalf("unedited record fails: %v", p)
	}
	edits := map[string]func(e *recCase){
		"output": func(e *recCase) { e.outs = []string{strings.Replace(e.outs[0], "offset 4096", "offset 4097", 1)} },
		"exit":   func(e *recCase) { e.rcs = []int{e.rcs[0] + 1} },
		"hash": func(e *recCase) {
			e.hashes = append([]recHash(nil), e.hashes...)
			e.hashes[0].hex = strings.Repeat("0", 32)
		},
		"size":  func(e *recCase) { e.hashes = append([]recHash(nil), e.hashes...); e.hashes[0].size++ },
		"files": func(e *recCase) { e.hashes = nil },
	}
	for name, edit := range edits {
		e := *c
		edit(&e)
		if len(checkRecord(&e, got)) == 0 {
			t.Errorf("editing the record's %s did not fail the case", name)
		}
	}
	// And through the file: a changed output line fails to match.
	var b bytes.Buffer
	formatRecord(&b, c)
	edited := strings.Replace(b.String(), "wrote 4096/4096 bytes at offset 4096", "wrote 4096/4096 bytes at offset 4095", 1)
	if edited == b.String() {
		t.Fatal("the edit did not apply")
	}
	p := filepath.Join(t.TempDir(), "x.txt")
	os.WriteFile(p, []byte(edited), 0o644)
	es, err := parseRecords(p)
	if err != nil || len(es) != 1 {
		t.Fatalf("reading the edited record: %v %d", err, len(es))
	}
	if len(checkRecord(es[0], got)) == 0 {
		t.Error("an edited output line in the file did not fail the case")
	}
}

// TestRecordFormatRoundTrip: every record file reads back to itself.
func TestRecordFormatRoundTrip(t *testing.T) {
	for _, rf := range readRecordFiles(t) {
		path, cs := rf.path, rf.cases
		var b bytes.Buffer
		b.WriteString(header(path))
		for _, c := range cs {
			formatRecord(&b, c)
		}
		data, _ := os.ReadFile(path)
		if got := bytes.TrimSuffix(b.Bytes(), []byte("\n")); !bytes.Equal(got, data) {
			t.Errorf("%s does not read back to itself:\n%s", path, lineDiff(string(data), string(got)))
		}
	}
}

// TestCreateFallback: where qemu-img is not installed, the setups of the
// recorded cases make their images with gio's create (resolveTool).
// Here, with qemu-img, every distinct create that gio can stand in for
// runs both ways (after the setup lines before it, for its backing
// file), and the images must be the same bytes.
func TestCreateFallback(t *testing.T) {
	if !haveTool("qemu-img") {
		t.Skip("needs qemu-img")
	}
	t.Parallel()
	seen := map[string]bool{}
	for _, rf := range readRecordFiles(t) {
		for _, c := range rf.cases {
			for i, a := range c.setup {
				key := quoteArgs(a)
				if _, ok := gioCreate(a, ""); !ok && !strings.Contains(key, " -b ") || seen[key] {
					continue
				}
				seen[key] = true
				t.Run(c.name+"/"+strconv.Itoa(i), func(t *testing.T) {
					t.Parallel()
					q, g := t.TempDir(), t.TempDir()
					before := *c
					before.setup = c.setup[:i]
					setupCaseWith(t, q, &before, gioBin, true)
					setupCaseWith(t, g, &before, gioBin, true)
					args, ok := gioCreate(a, g)
					if !ok {
						return // gio cannot stand in here: the case skips without qemu-img
					}
					runSetupLine(t, q, c, a, gioBin)
					runSetupLine(t, g, c, append([]string{"gio"}, args...), gioBin)
					name := strings.TrimPrefix(strings.Fields(args[1])[len(strings.Fields(args[1]))-2], "./")
					if off, err := firstDifference(filepath.Join(q, name), filepath.Join(g, name)); err != nil || off >= 0 {
						t.Errorf("%s: gio's create makes other bytes than %s: first difference at %d (%v)", c.pos(), key, off, err)
					}
				})
			}
		}
	}
}

// TestMaskedHashCIDLength: a vmdk descriptor whose random CID has a
// leading zero (7 hex digits, not 8) hashes like any other once the CID
// is masked, so that a record does not fail one run in sixteen.
func TestMaskedHashCIDLength(t *testing.T) {
	m, err := parseMask("img.vmdk", "/CID=[0-9a-f]+/")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hash := func(text string) string {
		p := filepath.Join(dir, "img.vmdk")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		size, sum, err := zeroHash(p, m)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(size, sum)
	}
	a, b := hash("# Disk DescriptorFile\nCID=1a2b3c4d\nparentCID=ffffffff\n"), hash("# Disk DescriptorFile\nCID=a2b3c4d\nparentCID=ffffffff\n")
	if a != b {
		t.Errorf("CIDs of 8 and 7 digits hash differently: %s, %s", a, b)
	}
	// A CID rewritten one digit shorter leaves the old text's last byte
	// after the NUL.
	if c := hash("# Disk DescriptorFile\nCID=a2b3c4d\nparentCID=ffffffff\n\x00\n"); c != a {
		t.Errorf("a leftover byte after the descriptor's NUL changes the hash: %s, %s", a, c)
	}
	if c := hash("# Disk DescriptorFile\nCID=1a2b3c4d\nparentCID=ffffffff\nversion=1\n"); c == a {
		t.Errorf("a changed descriptor hashes the same: %s", c)
	}
}
