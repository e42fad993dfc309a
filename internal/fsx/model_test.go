package fsx

import (
	"fmt"
	"sort"
	"testing"
)

// vals lists the values a read over [rs, re] may see at byte off.
func vals(m *model, off int64, rs, re int) string {
	for k, s := range m.segs {
		if s.off <= off && off < s.end {
			var v []int
			for b := range m.allowed(k, rs, re) {
				v = append(v, int(b))
			}
			sort.Ints(v)
			return fmt.Sprint(v)
		}
	}
	return "no segment"
}

func TestModelAllowed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		run    func(m *model)
		off    int64
		rs, re int
		want   string
	}{
		{"initial content", func(m *model) {}, 10, 1, 2, "[0]"},
		{"completed write", func(m *model) {
			w := m.issue(1, 0, 100, 7, false, 0)
			m.complete(w, 2)
		}, 10, 3, 4, "[7]"},
		{"outside the write", func(m *model) {
			w := m.issue(1, 0, 100, 7, false, 0)
			m.complete(w, 2)
		}, 100, 3, 4, "[0]"},
		{"write in flight: old or new", func(m *model) {
			m.issue(1, 0, 100, 7, false, 0)
		}, 10, 3, 4, "[0 7]"},
		{"read before the write was issued", func(m *model) {
			w := m.issue(5, 0, 100, 7, false, 0)
			m.complete(w, 6)
		}, 10, 1, 4, "[0]"},
		{"read overlapping the completion", func(m *model) {
			w := m.issue(2, 0, 100, 7, false, 0)
			m.complete(w, 4)
		}, 10, 3, 5, "[0 7]"},
		{"overlapping writes both completed: either order", func(m *model) {
			a := m.issue(1, 0, 100, 7, false, 0)
			b := m.issue(2, 50, 100, 8, false, 1)
			m.complete(b, 3)
			m.complete(a, 4)
		}, 60, 5, 6, "[7 8]"},
		{"write issued after another completed wins", func(m *model) {
			a := m.issue(1, 0, 100, 7, false, 0)
			m.complete(a, 2)
			b := m.issue(3, 50, 100, 8, false, 1)
			m.complete(b, 4)
		}, 60, 5, 6, "[8]"},
		{"a read in flight across both may see the first", func(m *model) {
			a := m.issue(1, 0, 100, 7, false, 0)
			m.complete(a, 2)
			b := m.issue(4, 50, 100, 8, false, 1)
			m.complete(b, 5)
		}, 60, 3, 6, "[7 8]"},
		{"discard: zeroed or not", func(m *model) {
			a := m.issue(1, 0, 100, 7, false, 0)
			m.complete(a, 2)
			d := m.issue(3, 0, 100, 0, true, 1)
			m.complete(d, 4)
		}, 10, 5, 6, "[0 7]"},
		{"a discard hides nothing for good", func(m *model) {
			a := m.issue(1, 0, 100, 7, false, 0)
			m.complete(a, 2)
			d := m.issue(3, 0, 100, 0, true, 1)
			m.complete(d, 4)
			m.prune(10)
		}, 10, 11, 12, "[0 7]"},
		{"a write after the discard decides", func(m *model) {
			d := m.issue(3, 0, 100, 0, true, 1)
			m.complete(d, 4)
			w := m.issue(5, 0, 100, 9, false, 2)
			m.complete(w, 6)
		}, 10, 7, 8, "[9]"},
		{"prune keeps what a pending read needs", func(m *model) {
			a := m.issue(1, 0, 100, 7, false, 0)
			m.complete(a, 2)
			b := m.issue(4, 0, 100, 8, false, 1)
			m.complete(b, 5)
			m.prune(3) // a read issued at 3 is still in flight
		}, 10, 3, 6, "[7 8]"},
		{"settle: the observed value alone", func(m *model) {
			a := m.issue(1, 0, 100, 7, false, 0)
			b := m.issue(2, 0, 100, 8, false, 1)
			m.complete(a, 3)
			m.complete(b, 4)
			m.settle(6, 0, []byte{8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8})
		}, 10, 7, 8, "[8]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newModel(1000)
			tc.run(m)
			if got := vals(m, tc.off, tc.rs, tc.re); got != tc.want {
				t.Errorf("allowed at %d for a read over [%d, %d] = %s, want %s", tc.off, tc.rs, tc.re, got, tc.want)
			}
		})
	}
}

func TestModelCheckAndRuns(t *testing.T) {
	m := newModel(4096)
	a := m.issue(1, 100, 200, 7, false, 0)
	m.complete(a, 2)
	b := m.issue(3, 250, 100, 8, false, 1)
	data := make([]byte, 400)
	for i := range data {
		switch {
		case i >= 100 && i < 300:
			data[i] = 7
		}
	}
	if msg := m.check(0, data, 4, 5); msg != "" {
		t.Errorf("check with b in flight: %s", msg)
	}
	m.complete(b, 6)
	if msg := m.check(0, data, 7, 8); msg == "" {
		t.Errorf("check after b completed: no failure, want one at 0xfa")
	} else if want := "byte at 0xfa is 0x07, allowed {0x08 (body line 2)}"; msg != want {
		t.Errorf("check = %q, want %q", msg, want)
	}
	got := fmt.Sprint(m.runs(0, 400, 9))
	want := "[{0 100 0 true} {100 250 7 true} {250 350 8 true} {350 400 0 true}]"
	if got != want {
		t.Errorf("runs = %s, want %s", got, want)
	}
}

func TestParseWords(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"aio_write -P 0x12 100 200", "{aio_write  18 [100 200]}"},
		{"aio_write -P0x12 100 200", "{aio_write  18 [100 200]}"},
		{"aio_write -z -u 100 200", "{aio_write zu -1 [100 200]}"},
		{"read -q -P 0x00 0 4k", "{read q 0 [0 4k]}"},
		{"break pwritev t1", "{break  -1 [pwritev t1]}"},
	} {
		if got := fmt.Sprint(parseWords(tc.line)); got != tc.want {
			t.Errorf("parseWords(%q) = %s, want %s", tc.line, got, tc.want)
		}
	}
}
