package cutils

import (
	"math"
	"math/bits"
)

// Result is the outcome of QEMU's number parsers: 0, -EINVAL or -ERANGE.
type Result int

// The results.
const (
	OK      Result = iota
	Invalid        // -EINVAL: no number, or something after it
	Range          // -ERANGE: the number does not fit
)

// digits is the part strtoull and strtol share: leading whitespace, an
// optional sign, for base 0 or 16 an optional 0x prefix, for base 0 a
// leading 0 meaning octal, then the digits. u is the magnitude modulo
// 2^64 (overflow says it did not fit), end is 0 if nothing was converted,
// except that "0x" without a hex digit after it converts the 0 and ends at
// the 'x', as glibc does. On overflow end is after all the digits.
func digits(s string, base int) (u uint64, neg bool, end int, overflow bool) {
	i := 0
	for i < len(s) && IsSpace(s[i]) {
		i++
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	prefix := false
	switch {
	case (base == 0 || base == 16) && i+1 < len(s) && s[i] == '0' && s[i+1]|0x20 == 'x':
		base = 16
		i += 2
		prefix = true
	case base == 0 && i < len(s) && s[i] == '0':
		base = 8 // the 0 itself is parsed as an octal digit
	case base == 0:
		base = 10
	}
	start := i
	for ; i < len(s) && DigitVal(s[i]) < base; i++ {
		if overflow {
			continue
		}
		hi, lo := bits.Mul64(u, uint64(base))
		lo, c := bits.Add64(lo, uint64(DigitVal(s[i])), 0)
		if hi != 0 || c != 0 {
			overflow = true
		}
		u = lo
	}
	if i == start {
		if prefix {
			return 0, false, start - 1, false
		}
		return 0, false, 0, false
	}
	return u, neg, i, overflow
}

// Strtoull is glibc's strtoull(s, &end, base) for base 0, 10 or 16: a
// '-' negates modulo 2^64; on overflow the value is UINT64_MAX and
// overflow is set. end is as for digits.
func Strtoull(s string, base int) (v uint64, end int, overflow bool) {
	u, neg, end, overflow := digits(s, base)
	switch {
	case overflow:
		return math.MaxUint64, end, true
	case neg:
		return -u, end, false
	}
	return u, end, false
}

// Strtoll is glibc's strtol(s, &end, base) (long is 64 bits): values out
// of range are clamped to MaxInt64/MinInt64 with erange set.
func Strtoll(s string, base int) (v int64, end int, erange bool) {
	u, neg, end, overflow := digits(s, base)
	switch {
	case neg && (overflow || u > 1<<63):
		return math.MinInt64, end, true
	case !neg && (overflow || u > math.MaxInt64):
		return math.MaxInt64, end, true
	case neg:
		return int64(-u), end, false // -(1<<63) wraps to MinInt64, as wanted
	}
	return int64(u), end, false
}

// Strtou64 is qemu_strtou64(s, NULL, base): the whole string must be the
// number; "no digits" and trailing junk are Invalid, which takes
// precedence over an overflow.
func Strtou64(s string, base int) (uint64, Result) {
	v, end, overflow := Strtoull(s, base)
	switch {
	case end == 0 || end != len(s):
		return 0, Invalid
	case overflow:
		return v, Range
	}
	return v, OK
}

// Strtoi64 is qemu_strtoi64(s, NULL, base).
func Strtoi64(s string, base int) (int64, Result) {
	v, end, erange := Strtoll(s, base)
	switch {
	case end == 0 || end != len(s):
		return 0, Invalid
	case erange:
		return v, Range
	}
	return v, OK
}
