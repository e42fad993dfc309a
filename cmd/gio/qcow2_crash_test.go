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
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH", tool)
		}
	}
	kills := 200
	if s := os.Getenv("GIO_CRASH_KILLS"); s != "" {
		fmt.Sscan(s, &kills)
	}
	rng := rand.New(rand.NewPCG(7, 7))
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
	dir := t.TempDir()
	var leaks, clean, finished int
	for k := 0; k-finished < kills && k < 3*kills; k++ {
		g := geos[k%len(geos)]
		img := filepath.Join(dir, "img.qcow2")
		base := filepath.Join(dir, "base.qcow2")
		os.Remove(img)
		args := []string{"create", "-q", "-f", "qcow2", "-o", "cluster_size=" + g.cluster}
		if g.backing {
			if _, err := os.Stat(base); err != nil {
				mustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", base, g.size)
				mustRun(t, "qemu-io", "-c", "write -P 0x33 0 "+g.size, base)
			}
			args = append(args, "-b", base, "-F", "qcow2")
		}
		mustRun(t, "qemu-img", append(args, img, g.size)...)
		script := crashWorkload(rng, g.sizeBytes, 400)
		cmd := exec.Command(gioBin, "-t", g.cache, img)
		cmd.Stdin = strings.NewReader(script)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rng.Int64N(int64(400 * time.Millisecond)))
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		ranToEnd := false
		select {
		case <-done:
			// Finished before the kill: the image must be clean.
			finished++
			ranToEnd = true
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
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
			clean++
		case code == 3 && !ranToEnd:
			leaks++
		default:
			t.Fatalf("kill %d (%+v, after %v): qemu-img check exit %d\n%s", k, g, delay, code, out)
		}
	}
	if killed := clean + leaks - finished; killed < kills {
		t.Errorf("only %d of %d runs were killed before they ended", killed, kills)
	}
	t.Logf("%d kills (and %d runs that ended first, clean): %d images clean, %d with leaked clusters only",
		clean+leaks-finished, finished, clean-finished, leaks)
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}
