package trace

import (
	"bytes"
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"gio/blk"
)

// plainStream returns n requests' events, most of them plain chains of a
// few shapes (reads and writes through two or three nodes), and some
// changed in one field each, so that plainChain meets every way a chain
// can fail to be plain or to match its shape.
func plainStream(seed int64, n int) []blk.TraceEvent {
	r := rand.New(rand.NewSource(seed))
	raw, file, qcow := &blk.Node{}, &blk.Node{}, &blk.Node{}
	var evs []blk.TraceEvent
	at, span := time.Duration(0), 0
	names := []string{"write", "read", "discard"}
	whys := []string{"waits for I/O", "waits for I/O", `odd "reason"`}
	for req := 1; req <= n; req++ {
		nodes := [][]*blk.Node{{raw, file}, {raw, file}, {qcow, raw, file}, {file}}[r.Intn(4)]
		op := names[r.Intn(len(names))]
		why := whys[r.Intn(len(whys))]
		off := int64(r.Intn(1<<20)) * 512
		size := int64(4096)
		if r.Intn(4) == 0 {
			size = int64(r.Intn(1<<16) + 1)
		}
		dur := 103815 * time.Nanosecond
		switch r.Intn(6) {
		case 0:
			dur = time.Duration(r.Intn(1 << 40))
		case 1, 2:
			dur = time.Duration(r.Intn(1 << 30))
		}
		cmd := op + " -q 0 4096"
		switch r.Intn(10) {
		case 0:
			cmd = "write \"\x01é\xff"
		case 1, 2, 3: // of any length, perhaps with a byte to escape
			c := []byte(strings.Repeat("write -P 0x5a ", 4)[:r.Intn(40)])
			if len(c) > 0 && r.Intn(2) == 0 {
				c[r.Intn(len(c))] = "\"\\\n\x80"[r.Intn(4)]
			}
			cmd = string(c)
		}
		first := len(evs)
		evs = append(evs, blk.TraceEvent{Kind: blk.TraceSubmit, Req: req, At: at, Name: cmd})
		parent := 0
		var spans []int
		for _, nd := range nodes {
			span++
			evs = append(evs, blk.TraceEvent{Kind: blk.TraceBegin, Req: req, At: at, Span: span,
				Parent: parent, Node: nd, Name: op, Off: off, Bytes: size})
			parent = span
			spans = append(spans, span)
		}
		evs = append(evs, blk.TraceEvent{Kind: blk.TraceWaited, Req: req, At: at, End: at + dur, Why: why})
		for j := len(spans) - 1; j >= 0; j-- {
			evs = append(evs, blk.TraceEvent{Kind: blk.TraceEnd, Req: req, At: at + dur, Span: spans[j], Node: nodes[j]})
		}
		evs = append(evs, blk.TraceEvent{Kind: blk.TraceComplete, Req: req, At: at + dur})
		if r.Intn(4) == 0 { // one field changed
			c := evs[first:]
			e := &c[r.Intn(len(c))]
			switch r.Intn(9) {
			case 0:
				e.At += time.Duration(r.Intn(3)) - 1
			case 1:
				e.Req++
			case 2:
				e.Off = -e.Off - 1
			case 3:
				e.Bytes++
			case 4:
				e.Parent++
			case 5:
				e.Err = errors.New("EIO")
			case 6:
				e.Span += 1000
			case 7:
				e.End++
			case 8:
				e.Node = qcow
			}
		}
		if r.Intn(10) == 0 { // something else between requests
			evs = append(evs, blk.TraceEvent{Kind: blk.TraceDebugEvent, Req: req, At: at + dur, Node: raw, Name: "pwritev"})
		}
		at += dur
		switch r.Intn(20) {
		case 0:
			at = time.Duration(r.Int63n(1 << 62)) // timestamps of any width
		case 1, 2, 3:
			at = time.Duration(r.Int63n(1 << 40))
		}
	}
	return evs
}

// TestPlainSame checks that the chains written from templates
// (plainChain) are the bytes foldChain writes, whatever the events, and
// in both formats.
func TestPlainSame(t *testing.T) {
	for seed := int64(1); seed <= 10; seed++ {
		evs := plainStream(seed, 1000)
		for _, f := range []Format{Chrome, JSONL} {
			plains := 0
			write := func(plain bool) []byte {
				noPlain = !plain
				defer func() { noPlain = false }()
				var out bytes.Buffer
				w := NewWriter(&out, f)
				fl := &filler{t: w}
				for _, e := range evs {
					*fl.slot() = e
				}
				fl.stop()
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				plains += w.plains
				return out.Bytes()
			}
			want, got := write(false), write(true)
			if !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				lo := max(0, i-300)
				t.Fatalf("seed %d, format %d: differs at byte %d:\ngot  %q\nwant %q", seed, f,
					i, got[lo:min(len(got), i+100)], want[lo:min(len(want), i+100)])
			}
			if plains < 100 {
				t.Errorf("seed %d: %d chains from templates", seed, plains)
			}
		}
	}
}

// TestPlainWords checks plainWords against plainPrefix.
func TestPlainWords(t *testing.T) {
	for n := 8; n <= 40; n++ {
		s := strings.Repeat("abcdefgh", 5)[:n]
		for i := -1; i < n; i++ {
			for _, c := range []byte{'"', '\\', '\n', 0x80, 0xff, 0x1f, 0x7f, ' '} {
				b := []byte(s)
				if i >= 0 {
					b[i] = c
				}
				if got, want := plainWords(string(b)), plainPrefix(string(b)) == n; got != want {
					t.Errorf("plainWords(%q) = %v", b, got)
				}
			}
		}
	}
}
