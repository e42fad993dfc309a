package cvt

import (
	"math"

	"gio/internal/cutils"
)

// ParseNum parses an offset or length the way qemu-io's cvtnum() does
// (qemu_strtosz() plus a check for values above INT64_MAX):
//
//   - optional C whitespace and '+'; any '-' is an error;
//   - a decimal integer (leading zeros allowed, never octal), or "0x"/"0X"
//     and hex digits ('b' and 'e' are hex digits there);
//   - for decimal, an optional fraction ".ddd" without exponent;
//   - an optional suffix b, k, m, g, t, p, e (any case, powers of 1024);
//     a non-zero fraction needs one other than b;
//   - the result must be below 2^63.
//
// qemu's quirks are kept: the fraction goes through a double and a 0.64
// fixed-point number, so one that rounds to 1.0 is lost
// ("1.99999999999999999999k" is 1024) and one below 2^-64 counts as zero
// even without a suffix ("1.00000000000000000001" is 1); after a strtod
// range error in the fraction qemu skips one character ("1.5e400k" is 1).
//
// The error is a *ParseError wrapping ErrNonNumeric or ErrTooLarge; its
// Error() is the line qemu-io prints on stdout. ParseNum drops the
// deprecation warning for hex numbers with a suffix; use ParseNumWarn to
// get it.
func ParseNum(s string) (int64, error) {
	v, _, err := ParseNumWarn(s)
	return v, err
}

// ParseNumWarn is ParseNum that also returns the deprecation warning qemu
// emits for a hex number with a size suffix ("0x10k"), or "" if there is
// none. qemu-io prints it on stderr as "qemu-io: warning: " + warning +
// "\n", before it reports the result; the warning can come together with an
// error ("0x10kb", "0xffffffffffffffffk").
func ParseNumWarn(s string) (v int64, warning string, err error) {
	s = cutils.CString(s)
	u, hexSuffix, rc, _ := cutils.Strtosz(s)
	if hexSuffix {
		warning = "Using a multiplier suffix on hex numbers is deprecated: " + s
	}
	if rc == cutils.OK && u > math.MaxInt64 {
		rc = cutils.Range // cvtnum(): the block layer wants int64_t
	}
	switch rc {
	case cutils.Invalid:
		return 0, warning, &ParseError{Arg: s, Err: ErrNonNumeric}
	case cutils.Range:
		return 0, warning, &ParseError{Arg: s, Err: ErrTooLarge}
	}
	return int64(u), warning, nil
}
