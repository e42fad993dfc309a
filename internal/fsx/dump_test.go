package fsx

import (
	"bytes"
	"fmt"
	"testing"
)

// TestSplitOutput: lines and records come out in order, whole, however
// the stream is cut; what is unfinished is left for the next call.
func TestSplitOutput(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("first\n")
	WriteDump(&b, 1<<40+3, []byte("a\nb\x00c"))
	WriteDump(&b, 5, nil) // no data, no record
	b.WriteString("\nlast\n")
	want := "line first|dump 1099511627779 \"a\\nb\\x00c\"|line |line last|"
	for cut := 1; cut <= b.Len(); cut++ {
		var got, carry []byte
		in := b.Bytes()
		for len(in) > 0 {
			n := min(cut, len(in))
			carry = append(carry, in[:n]...)
			in = in[n:]
			carry = append([]byte(nil), SplitOutput(carry, func(l []byte) {
				got = fmt.Appendf(got, "line %s|", l)
			}, func(off int64, data []byte) {
				got = fmt.Appendf(got, "dump %d %q|", off, data)
			})...)
		}
		if string(got) != want || len(carry) != 0 {
			t.Fatalf("pieces of %d: %s (left %q), want %s", cut, got, carry, want)
		}
	}
}
