package main

// The vhdx crash test (issue 16): gio runs crashWorkload on a vhdx image
// and is killed with SIGKILL at a random moment. A kill may leave a
// block allocated but not in the BAT (a leak qemu-img check cannot see)
// or a log entry not yet replayed: qemu-img check then refuses the image
// until "qemu-img check -r all" replays the log, as QEMU's own images
// after a crash. Either way the image must come out clean.

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVhdxCrash(t *testing.T) {
	t.Parallel()
	kills := crashKills(t, 60) // see TestQcow2Crash
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
				ranToEnd, took = runKilled(t, g.cache, img, crashWorkload(rng, size, 400), delay)
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
			killed, finished, replays := killLoop(t, rng, want, run)
			t.Logf("%d kills (and %d runs that ended first, clean): %d images with a log to replay", killed, finished, replays)
		})
	}
}
