package main

// Shared helpers of the cmd/gio tests, which run gio as a subprocess:
// TestMain builds it once, runIn runs it in a case directory, and the
// file helpers compare what it left there. The differential cases
// themselves are recorded files (record_test.go).

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gio/repl"
)

var gioBin string

func TestMain(m *testing.M) {
	// qemu-io's abort must not leave core files in the case directories.
	_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{})
	flag.Parse()
	// The subprocess cases mostly wait for processes: run more of them
	// at once than there are cores, unless -parallel was given.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "8")
	}
	dir, err := os.MkdirTemp("", "gio-difftest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gioBin = filepath.Join(dir, "gio")
	// Built without -race even under go test -race: the race detector
	// covers the same code in the in-process tests (scripts, fuzz,
	// packages below), and a race-instrumented gio made every one of the
	// several hundred subprocess runs many times slower.
	build := exec.Command("go", "build", "-o", gioBin, ".")
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

// machineReport is a -C report line (not normalised by _filter_qemu_io,
// but its time and rates vary just the same).
var machineReport = regexp.MustCompile(`(?m)^([0-9]+),([0-9]+),[0-9]+:[0-9]{2}:[0-9]{2}\.[0-9]{2},[0-9.inf]+,[0-9.inf]+$`)

// filterQemuIO is qemu-iotests' _filter_qemu_io (repl.Normalize), plus
// the timing fields of -C lines.
func filterQemuIO(s string) string {
	s = missingModule.ReplaceAllString(s, "")
	s = generatedNodeName.ReplaceAllString(s, "NODE_NAME")
	return machineReport.ReplaceAllString(repl.Normalize(s), "$1,$2,TIME,RATE,OPS")
}

// generatedNodeName is a node name QEMU made up ("#block138": a counter
// and two random digits), as qemu-iotests' _filter_generated_node_ids
// sees it.
var generatedNodeName = regexp.MustCompile(`#block[0-9]+`)

// missingModule matches what Debian's qemu-io 7.2 prints on opening a dmg
// image: it ships neither the dmg-bz2 nor the dmg-lzfse module. A
// packaging artefact, not qemu-io's behaviour; gio prints nothing.
var missingModule = regexp.MustCompile(`(?m)^qemu: module block-block-dmg-(bz2|lzfse) not found, do you want to install qemu-block-extra package\?\n`)

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

const (
	k  = 1 << 10
	mb = 1 << 20
)

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
	out, rc, timedOut := runProgram(t, bin, dir, args, stdin, nil, runTimeout)
	if timedOut {
		t.Fatalf("%s %q: timed out after %v; output so far:\n%s", filepath.Base(bin), args, runTimeout, out)
	}
	return result{out: out, rc: rc, files: readFiles(t, dir)}
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

// firstDifference compares two files (mapped: images may be large and
// sparse, see mappedFile); -1 means equal.
func firstDifference(a, b string) (int64, error) {
	ma, err := mapFile(a)
	if err != nil {
		return 0, err
	}
	defer ma.unmap()
	mb, err := mapFile(b)
	if err != nil {
		return 0, err
	}
	defer mb.unmap()
	n := min(len(ma.b), len(mb.b))
	for off := 0; off < n; off += 1 << 20 {
		end := min(n, off+1<<20)
		if i := firstMismatch(ma.b[off:end], mb.b[off:end]); i >= 0 {
			return int64(off + i), nil
		}
	}
	if len(ma.b) != len(mb.b) {
		return int64(n), nil
	}
	return -1, nil
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
