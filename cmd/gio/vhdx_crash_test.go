package main

// The vhdx crash test (issue 16): gio runs crashWorkload on a vhdx image
// and is killed with SIGKILL at a random moment. A kill may leave a
// block allocated but not in the BAT (a leak qemu-img check cannot see)
// or a log entry not yet replayed: qemu-img check then refuses the image
// until "qemu-img check -r all" replays the log, as QEMU's own images
// after a crash. Either way the image must come out clean.

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

func TestVhdxCrash(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
	kills := 100
	if s := os.Getenv("GIO_CRASH_KILLS"); s != "" {
		fmt.Sscan(s, &kills)
	}
	geos := []struct{ opts, cache string }{
		{"block_size=1M", "writethrough"},
		{"block_size=1M", "writeback"},
		{"block_size=1M,block_state_zero=off", "writeback"},
		{"block_size=8M", "writethrough"},
	}
	const size = 64 << 20
	for i, g := range geos {
		want := (kills + len(geos) - 1 - i) / len(geos)
		t.Run(g.opts+"-"+g.cache, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(16, uint64(i)))
			diffs := 0
			img := filepath.Join(t.TempDir(), "img.vhdx")
			// check judges the image: clean, or clean once the log is
			// replayed; replayed tells which.
			check := func() (replayed bool) {
				out, err := exec.Command("qemu-img", "check", img).CombinedOutput()
				if err == nil {
					return false
				}
				if !strings.Contains(string(out), "contains a log that needs to be replayed") {
					t.Fatalf("qemu-img check: %v\n%s", err, out)
				}
				if out, err := exec.Command("qemu-img", "check", "-r", "all", img).CombinedOutput(); err != nil {
					t.Fatalf("qemu-img check -r all: %v\n%s", err, out)
				}
				if out, err := exec.Command("qemu-img", "check", img).CombinedOutput(); err != nil {
					t.Fatalf("qemu-img check after the replay: %v\n%s", err, out)
				}
				return true
			}
			run := func(delay time.Duration) (ranToEnd, replayed bool, took time.Duration) {
				os.Remove(img)
				mustRun(t, "qemu-img", "create", "-q", "-f", "vhdx", "-o", g.opts, img, "64M")
				cmd := exec.Command(gioBin, "-t", g.cache, img)
				cmd.Stdin = strings.NewReader(crashWorkload(rng, size, 400))
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
				took = time.Since(start)
				if !ranToEnd && diffs < 4 {
					// gio check must agree with qemu-img check on
					// crash images, a log to replay included.
					diffs++
					diffCheck(t, img, checkModes)
				}
				replayed = check()
				if replayed && ranToEnd {
					t.Fatalf("%+v: a run that ended left a log to replay", g)
				}
				return ranToEnd, replayed, took
			}
			_, _, whole := run(0)
			var killed, replays, finished int
			for k := 0; killed < want && k < 3*want; k++ {
				ranToEnd, replayed, took := run(time.Duration(rng.Int64N(int64(min(whole, 400*time.Millisecond)))))
				if ranToEnd {
					finished++
					whole = took
					continue
				}
				killed++
				if replayed {
					replays++
				}
			}
			if killed < want {
				t.Errorf("only %d of %d runs were killed before they ended", killed, want)
			}
			t.Logf("%d kills (and %d runs that ended first, clean): %d images with a log to replay", killed, finished, replays)
		})
	}
}
