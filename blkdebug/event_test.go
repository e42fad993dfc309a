package blkdebug

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"gio/blk"

	"golang.org/x/sys/unix"
)

type op func(e *env) error

func opWrite(off, n int64) op { return func(e *env) error { return e.write(off, n, 0x11) } }
func opRead(off, n int64) op  { return func(e *env) error { return e.read(off, n) } }

func opZero(off, n int64) op {
	return func(e *env) error {
		return e.run("write -z", func(co *blk.Co) error { return e.img.PWriteZeroes(co, off, n, 0) })
	}
}

func opDiscard(off, n int64) op {
	return func(e *env) error {
		return e.run("discard", func(co *blk.Co) error { return e.img.PDiscard(co, off, n) })
	}
}

func opFlush(e *env) error {
	return e.run("flush", func(co *blk.Co) error { return e.img.Flush(co) })
}

func opOthers(e *env) error {
	return e.run("truncate, map, length", func(co *blk.Co) error {
		if err := e.img.Truncate(co, 2<<20, blk.PreallocOff); err != nil {
			return err
		}
		if _, _, err := e.img.IsAllocated(co, 0, 2<<20); err != nil {
			return err
		}
		_, err := e.img.Length(co)
		return err
	})
}

func opClose(e *env) error { return e.img.Close() }

// expand turns the table's abbreviations into event names.
func expand(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		switch f {
		case "head", "tail", "after_head", "after_tail":
			f = "pwritev_rmw_" + f
		case "zero":
			f = "pwritev_zero"
		case "done":
			f = "pwritev_done"
		}
		out = append(out, f)
	}
	return out
}

// TestEventSequences checks the rows of the reference's table of event
// sequences (raw -> blkdebug -> file, measured with qemu-io 7.2) on
// top -> blkdebug -> mem.
func TestEventSequences(t *testing.T) {
	const wb, wt = false, true
	for _, tc := range []struct {
		name         string
		opts         string // blkdebug options
		writeThrough bool
		noFlush      bool
		readOnly     bool
		ops          []op
		want         string
	}{
		{"write 0 4k (1), WB", "", wb, false, false, []op{opWrite(0, 4096)}, "write_aio pwritev done"},
		{"write 0 4k (1), default", "", wt, false, false, []op{opWrite(0, 4096)}, "write_aio pwritev done flush_to_os"},
		{"write -z 0 4k (1), WB", "", wb, false, false, []op{opZero(0, 4096)}, "zero done"},
		{"write -z 0 4k (1), default", "", wt, false, false, []op{opZero(0, 4096)}, "zero done flush_to_os"},
		{"read 0 4k (4096)", "align=4096", wb, false, false, []op{opRead(0, 4096)}, "read_aio"},
		{"read 512 512 (4096)", "align=4096", wb, false, false, []op{opRead(512, 512)}, "read_aio"},
		{"write 512 512 (4096)", "align=4096", wb, false, false, []op{opWrite(512, 512)},
			"write_aio head tail after_head after_tail pwritev done"},
		{"write 512 3584 (4096): head only", "align=4096", wb, false, false, []op{opWrite(512, 3584)},
			"write_aio head after_head pwritev done"},
		{"write 0 512 (4096): tail only", "align=4096", wb, false, false, []op{opWrite(0, 512)},
			"write_aio tail after_tail pwritev done"},
		{"write 0 100 (512): tail only", "align=512", wb, false, false, []op{opWrite(0, 100)},
			"write_aio tail after_tail pwritev done"},
		{"write 2048 4096 (4096): merged", "align=4096", wb, false, false, []op{opWrite(2048, 4096)},
			"write_aio head tail after_head after_tail pwritev done"},
		{"write 2048 8192 (4096): separate", "align=4096", wb, false, false, []op{opWrite(2048, 8192)},
			"write_aio head after_head tail after_tail pwritev done"},
		{"write 4096 8192 (4096): aligned", "align=4096", wb, false, false, []op{opWrite(4096, 8192)},
			"write_aio pwritev done"},
		{"write -z 512 512 (4096)", "align=4096", wb, false, false, []op{opZero(512, 512)},
			"head tail after_head after_tail pwritev done"},
		{"write -z 2048 4096 (4096): merged", "align=4096", wb, false, false, []op{opZero(2048, 4096)},
			"head tail after_head after_tail pwritev done"},
		{"write -z 2048 6144 (4096): head and middle", "align=4096", wb, false, false, []op{opZero(2048, 6144)},
			"head after_head pwritev done zero done"},
		{"write -z 2048 8192 (4096): head, middle, tail", "align=4096", wb, false, false, []op{opZero(2048, 8192)},
			"head after_head tail after_tail pwritev done zero done pwritev done"},
		{"write 0 16k, max-transfer=4096", "max-transfer=4096", wb, false, false, []op{opWrite(0, 16384)},
			"write_aio pwritev done write_aio pwritev done write_aio pwritev done write_aio pwritev done"},
		{"write -z 0 16k, max-write-zero=4096", "max-write-zero=4096", wb, false, false, []op{opZero(0, 16384)}, "zero done"},
		{"flush, nothing written", "", wb, false, false, []op{opFlush}, "flush_to_os"},
		{"write; flush, WB", "", wb, false, false, []op{opWrite(0, 512), opFlush},
			"write_aio pwritev done flush_to_os flush_to_disk"},
		{"write; flush, default", "", wt, false, false, []op{opWrite(0, 512), opFlush},
			"write_aio pwritev done flush_to_os flush_to_os flush_to_disk"},
		{"write; flush, unsafe", "", wb, true, false, []op{opWrite(0, 512), opFlush},
			"write_aio pwritev done flush_to_os"},
		{"discard, truncate, map, length", "", wb, false, false, []op{opDiscard(0, 4096), opOthers}, ""},
		{"write; close", "", wb, false, false, []op{opWrite(0, 512), opClose},
			"write_aio pwritev done flush_to_os flush_to_disk"},
		{"close, nothing written", "", wb, false, false, []op{opClose}, "flush_to_os"},
		{"flush on a read-only image", "", wb, false, true, []op{opFlush, opClose}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := "driver=top,file.driver=blkdebug,file.image.driver=mem"
			if tc.opts != "" {
				opts += ",file." + strings.ReplaceAll(tc.opts, ",", ",file.")
			}
			e := openEnv(t, opts, blk.Spec{WriteThrough: tc.writeThrough,
				Flags: blk.OpenFlags{NoFlush: tc.noFlush, ReadOnly: tc.readOnly, Unmap: true}})
			evs := e.traceEvents()
			for i, o := range tc.ops {
				if err := o(e); err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
			}
			if want := expand(tc.want); !slices.Equal(*evs, want) {
				t.Errorf("events\n%v\nwant\n%v", *evs, want)
			}
		})
	}
}

