package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gio/repl"
)

const scriptsDir = "../../scripts"

func scripts(t *testing.T) []string {
	t.Helper()
	s, err := repl.FindScripts([]string{scriptsDir}, nil)
	if err != nil || len(s) == 0 {
		t.Fatalf("no scripts in %s: %v", scriptsDir, err)
	}
	return s
}

// TestScripts runs every scripts/*.gio through the golden runner that
// "gio test" uses.
func TestScripts(t *testing.T) {
	// Not parallel with the other top-level tests: its in-process
	// sessions hold OFD image locks, and a child another test forks
	// meanwhile inherits their descriptors until it execs, keeping a lock
	// alive after close ("Failed to get shared \"write\" lock" under load).
	for _, path := range scripts(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			for _, r := range env.RunGolden([]string{path}, false) {
				if !r.Passed {
					t.Errorf("%s", r.Diff)
				}
			}
		})
	}
}

// TestScriptsDeterministic runs each script 100 times, traced: output and
// trace must be byte-identical every time, report lines included,
// without qemu-iotests' filter (run it under -race, as CI does). It is
// the one 100-run check; TestTraceScripts checks once that tracing
// changes nothing in the output.
func TestScriptsDeterministic(t *testing.T) {
	// Not parallel with the other top-level tests: its in-process
	// sessions hold OFD image locks, and a child another test forks
	// meanwhile inherits their descriptors until it execs, keeping a lock
	// alive after close ("Failed to get shared \"write\" lock" under load).
	runs := 100
	if testing.Short() {
		runs = 10
	}
	for _, path := range scripts(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			var first string
			var firstTrace []byte
			for i := 0; i < runs; i++ {
				// No filter: report lines too are virtual time.
				got, tr := traceScript(t, path, "")
				if i == 0 {
					first, firstTrace = got, tr
				} else if got != first {
					t.Fatalf("%s: run %d differs from run 0:\n%s", path, i, repl.UnifiedDiff("run 0", "run N", first, got))
				} else if !bytes.Equal(tr, firstTrace) {
					t.Fatalf("%s: the trace of run %d differs from run 0", path, i)
				}
			}
		})
	}
}

// TestGoldenMismatchShowsDiff edits an expected output and checks that the
// runner fails with a readable diff naming the file and line.
func TestGoldenMismatchShowsDiff(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(scriptsDir, "060-077-tail-only.gio"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(scriptsDir, "060-077-tail-only.out"))
	if err != nil {
		t.Fatal(err)
	}
	gio := filepath.Join(dir, "x.gio")
	os.WriteFile(gio, src, 0o644)
	edited := strings.Replace(string(want), "offset 61440", "offset 61441", 1)
	os.WriteFile(filepath.Join(dir, "x.out"), []byte(edited), 0o644)
	res := env.RunGolden([]string{gio}, false)
	if len(res) != 1 || res[0].Passed {
		t.Fatalf("edited .out passed: %+v", res)
	}
	d := res[0].Diff
	for _, w := range []string{"--- " + filepath.Join(dir, "x.out"), "-wrote 3072/3072 bytes at offset 61441", "+wrote 3072/3072 bytes at offset 61440", "@@ " + filepath.Join(dir, "x.out") + ":"} {
		if !strings.Contains(d, w) {
			t.Errorf("diff lacks %q:\n%s", w, d)
		}
	}
}

// TestSerialisationPreventsLostUpdate: the same race with serialisation
// off corrupts data (a read-back check fails), and with it on does not.
func TestSerialisationPreventsLostUpdate(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(scriptsDir, "090-no-serialise.gio"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		script    string
		corrupted bool
	}{
		{"serialise=off", string(src), true},
		{"serialise=on", strings.Replace(string(src), ",file.serialise=off", "", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			ok := env.RunScript("race.gio", tc.script, "", &buf, &buf, true)
			failed := strings.Contains(buf.String(), "Pattern verification failed at offset 5120, 512 bytes")
			if failed != tc.corrupted || ok == tc.corrupted {
				t.Errorf("corrupted=%v (ok=%v), want corrupted=%v; output:\n%s", failed, ok, tc.corrupted, buf.String())
			}
		})
	}
}

// TestVirtualTime: a 077-shaped script with 14 "sleep 100" replays in
// well under a second in script mode, and gives the same output with the
// real clock. The wall-time figure is logged, not asserted (shared
// machines are noisy); the assertion is on virtual time having been used.
func TestVirtualTime(t *testing.T) {
	path := filepath.Join(scriptsDir, "100-virtual-time.gio")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(src), "sleep 100"); n != 14 {
		t.Fatalf("script has %d sleeps, want 14", n)
	}
	// With real sleeps every try takes 1.4 s or more; on a loaded
	// machine one try may too, so it fails only if three do.
	var virt bytes.Buffer
	for try := 0; ; try++ {
		virt.Reset()
		start := time.Now()
		env.RunScript("v.gio", string(src), "", &virt, &virt, true)
		wall := time.Since(start)
		t.Logf("virtual clock: %v wall time for 1.4 s of sleeps", wall)
		if wall < 1400*time.Millisecond {
			break
		}
		if try == 2 {
			t.Errorf("script took %v three times: sleeps were not virtual", wall)
			break
		}
	}
	if testing.Short() {
		return
	}
	// The real clock, through stdin mode: same normalised output.
	dir := t.TempDir()
	stdin, images := forQemuIO(string(src))
	makeImages(t, dir, images)
	start := time.Now()
	r := runIn(t, gioBin, dir, []string{"--clock=real"}, &stdin)
	t.Logf("real clock: %v", time.Since(start))
	if got, want := repl.Normalize(r.out), repl.Normalize(virt.String()); got != want {
		t.Errorf("real clock output differs:\n%s", repl.UnifiedDiff("virtual", "real", want, got))
	}
}

