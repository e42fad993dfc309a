package trace

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"gio/blk"
)

// phases returns the "ph" of each event but metadata, space-separated.
func phases(evs []Event) string {
	var ph []string
	for _, e := range evs {
		if e.Ph != "M" {
			ph = append(ph, e.Ph)
		}
	}
	return strings.Join(ph, " ")
}

// writeAll writes evs through a Writer, as the loop fills its batches,
// and returns the file, its events as written and as Read returns them.
func writeAll(t *testing.T, evs []blk.TraceEvent) (string, []Event) {
	t.Helper()
	var out bytes.Buffer
	w := NewWriter(&out, JSONL)
	f := &filler{t: w}
	for _, e := range evs {
		*f.slot() = e
	}
	f.stop()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	back, err := Read(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatalf("Read: %v\n%s", err, out.String())
	}
	if err := Check(back); err != nil {
		t.Errorf("Check: %v\n%s", err, out.String())
	}
	return out.String(), back
}

// writtenPhases returns the "ph" of each event of a JSONL file but
// metadata.
func writtenPhases(t *testing.T, file string) string {
	t.Helper()
	var ph []string
	for _, l := range strings.Split(strings.TrimSpace(file), "\n") {
		i := strings.Index(l, `"ph":"`)
		if i < 0 {
			t.Fatalf("no ph in %s", l)
		}
		if p := l[i+6 : i+7]; p != "M" {
			ph = append(ph, p)
		}
	}
	return strings.Join(ph, " ")
}

// TestFold checks which requests and spans are written as complete
// slices (chains), and that Read gives back their begins and ends in
// the order the loop reported them.
func TestFold(t *testing.T) {
	raw, file := &blk.Node{}, &blk.Node{}
	us := func(n int) time.Duration { return time.Duration(n) * time.Microsecond }
	submit := func(req, at int) blk.TraceEvent {
		return blk.TraceEvent{Kind: blk.TraceSubmit, Req: req, At: us(at), Name: "write 0 4096"}
	}
	complete := func(req, at int) blk.TraceEvent {
		return blk.TraceEvent{Kind: blk.TraceComplete, Req: req, At: us(at)}
	}
	begin := func(req, span, parent, at int, n *blk.Node) blk.TraceEvent {
		return blk.TraceEvent{Kind: blk.TraceBegin, Req: req, Span: span, Parent: parent, At: us(at), Node: n, Name: "write", Bytes: 4096}
	}
	end := func(req, span, at int) blk.TraceEvent {
		return blk.TraceEvent{Kind: blk.TraceEnd, Req: req, Span: span, At: us(at)}
	}
	waited := func(req, at, until int) blk.TraceEvent {
		return blk.TraceEvent{Kind: blk.TraceWaited, Req: req, At: us(at), End: us(until), Why: "waits for I/O"}
	}
	yield := func(req, at int) blk.TraceEvent {
		return blk.TraceEvent{Kind: blk.TraceYield, Req: req, At: us(at), Why: "suspended at 'A'"}
	}
	resume := func(req, at int) blk.TraceEvent { return blk.TraceEvent{Kind: blk.TraceResume, Req: req, At: us(at)} }
	event := func(req, at int) blk.TraceEvent {
		return blk.TraceEvent{Kind: blk.TraceDebugEvent, Req: req, At: us(at), Node: raw, Name: "pwritev"}
	}
	plain := func(req, span, at int) []blk.TraceEvent {
		return []blk.TraceEvent{submit(req, at), begin(req, span, 0, at, raw), begin(req, span+1, span, at, file),
			waited(req, at, at+100), end(req, span+1, at+100), end(req, span, at+100), complete(req, at+100)}
	}
	failed := complete(1, 100)
	failed.Err = errors.New("Input/output error")
	deep := []blk.TraceEvent{submit(1, 0)}
	for s := 1; s <= maxFold; s++ {
		deep = append(deep, begin(1, s, s-1, 0, raw))
	}
	for s := maxFold; s >= 1; s-- {
		deep = append(deep, end(1, s, 1))
	}
	deep = append(deep, complete(1, 1))

	for _, tc := range []struct {
		name          string
		evs           []blk.TraceEvent
		written, read string
	}{
		// The yield lasts as long as the request: it is the request's
		// "yield" arg.
		{"plain write", plain(1, 1, 0), "X X X", "B b b X e e E"},
		{"two writes", append(plain(1, 1, 0), plain(2, 3, 100)...), "X X X X X X", "B b b X e e E B b b X e e E"},
		// A yield that starts later is a slice of its own.
		{"later yield", []blk.TraceEvent{submit(1, 0), begin(1, 1, 0, 0, raw), waited(1, 5, 100), end(1, 1, 100), complete(1, 100)},
			"X X X", "B b X e E"},
		// A long reason, with characters to escape.
		{"long reason", []blk.TraceEvent{submit(1, 0), {Kind: blk.TraceWaited, Req: 1, End: us(100), Why: strings.Repeat(`"x"`, 30)},
			complete(1, 100)}, "X", "B X E"},
		// No yield: nothing inside the innermost span.
		{"no yield", []blk.TraceEvent{submit(1, 0), begin(1, 1, 0, 0, raw), end(1, 1, 0), complete(1, 0)}, "X X", "B b e E"},
		// A failed request keeps its end, for the error; its spans fold.
		{"failed", append(plain(1, 1, 0)[:6], failed), "B X X X E", "B b b X e e E"},
		// Two spans one after the other: each folds, the request not.
		{"siblings", []blk.TraceEvent{submit(1, 0), begin(1, 1, 0, 0, raw), end(1, 1, 10),
			begin(1, 2, 0, 10, raw), end(1, 2, 20), complete(1, 20)}, "B X X E", "B b e b e E"},
		// Another request's events inside: nothing around them folds.
		{"interleaved", []blk.TraceEvent{submit(1, 0), begin(1, 1, 0, 0, raw), submit(2, 0), begin(2, 2, 0, 0, raw),
			waited(2, 0, 50), end(2, 2, 50), complete(2, 50), end(1, 1, 60), complete(1, 60)},
			"B b X X e E", "B b B b X e E e E"},
		// A yield with an event inside it stays a "B"/"E" pair.
		{"suspended", []blk.TraceEvent{submit(1, 0), begin(1, 1, 0, 0, raw), yield(1, 0), event(1, 0), resume(1, 5),
			end(1, 1, 5), complete(1, 5)}, "B b B i E e E", "B b B i E e E"},
		// A span that lasts no time, right after one of the same
		// request that ended then: folded too, a reader would take it
		// for the first one's child. It stays a begin and an end.
		{"ambiguous", []blk.TraceEvent{submit(1, 0), begin(1, 1, 0, 0, raw), end(1, 1, 10),
			begin(1, 2, 0, 10, file), end(1, 2, 10), complete(1, 20)}, "B X b e E", "B b e b e E"},
		// ... and so does a yield that lasts no time.
		{"ambiguous yield", []blk.TraceEvent{submit(1, 0), begin(1, 1, 0, 0, raw), end(1, 1, 10),
			waited(1, 10, 10), complete(1, 20)}, "B X B E E", "B b e B E E"},
		// At most maxFold begins fold: the request's does not.
		{"deep", deep, "B " + strings.Repeat("X ", maxFold) + "E", "B " + strings.Repeat("b ", maxFold) + strings.Repeat("e ", maxFold) + "E"},
		// Left in flight at the end of the trace.
		{"unfinished", []blk.TraceEvent{submit(1, 0), begin(1, 1, 0, 0, raw)}, "B b e E", "B b e E"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file, back := writeAll(t, tc.evs)
			if got := writtenPhases(t, file); got != tc.written {
				t.Errorf("written %s, want %s\n%s", got, tc.written, file)
			}
			if got := phases(back); got != tc.read {
				t.Errorf("read %s, want %s\n%s", got, tc.read, file)
			}
			// The yields read back are the ones written: reasons and times.
			var waited []blk.TraceEvent
			for _, w := range tc.evs {
				if w.Kind == blk.TraceWaited {
					waited = append(waited, w)
				}
			}
			for _, e := range back {
				if e.Ph != "X" || e.Cat != "yield" {
					continue
				}
				if len(waited) == 0 {
					t.Errorf("yield %+v read back, none written", e)
					break
				}
				w := waited[0]
				waited = waited[1:]
				if e.Name != w.Why || e.Ts != float64(w.At)/1e3 || e.End() != float64(w.End)/1e3 {
					t.Errorf("yield %q at %v-%v, want %q at %v-%v", e.Name, e.Ts, e.End(), w.Why, w.At, w.End)
				}
			}
		})
	}
}

