package file_test

import (
	"bytes"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
)

// TestEngineConformance runs the conformance suite with each parallel
// engine, buffered and O_DIRECT: what the deterministic engine
// guarantees (reads see writes, zeroes, flushes, errors) must hold when
// the I/O runs outside the token.
func TestEngineConformance(t *testing.T) {
	dir := t.TempDir()
	for _, aio := range []string{"threads", "io_uring"} {
		for _, direct := range []bool{false, true} {
			name := aio
			if direct {
				name += "/direct"
			}
			t.Run(name, func(t *testing.T) {
				if direct && !directSupported(t, dir) {
					t.Skip("O_DIRECT not supported")
				}
				if aio == "io_uring" && !uringSupported(t, dir) {
					t.Skip("io_uring not available")
				}
				blktest.Run(t, func(t *testing.T) *blk.Backend {
					return mustOpen(t, newImage(t, dir, 1<<20), blk.OpenFlags{Direct: direct, AIO: aio})
				})
			})
		}
	}
}

func uringSupported(t *testing.T, dir string) bool {
	b, err := openFile(t, newImage(t, dir, 4096), blk.OpenFlags{AIO: "io_uring"})
	if err != nil {
		return false
	}
	b.Close()
	return true
}

// TestEngineParallel keeps many requests in flight at once on each
// engine and checks every byte: requests complete in any order, each
// with its own data.
func TestEngineParallel(t *testing.T) {
	dir := t.TempDir()
	for _, aio := range []string{"threads", "io_uring"} {
		t.Run(aio, func(t *testing.T) {
			if aio == "io_uring" && !uringSupported(t, dir) {
				t.Skip("io_uring not available")
			}
			const n, size = 600, 4096 // more than a ring's slots
			b := mustOpen(t, newImage(t, dir, n*size), blk.OpenFlags{AIO: aio})
			loop := b.Loop()
			errs := make([]error, n)
			for i := range n {
				buf := bytes.Repeat([]byte{byte(i)}, size)
				loop.Spawn("write", func(co *blk.Co) { errs[i] = b.PWrite(co, int64(i)*size, buf, 0) })
			}
			if err := loop.Drain("writes"); err != nil {
				t.Fatal(err)
			}
			bufs := make([][]byte, n)
			for i := range n {
				bufs[i] = make([]byte, size)
				loop.Spawn("read", func(co *blk.Co) {
					if errs[i] == nil {
						errs[i] = b.PRead(co, int64(i)*size, bufs[i])
					}
				})
			}
			if err := loop.Drain("reads"); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("request %d: %v", i, errs[i])
				}
				if want := bytes.Repeat([]byte{byte(i)}, size); !bytes.Equal(bufs[i], want) {
					t.Fatalf("block %d reads back wrong data", i)
				}
			}
		})
	}
}
