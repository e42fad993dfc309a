package blk_test

import (
	"fmt"
	"strings"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/raw"
	"gio/blk/qdict"
)

// openMem opens options (raw over mem) on a virtual-time loop, closed
// when the test ends.
func openMem(tb testing.TB, options string) (*blk.Loop, *blk.Backend) {
	tb.Helper()
	d, _, err := qdict.ParseKeyValue(options)
	if err != nil {
		tb.Fatal(err)
	}
	loop := blk.NewLoop(blk.NewVirtualClock())
	b, err := blk.NewRegistry(raw.Driver, blktest.MemDriver).Open(blk.Spec{Opts: d}, loop)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return loop, b
}

// recorder is a Tracer that keeps every event; lines renders them, one
// line each. It lends small batches holding garbage (the loop sets every
// field).
type recorder struct{ evs, lent []blk.TraceEvent }

func (r *recorder) Events(n int) []blk.TraceEvent {
	r.evs = append(r.evs, r.lent[:n]...)
	r.lent = make([]blk.TraceEvent, 3)
	for i := range r.lent {
		r.lent[i] = blk.TraceEvent{Kind: 255, Name: "garbage"}
	}
	return r.lent
}

func (r *recorder) lines() []string {
	var lines []string
	for _, e := range r.evs {
		node := ""
		if e.Node != nil {
			node = e.Node.Name()
		}
		lines = append(lines, fmt.Sprintf("%v req=%d span=%d parent=%d target=%d node=%s name=%q why=%q 0x%x+0x%x at=%v",
			e.Kind, e.Req, e.Span, e.Parent, e.Target, node, e.Name, e.Why, e.Off, e.Bytes, e.At))
	}
	return lines
}

// TestTracer checks the events of two overlapping unaligned writes on a
// 4 KiB-aligned node (the second waits for the first), and that a loop
// without a tracer reports nothing and a stopped tracer hears no more.
func TestTracer(t *testing.T) {
	// A probed raw node does read-modify-write on sub-sector writes
	// (request alignment 512), so the two writes conflict.
	loop, b := openMem(t, "file.driver=mem,file.yield=on,file.size=64k")
	rec := &recorder{}
	loop.SetTracer(rec)
	var id [2]int
	for i, off := range []int64{0x100, 0x300} {
		buf := make([]byte, 0x200)
		id[i] = loop.Spawn(fmt.Sprintf("w%d", i), func(co *blk.Co) { co.NoteError(b.PWrite(co, off, buf, 0)) }).ID()
	}
	if err := loop.Drain("test"); err != nil {
		t.Fatal(err)
	}
	loop.SetTracer(nil)
	last := loop.Spawn("untraced", func(co *blk.Co) { b.PWrite(co, 0, make([]byte, 512), 0) }).ID()
	loop.Drain("test")
	got := strings.Join(rec.lines(), "\n")
	w0, w1 := id[0], id[1]
	for _, want := range []string{
		fmt.Sprintf(`submit req=%d span=0 parent=0 target=0 node= name="w0"`, w0),
		fmt.Sprintf(`submit req=%d span=0 parent=0 target=0 node= name="w1"`, w1),
		fmt.Sprintf(`begin req=%d span=1 parent=0 target=0 node=raw name="write" why="" 0x0+0x400`, w0),
		fmt.Sprintf(`serialise req=%d span=1 parent=0 target=0 node=raw name="" why="" 0x0+0x400`, w0),
		fmt.Sprintf(`begin req=%d span=2 parent=1 target=0 node=mem name="read" why="" 0x0+0x400`, w0),
		fmt.Sprintf(`yield req=%d span=0 parent=0 target=0 node= name="" why="waits for I/O"`, w0),
		fmt.Sprintf(`wait req=%d span=3 parent=1 target=%d node=raw name="" why="" 0x0+0x400`, w1, w0),
		fmt.Sprintf(`yield req=%d span=0 parent=0 target=0 node= name="" why="waits for #%d w0 [0x0+0x400]"`, w1, w0),
		fmt.Sprintf(`complete req=%d`, w0),
		fmt.Sprintf(`complete req=%d`, w1),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no event %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "untraced") || strings.Contains(got, fmt.Sprintf("req=%d ", last)) {
		t.Errorf("events after SetTracer(nil):\n%s", got)
	}
	// Begins and ends pair up per span, and every parent was begun first.
	open := map[string]bool{}
	for _, l := range rec.lines() {
		f := strings.Fields(l)
		span, parent := f[2], f[3]
		switch f[0] {
		case "begin":
			if p := strings.TrimPrefix(parent, "parent="); p != "0" && !open["span="+p] {
				t.Errorf("%s: parent not open", l)
			}
			open[span] = true
		case "end":
			if !open[span] {
				t.Errorf("%s: end without begin", l)
			}
			delete(open, span)
		}
	}
	if len(open) != 0 {
		t.Errorf("spans never ended: %v", open)
	}
}

// TestTracerWaited checks that a yield resumed before anything else is
// traced is one event (a lone write waiting for its I/O), and that a yield
// with events inside it stays a yield and a resume.
func TestTracerWaited(t *testing.T) {
	loop, b := openMem(t, "file.driver=mem,file.yield=on,file.size=64k")
	rec := &recorder{}
	loop.SetTracer(rec)
	buf := make([]byte, 4096)
	id := loop.Spawn("w", func(co *blk.Co) { b.PWrite(co, 0, buf, 0) }).ID()
	if err := loop.Drain("test"); err != nil {
		t.Fatal(err)
	}
	loop.SetTracer(nil)
	var kinds []string
	for _, e := range rec.evs {
		kinds = append(kinds, e.Kind.String())
		if e.Kind == blk.TraceWaited && (e.Req != id || e.Why != "waits for I/O" || e.End < e.At) {
			t.Errorf("waited event %+v", e)
		}
	}
	if got, want := strings.Join(kinds, " "), "submit begin begin waited end end complete"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	// Two writes: each one's wait has the other's events inside it.
	rec = &recorder{}
	loop.SetTracer(rec)
	for i := range 2 {
		off := int64(i) * 4096
		loop.Spawn("w", func(co *blk.Co) { b.PWrite(co, off, buf, 0) })
	}
	if err := loop.Drain("test"); err != nil {
		t.Fatal(err)
	}
	loop.SetTracer(nil)
	got := strings.Join(rec.lines(), "\n")
	if strings.Contains(got, "waited") {
		t.Errorf("a wait with events inside it became one event:\n%s", got)
	}
	for _, want := range []string{"yield req=", "resume req="} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
}
