package cutils

import (
	"math"
	"strings"
	"testing"
)

func TestStrtoll(t *testing.T) {
	for _, c := range []struct {
		in     string
		v      int64
		end    int
		erange bool
	}{
		{"", 0, 0, false},
		{"  -", 0, 0, false},
		{"0x", 0, 1, false},
		{"-0x", 0, 2, false},
		{"0xz", 0, 1, false},
		{"0x1z", 1, 3, false},
		{"089", 0, 1, false},
		{"9223372036854775807", math.MaxInt64, 19, false},
		{"9223372036854775808", math.MaxInt64, 19, true},
		{"-9223372036854775808", math.MinInt64, 20, false},
		{"-9223372036854775809", math.MinInt64, 20, true},
		{"0x8000000000000000x", math.MaxInt64, 18, true},
	} {
		v, end, erange := Strtoll(c.in, 0)
		if v != c.v || end != c.end || erange != c.erange {
			t.Errorf("Strtoll(%q, 0) = %d, %d, %v; want %d, %d, %v", c.in, v, end, erange, c.v, c.end, c.erange)
		}
	}
}

func TestStrtoszOverrun(t *testing.T) {
	// When a strtod range error ends the word, qemu steps past the NUL and
	// reads whatever follows in memory (cvt's ParseNum reads a NUL there).
	for _, s := range []string{"1.5e400", "1.5e-400", "1." + strings.Repeat("0", 319) + "1"} {
		if v, _, rc, overrun := Strtosz(s); !overrun || rc != OK || v != 1 {
			t.Errorf("Strtosz(%.20q) = %d, %v, overrun %v; want 1, OK, overrun", s, v, rc, overrun)
		}
	}
	if _, _, _, overrun := Strtosz("1.5e400k"); overrun {
		t.Error("Strtosz(1.5e400k) reported an overrun")
	}
}

func TestStrtou64(t *testing.T) {
	for _, c := range []struct {
		in   string
		base int
		v    uint64
		r    Result
	}{
		{"", 0, 0, Invalid},
		{"0", 0, 0, OK},
		{"010", 0, 8, OK},
		{"010", 10, 10, OK},
		{"0x1f", 0, 31, OK},
		{"0x", 0, 0, Invalid},
		{"0xg", 16, 0, Invalid},
		{"-1", 0, math.MaxUint64, OK},
		{" 7", 0, 7, OK},
		{"7 ", 0, 0, Invalid},
		{"18446744073709551615", 0, math.MaxUint64, OK},
		{"18446744073709551616", 0, math.MaxUint64, Range},
		{"18446744073709551616x", 0, 0, Invalid},
		{"09", 0, 0, Invalid},
	} {
		v, r := Strtou64(c.in, c.base)
		if v != c.v || r != c.r {
			t.Errorf("Strtou64(%q, %d) = %d, %v; want %d, %v", c.in, c.base, v, r, c.v, c.r)
		}
	}
}

func TestStrtoi64(t *testing.T) {
	for _, c := range []struct {
		in string
		v  int64
		r  Result
	}{
		{"0", 0, OK}, {"-5", -5, OK}, {"+5", 5, OK}, {"", 0, Invalid}, {"5x", 0, Invalid}, {"010", 10, OK},
		{"9223372036854775807", math.MaxInt64, OK}, {"9223372036854775808", math.MaxInt64, Range},
		{"-9223372036854775808", math.MinInt64, OK}, {"-9223372036854775809", math.MinInt64, Range},
	} {
		if v, r := Strtoi64(c.in, 10); v != c.v || r != c.r {
			t.Errorf("Strtoi64(%q, 10) = %d, %v; want %d, %v", c.in, v, r, c.v, c.r)
		}
	}
}

func TestIDWellFormed(t *testing.T) {
	for id, want := range map[string]bool{"a": true, "A-b.c_9": true, "": false, "9a": false, "a b": false, "_a": false, "a/b": false} {
		if IDWellFormed(id) != want {
			t.Errorf("IDWellFormed(%q) = %v", id, !want)
		}
	}
}

func TestCString(t *testing.T) {
	if CString("ab\x00cd") != "ab" || CString("abc") != "abc" {
		t.Error("CString does not cut at the NUL")
	}
}