// scriptPrefix is the FILE:LINE: prefix script mode puts on stderr lines.
var scriptPrefix = regexp.MustCompile(`(?m)^[^ \n]*\.gio:[0-9]+: `)

// failedNote is the line script mode adds for a failed command whose
// message went to stdout (qemu-io prints nothing like it).
var failedNote = regexp.MustCompile(`(?m)^[^ \n]*\.gio:[0-9]+: gio: command failed: .*\n`)

// scratchImage is a script's "create [-f FMT] [-o OPTS] NAME SIZE".
type scratchImage struct{ name, size, format, opts string }

// parseCreate reads the arguments of a create line.
func parseCreate(args []string) (scratchImage, bool) {
	var im scratchImage
	var pos []string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "-f" && i+1 < len(args):
			i++
			im.format = args[i]
		case args[i] == "-o" && i+1 < len(args):
			i++
			im.opts = args[i]
		default:
			pos = append(pos, args[i])
		}
	}
	if len(pos) != 2 {
		return im, false
	}
	im.name, im.size = pos[0], pos[1]
	return im, true
}

// forQemuIO turns a .gio script into qemu-io stdin: comments and blank
// lines dropped, "create NAME SIZE" lines returned as images to make with
// qemu-img instead.
func forQemuIO(src string) (string, []scratchImage) {
	var b strings.Builder
	var imgs []scratchImage
	for _, l := range strings.Split(src, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if f := strings.Fields(t); f[0] == "create" {
			if im, ok := parseCreate(f[1:]); ok {
				imgs = append(imgs, im)
				continue
			}
		}
		b.WriteString(repl.StripComment(l) + "\n")
	}
	return b.String(), imgs
}

func makeImages(t *testing.T, dir string, imgs []scratchImage) {
	t.Helper()
	for _, im := range imgs {
		if im.format != "" && im.format != "raw" {
			args := []string{"create", "-q", "-f", im.format}
			if im.opts != "" {
				args = append(args, "-o", im.opts)
			}
			cmd := exec.Command("qemu-img", append(args, im.name, im.size)...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("qemu-img %q: %v\n%s", args, err, out)
			}
			continue
		}
		f, err := os.Create(filepath.Join(dir, im.name))
		if err != nil {
			t.Fatal(err)
		}
		size, err := strconv.ParseInt(strings.TrimSuffix(im.size, "k"), 0, 64)
		if err != nil {
			t.Fatalf("create %s %s: size must be N or Nk in scripts", im.name, im.size)
		}
		if strings.HasSuffix(im.size, "k") {
			size <<= 10
		}
		f.Truncate(size)
		f.Close()
	}
}

// TestScriptsAgainstQemuIO runs every script that is plain qemu-io input
// (all but those whose header says "gio only") through the real qemu-io
// and through gio, in stdin mode on identical scratch images, and
// compares the normalised output, the exit status and the image bytes;
// it also checks that gio's script mode prints what qemu-io prints.
func TestScriptsAgainstQemuIO(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not installed (apt-get install qemu-utils)")
	}
	for _, path := range scripts(t) {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.SplitN(string(src), "\n", 2)[0], "gio only") {
			continue
		}
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			stdin, imgs := forQemuIO(string(src))
			qd, gd := t.TempDir(), t.TempDir()
			makeImages(t, qd, imgs)
			makeImages(t, gd, imgs)
			q := runIn(t, "qemu-io", qd, nil, &stdin)
			g := runIn(t, gioBin, gd, nil, &stdin)
			if a, b := repl.Normalize(q.out), repl.Normalize(g.out); a != b {
				t.Errorf("stdin mode output differs:\n%s", repl.UnifiedDiff("qemu-io", "gio", a, b))
			}
			if q.rc != g.rc {
				t.Errorf("exit status: qemu-io %d, gio %d", q.rc, g.rc)
			}
			if d := compareFiles(q.files, g.files); d != "" {
				t.Errorf("images differ: %s", d)
			}
			var sb bytes.Buffer
			// The in-process run holds OFD image locks; no child may be
			// forked meanwhile (it would inherit them until it execs, and a
			// lock would outlive its close): the other subtests run qemu-io.
			syscall.ForkLock.Lock()
			env.RunScript(filepath.Base(path), string(src), "", &sb, &sb, true)
			syscall.ForkLock.Unlock()
			script := scriptPrefix.ReplaceAllString(failedNote.ReplaceAllString(sb.String(), ""), "")
			if a, b := strings.TrimSuffix(repl.Normalize(q.out), "\n"), strings.TrimSuffix(repl.Normalize(script), "\n"); a != b {
				t.Errorf("script mode output differs from qemu-io:\n%s", repl.UnifiedDiff("qemu-io", "gio run", a, b))
			}
		})
	}
}
