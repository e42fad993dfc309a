package main

// The qcow2 crash test: gio runs a write-heavy workload on a qcow2 image
// and is killed with SIGKILL at a random moment; qemu-img check must then
// find no corruption (leaked clusters are allowed: a crash between
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

func TestQcow2Crash(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
	kills := 200
	if s := os.Getenv("GIO_CRASH_KILLS"); s != "" {
		fmt.Sscan(s, &kills)
	}
	type geometry struct {
		cluster, size string
		sizeBytes     int64
		backing       bool
		cache         string
	}
	geos := []geometry{
		{"512", "16M", 16 << 20, false, "writethrough"},
		{"512", "16M", 16 << 20, false, "writeback"},
		{"4k", "64M", 64 << 20, true, "writeback"},
		{"64k", "64M", 64 << 20, false, "writeback"},
		{"64k", "64M", 64 << 20, true, "writethrough"},
		{"2M", "64M", 64 << 20, false, "writeback"},
	}
	// Each geometry is independent (its own directory and random
	// sequence) and mostly waits for a kill: they run in parallel.
	for i, g := range geos {
		want := (kills + len(geos) - 1 - i) / len(geos)
		t.Run(fmt.Sprintf("%s-%s-backing=%v-%s", g.cluster, g.size, g.backing, g.cache), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(7, uint64(i)))
			dir := t.TempDir()
			img := filepath.Join(dir, "img.qcow2")
			base := filepath.Join(dir, "base.qcow2")
			if g.backing {
				mustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", base, g.size)
				mustRun(t, gioBin, "-c", "write -P 0x33 0 "+g.size, base)
			}
			diffs := 0
			// run runs one workload on a fresh image, killed after delay
			// (0: never), and checks the image.
			run := func(delay time.Duration) (ranToEnd bool, leaked bool, took time.Duration) {
				os.Remove(img)
				args := []string{"create", "-q", "-f", "qcow2", "-o", "cluster_size=" + g.cluster}
				if g.backing {
					args = append(args, "-b", base, "-F", "qcow2")
				}
				mustRun(t, "qemu-img", append(args, img, g.size)...)
				cmd := exec.Command(gioBin, "-t", g.cache, img)
				cmd.Stdin = strings.NewReader(crashWorkload(rng, g.sizeBytes, 400))
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
					// Finished before the kill: the image must be clean.
					ranToEnd = true
				case <-timer:
					cmd.Process.Signal(syscall.SIGKILL)
					<-done
				}
				took = time.Since(start)
				if !ranToEnd && diffs < 4 {
					// gio check must agree with qemu-img check on
					// crash images (check_diff_test.go).
					diffs++
					diffCheck(t, img, checkModes)
				}
				out, err := exec.Command("qemu-img", "check", img).CombinedOutput()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				switch {
				case code == 0:
				case code == 3 && !ranToEnd:
					leaked = true
				default:
					t.Fatalf("%+v, killed after %v (0: not killed): qemu-img check exit %d\n%s", g, delay, code, out)
				}
				return ranToEnd, leaked, took
			}
			// A first run to the end measures how long a workload takes
			// here and now, so that the kills land inside the runs
			// whatever the machine's speed and load (within the first
			// 400 ms, where most of the metadata is allocated).
			_, _, whole := run(0)
			var killed, leaks, finished int
			for k := 0; killed < want && k < 3*want; k++ {
				ranToEnd, leaked, took := run(time.Duration(rng.Int64N(int64(min(whole, 400*time.Millisecond)))))
				if ranToEnd {
					finished++
					// The machine got faster: aim at the runs seen now.
					whole = took
					continue
				}
				killed++
				if leaked {
					leaks++
				}
			}
			if killed < want {
				t.Errorf("only %d of %d runs were killed before they ended", killed, want)
			}
			t.Logf("%d kills (and %d runs that ended first, clean): %d images with leaked clusters only", killed, finished, leaks)
		})
	}
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}