// TestBreakpoints replays the reference's two-breakpoint example: both
// rules of write_aio are consumed by the first request, newest first, and
// it needs both resumes; the second request finds no rule.
func TestBreakpoints(t *testing.T) {
	e := openEnv(t, "driver=top,file.driver=blkdebug,file.image.driver=mem", blk.Spec{})
	bp := e.img.Root.Breakpointer()
	if bp == nil {
		t.Fatal("no breakpointer below the root")
	}
	must(t, bp.Break("write_aio", "A"))
	must(t, bp.Break("write_aio", "B"))
	if got := bp.Tags(); !slices.Equal(got, []string{"A", "B"}) {
		t.Errorf("Tags() = %v", got)
	}
	e.aioWrite(0, 512, 0xaa)
	e.poll()
	if !bp.IsSuspended("A") || !bp.IsSuspended("B") {
		t.Errorf("IsSuspended A, B = %v, %v; want both", bp.IsSuspended("A"), bp.IsSuspended("B"))
	}
	e.aioWrite(512, 512, 0xbb)
	e.poll()
	must(t, bp.Resume("A"))
	e.loop.RunReady()
	e.poll()
	if err := bp.Resume("A"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("second Resume(A) = %v, want ENOENT", err)
	}
	must(t, bp.Resume("B"))
	e.loop.RunReady()
	e.drain()
	want := `blkdebug: Suspended request 'B'
blkdebug: Suspended request 'A'
aio_write 512 512: ok
blkdebug: Resuming request 'A'
blkdebug: Resuming request 'B'
aio_write 0 512: ok
`
	if got := e.out.String(); got != want {
		t.Errorf("transcript\n%s\nwant\n%s", got, want)
	}
	if err := bp.Break("WRITE_AIO", "C"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Break on an unknown event = %v, want ENOENT", err)
	}
	if got := bp.Tags(); len(got) != 0 {
		t.Errorf("Tags() = %v after everything fired", got)
	}
}

// TestResumeNewestFirst: resume picks the most recently suspended request
// with the tag.
func TestResumeNewestFirst(t *testing.T) {
	e := openEnv(t, "driver=top,file.driver=blkdebug,file.image.driver=mem", blk.Spec{})
	bp := e.img.Root.Breakpointer()
	must(t, bp.Break("write_aio", "A"))
	e.aioWrite(0, 512, 1)
	must(t, bp.Break("write_aio", "A"))
	e.aioWrite(512, 512, 2)
	must(t, bp.Resume("A"))
	e.loop.RunReady()
	must(t, bp.Resume("A"))
	e.loop.RunReady()
	e.drain()
	want := `blkdebug: Suspended request 'A'
blkdebug: Suspended request 'A'
blkdebug: Resuming request 'A'
aio_write 512 512: ok
blkdebug: Resuming request 'A'
aio_write 0 512: ok
`
	if got := e.out.String(); got != want {
		t.Errorf("transcript\n%s\nwant\n%s", got, want)
	}
}