// TestFoldAcrossBatches checks that a chain cut by the end of a batch
// folds as any other: every write of many is three complete slices.
func TestFoldAcrossBatches(t *testing.T) {
	const n = 1000 // 7,000 events: the batches end at every point of a write
	var out bytes.Buffer
	w := NewWriter(&out, Chrome)
	f := &filler{t: w}
	evs := newWriteEvents()
	for i := range n {
		evs.trace(f, i)
	}
	f.stop()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Count(out.String(), `"ph":"X"`), 3*n; got != want {
		t.Errorf("%d complete slices, want %d", got, want)
	}
	back, err := Read(&out)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(back); err != nil {
		t.Error(err)
	}
	if got, want := phases(back), strings.TrimSpace(strings.Repeat("B b b X e e E ", n)); got != want {
		t.Errorf("read back %.80s..., want %.80s...", got, want)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestWriterError checks that the first write error is told once, from
// the Events call that met it, and that the Writer then takes nothing
// more.
func TestWriterError(t *testing.T) {
	w := NewWriter(failingWriter{}, Chrome)
	told := 0
	w.OnError = func(err error) {
		told++
		if err == nil || !strings.Contains(err.Error(), "no space") {
			t.Errorf("OnError(%v)", err)
		}
	}
	f := &filler{t: w}
	evs := newWriteEvents()
	i := 0
	for ; told == 0 && i < 10000; i++ {
		evs.trace(f, i)
	}
	if told != 1 || i*430 > 2*bufSize {
		t.Fatalf("told %d times after %d writes (a write fails every %d bytes)", told, i, bufSize)
	}
	for j := 0; j < 1000; j++ {
		evs.trace(f, i+j)
	}
	f.stop()
	if err := w.Close(); err == nil || told != 1 {
		t.Errorf("Close = %v, told %d times", err, told)
	}
}
