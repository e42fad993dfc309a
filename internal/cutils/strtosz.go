package cutils

import (
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// Strtosz is do_strtosz() of qemu 7.2 util/cutils.c with end == NULL,
// default suffix 'B' and unit 1024, step by step, including its reliance
// on glibc's strtoull/strtod end pointers. It returns the value, whether
// the deprecation warning for hex-with-suffix fires, the result code, and
// whether qemu would have looked past the end of the string (see at).
func Strtosz(s string) (val uint64, hexSuffix bool, rc Result, overrun bool) {
	// at reads s like a C string. When qemu's endptr++ steps over the
	// terminating NUL (possible after a strtod range error, see below) it
	// reads memory after the word, which is undefined; we read a NUL there,
	// which is what qemu-io does when the word is the last one on the line.
	at := func(i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	// finish is the "out:" label: with end == NULL anything left after the
	// parsed text turns the result into -EINVAL, even a pending -ERANGE.
	finish := func(end int, rc Result) Result {
		overrun = end > len(s)
		if at(end) != 0 {
			return Invalid
		}
		return rc
	}

	val, end, overflow := Strtoull(s, 10)
	if end == 0 {
		return 0, false, Invalid, false // no digits at all
	}
	if overflow {
		// Checked before the '-' test, so "-99999999999999999999" is "too
		// large" while "99999999999999999999k" is non-numeric.
		rc = finish(end, Range)
		return 0, false, rc, overrun
	}
	if strings.IndexByte(s[:end], '-') >= 0 {
		return 0, false, Invalid, false
	}

	var valf uint64 // fraction as 0.64 fixed point
	hex := false
	if val == 0 && (at(end) == 'x' || at(end) == 'X') {
		// Re-read as hex from the start. strtoull stops at the 'x' of
		// "00x10" or "0x" (no digits), leaving junk that fails below.
		val, end, overflow = Strtoull(s, 16)
		if overflow {
			rc = finish(end, Range)
			return 0, false, rc, overrun
		}
		if at(end) == '.' {
			return 0, false, Invalid, false
		}
		hex = true
	} else if at(end) == '.' {
		f := end
		n, frac, ok := strtodFrac(s[f:])
		switch {
		case !ok:
			// qemu does endptr++ after a failed strtod so that "1.k"
			// works. strtod's end is the '.' when nothing converted, but
			// the end of the number after a range error, so "1.5e400k"
			// skips the 'k' and is accepted as 1, and "1.5e400" steps
			// past the NUL (see at above).
			end = f + n + 1
		case strings.ContainsAny(s[f:f+n], "eE"):
			return 0, false, Invalid, false // an exponent: "1.5e3"
		default:
			valf = fixed64(frac)
			end = f + n
		}
	}

	mul := suffixMul(at(end))
	if mul != 0 {
		hexSuffix = hex
		end++
	} else {
		mul = 1
	}
	if mul == 1 {
		if valf != 0 {
			return 0, hexSuffix, Invalid, false // a fraction needs a scale
		}
	} else {
		// 64.64 fixed point times 64.0, rounding halves up, as qemu does.
		hi, lo := bits.Mul64(val, mul)
		fhi, flo := bits.Mul64(valf, mul)
		var c uint64
		lo, c = bits.Add64(lo, fhi, 0)
		hi += c
		lo, c = bits.Add64(lo, flo>>63, 0)
		hi += c
		if hi != 0 {
			rc = finish(end, Range)
			return 0, hexSuffix, rc, overrun
		}
		val = lo
	}
	rc = finish(end, OK)
	return val, hexSuffix, rc, overrun
}

// suffixMul is qemu's suffix_mul() for unit 1024; 0 means "not a suffix".
func suffixMul(c byte) uint64 {
	switch c | 0x20 { // ASCII lower case; harmless for non-letters
	case 'b':
		return 1
	case 'k':
		return 1 << 10
	case 'm':
		return 1 << 20
	case 'g':
		return 1 << 30
	case 't':
		return 1 << 40
	case 'p':
		return 1 << 50
	case 'e':
		return 1 << 60
	}
	return 0
}

// fixed64 is qemu's (uint64_t)(fraction * 0x1p64). A fraction that rounded
// up to 1.0 gives 2^64, which C cannot represent; gcc's x86-64 code for the
// conversion then yields 0, which is why "1.99999999999999999999k" is 1024
// and "0.99999999999999999999k" is 0.
func fixed64(frac float64) uint64 {
	x := frac * 0x1p64
	if x >= 0x1p64 {
		return 0
	}
	return uint64(x)
}

// strtodFrac is glibc's strtod applied to s, which starts with '.', as far
// as qemu can observe it: n is the length strtod consumes (0 if it converts
// nothing) and ok is false if strtod fails, i.e. converts nothing or sets
// ERANGE (overflow, or underflow: a non-zero result that is tiny and
// inexact).
func strtodFrac(s string) (n int, v float64, ok bool) {
	// Grammar for a string starting with '.': "." digits+ ([eE] [+-]? digits+)?
	i := 1
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	mantEnd := i
	if mantEnd == 1 {
		return 0, 0, false // ".k", "." : no conversion
	}
	exp := int64(0)
	if i < len(s) && s[i]|0x20 == 'e' {
		j := i + 1
		neg := false
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			neg = s[j] == '-'
			j++
		}
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			if exp < 1<<40 { // saturate; far beyond any double
				exp = exp*10 + int64(s[k]-'0')
			}
			k++
		}
		if k > j { // "e" without digits is not part of the number
			i = k
			if neg {
				exp = -exp
			}
		}
	}
	n = i
	v, err := strconv.ParseFloat(s[:n], 64)
	if err != nil {
		return n, 0, false // overflow to infinity: ERANGE
	}
	digits := s[1:mantEnd]
	if strings.Trim(digits, "0") == "" {
		return n, 0, true // exact zero, whatever the exponent
	}
	if v == 0 || (v <= minNormal && strtodUnderflow(digits, exp, v)) {
		return n, 0, false
	}
	return n, v, true
}

// minNormal is DBL_MIN, the smallest normal double.
const minNormal = 0x1p-1022

// strtodUnderflow decides whether glibc's strtod sets ERANGE for the exact
// value 0.DIGITS * 10^exp, which rounded to v (0 < v <= DBL_MIN). glibc
// does so when the result is tiny and inexact, with tininess detected
// after rounding (x86): a value just below DBL_MIN that rounds to DBL_MIN
// even at 53 bits of precision is not tiny.
func strtodUnderflow(digits string, exp int64, v float64) bool {
	// Only reached for v <= DBL_MIN, so -scale is bounded by about
	// len(digits)+330 and the big numbers stay small.
	scale := exp - int64(len(digits))
	m, _ := new(big.Int).SetString(digits, 10)
	exact := new(big.Rat).SetInt(m)
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(abs64(scale)), nil)
	if scale < 0 {
		exact.Quo(exact, new(big.Rat).SetInt(p))
	} else {
		exact.Mul(exact, new(big.Rat).SetInt(p))
	}
	if v == minNormal {
		// Tiny iff below DBL_MIN - 2^-1076 (the rounding boundary at 53
		// bits; the tie itself rounds up to the even DBL_MIN).
		lim := new(big.Rat).SetFrac(
			new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 54), big.NewInt(1)),
			new(big.Int).Lsh(big.NewInt(1), 1076))
		return exact.Cmp(lim) < 0
	}
	return exact.Cmp(new(big.Rat).SetFloat64(v)) != 0
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