// TestRemoveBreak replays a qemu-io 7.2 run over null-co: remove_break
// resumes each request and lets it run before the next; it fails when no
// unfired breakpoint had the tag, even after resuming requests.
func TestRemoveBreak(t *testing.T) {
	e := openEnv(t, "driver=top,file.driver=blkdebug,file.image.driver=mem", blk.Spec{})
	bp := e.img.Root.Breakpointer()
	must(t, bp.Break("write_aio", "A"))
	must(t, bp.Break("pwritev", "A"))
	must(t, bp.Break("pwritev_done", "C"))
	e.aioWrite(0, 512, 1)
	e.aioWrite(4096, 512, 2)
	if err := bp.RemoveBreak("A"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("RemoveBreak(A) = %v, want ENOENT (no unfired rule left)", err)
	}
	e.loop.RunReady()
	must(t, bp.Resume("C"))
	e.loop.RunReady()
	e.drain()
	want := `blkdebug: Suspended request 'A'
blkdebug: Suspended request 'A'
blkdebug: Resuming request 'A'
blkdebug: Suspended request 'C'
blkdebug: Resuming request 'A'
aio_write 0 512: ok
blkdebug: Resuming request 'C'
aio_write 4096 512: ok
`
	if got := e.out.String(); got != want {
		t.Errorf("transcript\n%s\nwant\n%s", got, want)
	}

	// With an unfired rule it succeeds, and removes it.
	must(t, bp.Break("read_aio", "D"))
	must(t, bp.RemoveBreak("D"))
	if err := bp.RemoveBreak("D"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("RemoveBreak(D) twice = %v, want ENOENT", err)
	}
	if err := e.read(0, 512); err != nil {
		t.Errorf("read after remove_break: %v", err)
	}
}

// TestBreakNoneNeverFires: none fires only at open.
func TestBreakNoneNeverFires(t *testing.T) {
	e := openEnv(t, "driver=top,file.driver=blkdebug,file.image.driver=mem", blk.Spec{})
	bp := e.img.Root.Breakpointer()
	must(t, bp.Break("none", "A"))
	must(t, e.write(0, 512, 1))
	if e.out.Len() != 0 || bp.IsSuspended("A") {
		t.Errorf("a breakpoint on none fired: %q", e.out.String())
	}
}

// TestRMWSerialisation is the reference's B.1 script: B's padding read
// waits for the serialising request A, so both updates survive.
func TestRMWSerialisation(t *testing.T) {
	e := openEnv(t, "driver=top,file.driver=blkdebug,file.image.driver=mem,file.image.size=64k,file.align=4096", blk.Spec{})
	bp := e.img.Root.Breakpointer()
	must(t, bp.Break("pwritev_rmw_after_tail", "A"))
	e.aioWrite(0, 512, 0xaa)
	if !bp.IsSuspended("A") {
		t.Fatal("A not suspended")
	}
	must(t, bp.Break("pwritev_rmw_head", "B"))
	e.aioWrite(512, 512, 0xbb)
	e.poll()
	must(t, bp.Resume("A"))
	e.loop.RunReady()
	e.poll()
	must(t, bp.Resume("B"))
	e.loop.RunReady()
	e.drain()
	want := `blkdebug: Suspended request 'A'
blkdebug: Resuming request 'A'
aio_write 0 512: ok
blkdebug: Suspended request 'B'
blkdebug: Resuming request 'B'
aio_write 512 512: ok
`
	if got := e.out.String(); got != want {
		t.Errorf("transcript\n%s\nwant\n%s", got, want)
	}
	if a, b := e.mem.Data[:512], e.mem.Data[512:1024]; !allBytes(a, 0xaa) || !allBytes(b, 0xbb) {
		t.Errorf("data %x... %x..., want both updates", a[:4], b[:4])
	}
}

// TestSerialiseOff: while A is stopped between its padding read and its
// write, B read-modify-writes the same block. Serialised, B waits and
// both updates survive; with serialise=off B completes first and A's
// stale block then overwrites B's bytes.
func TestSerialiseOff(t *testing.T) {
	for _, serialise := range []bool{true, false} {
		t.Run(fmt.Sprintf("serialise=%v", serialise), func(t *testing.T) {
			opts := "driver=top,file.driver=blkdebug,file.image.driver=mem,file.image.size=64k,file.align=4096"
			if !serialise {
				opts += ",file.serialise=off"
			}
			e := openEnv(t, opts, blk.Spec{})
			bp := e.img.Root.Breakpointer()
			must(t, bp.Break("pwritev_rmw_after_tail", "A"))
			e.aioWrite(0, 512, 0xaa)
			e.aioWrite(512, 512, 0xbb)
			e.poll()
			must(t, bp.Resume("A"))
			e.loop.RunReady()
			e.drain()
			a, b := e.mem.Data[:512], e.mem.Data[512:1024]
			wantB := byte(0xbb)
			if !serialise {
				wantB = 0
			}
			if !allBytes(a, 0xaa) || !allBytes(b, wantB) {
				t.Errorf("data %x... %x..., want aa... %02x...", a[:4], b[:4], wantB)
			}
		})
	}
}

func allBytes(b []byte, v byte) bool { return len(bytes.Trim(b, string([]byte{v}))) == 0 }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
