package main

// The crash tests: gio runs a write-heavy workload on a qcow2 (qed,
// vmdk) image and is killed with SIGKILL at a random moment; qemu-img
// check must then find no corruption (leaked clusters are allowed: a crash between
// allocating a cluster and linking it leaks it, by design). The workload
// mixes cluster sizes, cache modes (writethrough flushes metadata after
// every write, writeback lets the small caches evict, which exercises the
// write ordering), backing files, zero writes, discards and growth of the
// refcount table.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashWorkload returns a script of writes for an image of size bytes.
func crashWorkload(rng *rand.Rand, size int64, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		off := rng.Int64N(size)
		l := min(size-off, 1+rng.Int64N(256<<10))
		switch r := rng.IntN(10); {
		case r < 6:
			fmt.Fprintf(&b, "write -q -P %d %d %d\n", rng.IntN(256), off, l)
		case r < 7:
			fmt.Fprintf(&b, "write -q -z %d %d\n", off, l)
		case r < 8:
			fmt.Fprintf(&b, "write -q -z -u %d %d\n", off, l)
		case r < 9:
			fmt.Fprintf(&b, "discard -q %d %d\n", off, l)
		default:
			fmt.Fprintf(&b, "aio_write -q -P %d %d %d\n", rng.IntN(256), off, l)
		}
	}
	b.WriteString("aio_flush\n")
	return b.String()
}

// The kill counts give each geometry 15-20 kills at random moments of
// its first 400 ms (and the gio check comparison of its first 4 crash
// images). They were 200 for qcow2 and 100 for each other format: the
// geometries and cache modes are what reach different code, and the
// moments differ from run to run (they depend on the machine's speed),
// so the runs of CI add up; GIO_CRASH_KILLS=N asks for a deeper run.
// The 500 kills cost about 50 CPU-s at a load of 50, and more on a quiet
// machine, where gio runs through more of each 400 ms.
func TestQcow2Crash(t *testing.T) {
	t.Parallel()
	crashTest(t, "qcow2", 120, []crashGeometry{
		{"cluster_size=512", "16M", 16 << 20, false, "writethrough"},
		{"cluster_size=512", "16M", 16 << 20, false, "writeback"},
		{"cluster_size=4k", "64M", 64 << 20, true, "writeback"},
		{"cluster_size=64k", "64M", 64 << 20, false, "writeback"},
		{"cluster_size=64k", "64M", 64 << 20, true, "writethrough"},
		{"cluster_size=2M", "64M", 64 << 20, false, "writeback"},
	})
}

// TestFormatsCrash is the crash test of issue 16 for the writable
// formats whose metadata qemu-img check can judge: qed (L1/L2 tables,
// need-check bit) and vmdk (grain directory and tables, redundant
// tables, zeroed grains).
func TestFormatsCrash(t *testing.T) {
	t.Parallel()
	crashTest(t, "qed", 60, []crashGeometry{
		{"cluster_size=4k", "16M", 16 << 20, false, "writethrough"},
		{"cluster_size=64k", "64M", 64 << 20, false, "writeback"},
		{"cluster_size=64k", "64M", 64 << 20, true, "writeback"},
		{"cluster_size=4k", "64M", 64 << 20, true, "writethrough"},
	})
	crashTest(t, "vmdk", 60, []crashGeometry{
		{"", "64M", 64 << 20, false, "writethrough"},
		{"", "64M", 64 << 20, false, "writeback"},
		{"zeroed_grain=on", "64M", 64 << 20, false, "writeback"},
		{"zeroed_grain=on", "64M", 64 << 20, true, "writethrough"},
	})
}

// crashGeometry is one image layout of a crash test: qemu-img create's
// -o options, the size (as given and in bytes), a backing file, and the
// cache mode gio runs with.
type crashGeometry struct {
	opts, size string
	sizeBytes  int64
	backing    bool
	cache      string
}

