package cutils

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzStrtoull checks Strtoull and Strtoll against strconv on the words
// both understand (an optional sign, then digits of the base), and that
// neither ever reads past the word or reports an end inside a prefix it
// did not convert.
func FuzzStrtoull(f *testing.F) {
	for _, s := range []string{"0", "1", "-1", "+7", "0x1f", "0X", "010", "  12", "18446744073709551616", "-9223372036854775809", "0x", "09", "1k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, base := range []int{0, 10, 16} {
			v, end, overflow := Strtoull(s, base)
			if end < 0 || end > len(s) {
				t.Fatalf("Strtoull(%q, %d) end %d outside the word", s, base, end)
			}
			if end == 0 && (v != 0 || overflow) {
				t.Fatalf("Strtoull(%q, %d) = %d, overflow %v without converting", s, base, v, overflow)
			}
			sv, send, serange := Strtoll(s, base)
			if send != end || (overflow && !serange) {
				t.Fatalf("Strtoll(%q, %d) = %d, %d, %v; Strtoull ended at %d, overflow %v", s, base, sv, send, serange, end, overflow)
			}
			if base != 10 {
				continue
			}
			// Plain decimal: strconv agrees.
			digits := strings.TrimLeft(s, "+")
			if digits == "" || strings.Trim(digits, "0123456789") != "" || len(s)-len(digits) > 1 {
				continue
			}
			want, err := strconv.ParseUint(digits, 10, 64)
			if (err != nil) != overflow || (err == nil && (v != want || end != len(s))) {
				t.Fatalf("Strtoull(%q, 10) = %d, %d, %v; strconv says %d, %v", s, v, end, overflow, want, err)
			}
		}
		// Strtosz never panics, and accepts a plain decimal as itself.
		v, _, rc, _ := Strtosz(s)
		if n, err := strconv.ParseUint(s, 10, 63); err == nil && (rc != OK || v != n) {
			t.Fatalf("Strtosz(%q) = %d, %v; want %d", s, v, rc, n)
		}
	})
}
