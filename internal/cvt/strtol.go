package cvt

import (
	"time"

	"gio/internal/cutils"
)

// ParsePattern parses the argument of -P the way qemu-io's parse_pattern()
// does: C strtol(s, &end, 0), so decimal, 0x hex and octal with a leading
// 0 ("077" is 63), with optional leading whitespace and sign ("-0" is 0).
// The value must be 0..255 and nothing may follow. The error is a
// *ParseError wrapping ErrBadPattern whose text, "ARG is not a valid
// pattern byte", qemu-io prints on stdout.
//
// As in C, the empty string converts to 0 without error (qemu-io can never
// pass one, since words are never empty).
func ParsePattern(s string) (byte, error) {
	s = cutils.CString(s)
	v, end, _ := cutils.Strtoll(s, 0)
	if v < 0 || v > 255 || end != len(s) {
		return 0, &ParseError{Arg: s, Err: ErrBadPattern}
	}
	return byte(v), nil
}

// ParseSleepMS parses the argument of the sleep command the way qemu-io's
// sleep_f() does: C strtol(s, &end, 0) (so "010" is 8 and "0x10" is 16);
// negative values and trailing characters are rejected with a *ParseError
// wrapping ErrBadNumber ("ARG is not a valid number", printed on stdout).
// Like strtol, a value too large for a long is clamped to math.MaxInt64
// without error; pass the result to SleepDuration to find out how long
// qemu-io actually sleeps (not at all in that case).
func ParseSleepMS(s string) (int64, error) {
	s = cutils.CString(s)
	v, end, _ := cutils.Strtoll(s, 0)
	if v < 0 || end != len(s) {
		return 0, &ParseError{Arg: s, Err: ErrBadNumber}
	}
	return v, nil
}

// SleepDuration returns how long qemu-io's "sleep MS" really waits when
// started at now. sleep_f() arms a QEMU_CLOCK_HOST (wall clock) timer at
// now_ns + 1000000*MS, computed in int64 arithmetic that silently wraps,
// and timer_mod clamps negative deadlines to 0. So huge arguments usually
// wrap to a deadline in the past and return at once (MaxInt64 ms, as from
// "sleep 99999999999999999999", gives -1 ms), while some wrap to a
// positive delay: "sleep 288230376151712744" (2^58+1000) sleeps one second.
func SleepDuration(ms int64, now time.Time) time.Duration {
	nowNS := now.UnixNano()
	// Signed overflow wraps in Go, and gcc's code for the C expression
	// (undefined behaviour on paper) wraps the same way.
	deadline := nowNS + ms*1000000
	if deadline < 0 {
		deadline = 0
	}
	if deadline <= nowNS {
		return 0
	}
	return time.Duration(deadline - nowNS)
}