// crashTest kills gio kills times (GIO_CRASH_KILLS overrides), spread
// over the geometries, in the middle of crashWorkload on a fresh format
// image, and runs qemu-img check on each image: leaks (exit 3) are
// allowed, corruption is not.
func crashTest(t *testing.T, format string, kills int, geos []crashGeometry) {
	t.Helper()
	kills = crashKills(t, kills)
	// Each geometry is independent (its own directory and random
	// sequence) and mostly waits for a kill: they run in parallel.
	for i, g := range geos {
		want := (kills + len(geos) - 1 - i) / len(geos)
		t.Run(fmt.Sprintf("%s-%s-%s-backing=%v-%s", format, g.opts, g.size, g.backing, g.cache), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(7, uint64(i)))
			dir := t.TempDir()
			img := filepath.Join(dir, "img."+format)
			base := filepath.Join(dir, "base."+format)
			if g.backing {
				mustRun(t, "qemu-img", "create", "-q", "-f", format, base, g.size)
				mustRun(t, gioBin, "-c", "write -P 0x33 0 "+g.size, base)
			}
			diffs := 0
			create := func() {
				os.Remove(img)
				args := []string{"create", "-q", "-f", format}
				if g.opts != "" {
					args = append(args, "-o", g.opts)
				}
				if g.backing {
					args = append(args, "-b", base, "-F", format)
				}
				mustRun(t, "qemu-img", append(args, img, g.size)...)
			}
			// check runs qemu-img check on the image: its exit code and
			// output.
			check := func() (int, string) {
				out, err := exec.Command("qemu-img", "check", img).CombinedOutput()
				if ee, ok := err.(*exec.ExitError); ok {
					return ee.ExitCode(), string(out)
				} else if err != nil {
					t.Fatal(err)
				}
				return 0, string(out)
			}
			// qemuLeaks tells whether qemu-io, run to the end on the
			// same script, leaves an image that qemu-img check judges
			// as gio's (code and output).
			var qemuOut string
			qemuLeaks := func(script string, code int, out string) bool {
				create()
				cmd := exec.Command("qemu-io", "-t", g.cache, img)
				cmd.Stdin = strings.NewReader(script)
				if err := cmd.Run(); err != nil {
					t.Fatalf("qemu-io: %v", err)
				}
				qcode, qout := check()
				qemuOut = fmt.Sprintf("after qemu-io: exit %d\n%s", qcode, qout)
				return qcode == code && checkFindings(qout) == checkFindings(out)
			}
			// run runs one workload on a fresh image, killed after delay
			// (0: never), and checks the image.
			run := func(delay time.Duration) (ranToEnd bool, leaked bool, took time.Duration) {
				create()
				script := crashWorkload(rng, g.sizeBytes, 400)
				// A run that finished before the kill must leave a clean
				// image, or leak what qemu-io leaks.
				ranToEnd, took = runKilled(t, g.cache, img, script, delay)
				if (format == "qcow2" || format == "qed" || format == "vmdk") && !ranToEnd && diffs < 4 {
					// gio check must agree with qemu-img check on
					// crash images (check_diff_test.go).
					diffs++
					diffCheck(t, img, checkModes)
				}
				code, out := check()
				switch {
				case code == 0:
				case code == 3 && !ranToEnd:
					leaked = true
				case code == 3 && qemuLeaks(script, code, out):
					// QEMU leaks there too (qed with a backing file
					// leaks a cluster on some writes): not a crash
					// matter.
				default:
					t.Fatalf("%+v, killed after %v (0: not killed): qemu-img check exit %d\n%s%s", g, delay, code, out, qemuOut)
				}
				return ranToEnd, leaked, took
			}
			killed, finished, leaks := killLoop(t, rng, want, run)
			t.Logf("%d kills (and %d runs that ended first, clean): %d images with leaked clusters only", killed, finished, leaks)
		})
	}
}

// crashKills skips a crash test in -short mode or without qemu-img, and
// returns its number of kills (GIO_CRASH_KILLS overrides kills).
func crashKills(t *testing.T, kills int) int {
	t.Helper()
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
	if s := os.Getenv("GIO_CRASH_KILLS"); s != "" {
		fmt.Sscan(s, &kills)
	}
	return kills
}

// runKilled runs gio -t cache on img with script as stdin, killed with
// SIGKILL after delay (0: never): whether it ran to the end first, and
// how long it ran.
func runKilled(t *testing.T, cache, img, script string, delay time.Duration) (ranToEnd bool, took time.Duration) {
	t.Helper()
	cmd := exec.Command(gioBin, "-t", cache, img)
	cmd.Stdin = strings.NewReader(script)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timer <-chan time.Time
	if delay > 0 {
		timer = time.After(delay)
	}
	select {
	case <-done:
		ranToEnd = true
	case <-timer:
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	return ranToEnd, time.Since(start)
}

// killLoop calls run (one workload on a fresh image, killed after delay,
// 0: never; flagged: the image needed what the test counts, a leak or a
// replay) until want runs were killed, at most 3*want times. A first
// run to the end measures how long a workload takes here and now, so
// that the kills land inside the runs whatever the machine's speed and
// load (within the first 400 ms, where most of the metadata is
// allocated). It returns the kills, the runs that ended before their
// kill, and the flagged kills.
func killLoop(t *testing.T, rng *rand.Rand, want int, run func(delay time.Duration) (ranToEnd, flagged bool, took time.Duration)) (killed, finished, flagged int) {
	t.Helper()
	_, _, whole := run(0)
	for k := 0; killed < want && k < 3*want; k++ {
		ranToEnd, f, took := run(time.Duration(rng.Int64N(int64(min(whole, 400*time.Millisecond)))))
		if ranToEnd {
			finished++
			// The machine got faster: aim at the runs seen now.
			whole = took
			continue
		}
		killed++
		if f {
			flagged++
		}
	}
	if killed < want {
		t.Errorf("only %d of %d runs were killed before they ended", killed, want)
	}
	return killed, finished, flagged
}

// checkFindings is qemu-img check's output without its allocation
// statistics line (fragmentation depends on the order in which
// concurrent aio_writes allocated).
func checkFindings(out string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(out, "\n") {
		if !strings.Contains(l, "% allocated") {
			b.WriteString(l)
		}
	}
	return b.String()
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}
