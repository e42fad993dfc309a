// Package cvt holds the number parsers and text formatters of qemu-io 7.2
// (qemu-io-cmds.c and util/cutils.c), reproduced byte for byte.
//
// Everything here is pure: parsers return values and errors whose Error()
// text is exactly the line qemu-io prints (without the newline), formatters
// return strings. The caller decides which stream a text goes to; the doc
// comment of each function says where qemu-io prints it.
//
// Where qemu-io relies on C library behaviour (strtoull, strtol, strtod,
// printf of inf/nan, strerror), the glibc 2.36 / x86-64 behaviour is
// reproduced, since that is what the reference binary runs on.
package cvt

import "errors"

// Sentinel errors. A *ParseError wraps exactly one of them, so callers can
// tell the cases apart with errors.Is while printing err.Error() verbatim.
var (
	// ErrNonNumeric: the offset/length text is not a number qemu accepts
	// (qemu_strtosz returned -EINVAL).
	ErrNonNumeric = errors.New("non-numeric argument, or extraneous/unrecognized suffix")
	// ErrTooLarge: the offset/length is >= 2^63 (-ERANGE).
	ErrTooLarge = errors.New("argument too large")
	// ErrBadPattern: a -P pattern outside 0..255 or with trailing junk.
	ErrBadPattern = errors.New("is not a valid pattern byte")
	// ErrBadNumber: a sleep argument that is negative or has trailing junk.
	ErrBadNumber = errors.New("is not a valid number")
)

// ParseError is returned by the parsers of this package. Its Error() is the
// exact text qemu-io prints for the failure (qemu-io prints all of these on
// stdout, followed by a newline), e.g.
//
//	Parsing error: argument too large -- 8E
//	300 is not a valid pattern byte
//	abc is not a valid number
type ParseError struct {
	Arg string // the word as typed (up to a NUL byte, as C would see it)
	Err error  // ErrNonNumeric, ErrTooLarge, ErrBadPattern or ErrBadNumber
}

func (e *ParseError) Error() string {
	switch e.Err {
	case ErrNonNumeric, ErrTooLarge:
		// print_cvtnum_err() in qemu-io-cmds.c
		return "Parsing error: " + e.Err.Error() + " -- " + e.Arg
	default:
		// parse_pattern() and sleep_f() put the argument first
		return e.Arg + " " + e.Err.Error()
	}
}

// Unwrap makes errors.Is(err, ErrTooLarge) etc. work.
func (e *ParseError) Unwrap() error { return e.Err }
