package cvt

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const (
	nonNum = "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- "
	tooBig = "Parsing error: argument too large -- "
)

// parseNumCases were checked against qemu-io 7.2 (read OFF 0 on a
// 2^63-2^31 byte null-co image, or alloc for words starting with '-').
// err is the expected ParseError sentinel, warn whether the hex-suffix
// deprecation warning is printed.
var parseNumCases = []struct {
	in   string
	want int64
	err  error
	warn bool
}{
	// decimal, leading zeros are not octal
	{"0", 0, nil, false},
	{"1", 1, nil, false},
	{"010", 10, nil, false},
	{"08", 8, nil, false},
	{"+5", 5, nil, false},
	{"\t5", 5, nil, false},
	{"\n5", 5, nil, false},
	{"\v5", 5, nil, false},
	{"\f5", 5, nil, false},
	{"\r5", 5, nil, false},
	{"\t\t+7", 7, nil, false},
	{"00000000000000000000000000000001k", 1024, nil, false},
	{"9223372036854775807", math.MaxInt64, nil, false},
	{"5\t", 0, ErrNonNumeric, false},
	{"", 0, ErrNonNumeric, false},
	{"+", 0, ErrNonNumeric, false},
	{"++5", 0, ErrNonNumeric, false},
	{"+k", 0, ErrNonNumeric, false},
	{"k", 0, ErrNonNumeric, false},
	{"b", 0, ErrNonNumeric, false},
	{"1_000", 0, ErrNonNumeric, false},
	{"1-", 0, ErrNonNumeric, false},
	// any '-' is rejected...
	{"-0", 0, ErrNonNumeric, false},
	{"-512", 0, ErrNonNumeric, false},
	{"-0x10", 0, ErrNonNumeric, false},
	{"\t-5", 0, ErrNonNumeric, false},
	{"+-5", 0, ErrNonNumeric, false},
	// ...unless strtoull overflows first
	{"-99999999999999999999", 0, ErrTooLarge, false},
	// hex
	{"0x200", 512, nil, false},
	{"0X1F", 31, nil, false},
	{"0x10b", 267, nil, false},
	{"0x1e", 30, nil, false},
	{"0xe", 14, nil, false},
	{"0xb", 11, nil, false},
	{"+0x10", 16, nil, false},
	{"0x7fffffffffffffff", math.MaxInt64, nil, false},
	{"0x", 0, ErrNonNumeric, false},
	{"0xx", 0, ErrNonNumeric, false},
	{"00x10", 0, ErrNonNumeric, false},
	{"0000000000000000000000000000000x1", 0, ErrNonNumeric, false},
	{"0xg", 0, ErrNonNumeric, false},
	{"0x-5", 0, ErrNonNumeric, false},
	{"0x1.0", 0, ErrNonNumeric, false},
	{"0x8000000000000000", 0, ErrTooLarge, false},
	{"0x10000000000000000", 0, ErrTooLarge, false},
	{"0x10000000000000000k", 0, ErrNonNumeric, false}, // ERANGE + junk = EINVAL, no warning
	// hex with a suffix: accepted, with a warning
	{"0x1k", 1024, nil, true},
	{"0x10K", 16384, nil, true},
	{"0x1t", 1 << 40, nil, true},
	{"0x0k", 0, nil, true},
	{"0xfffffffffffffk", 0xfffffffffffff << 10, nil, true},
	{"0x10kb", 0, ErrNonNumeric, true},
	{"0xffffffffffffffffk", 0, ErrTooLarge, true},
	// suffixes
	{"0b", 0, nil, false},
	{"0e", 0, nil, false},
	{"0k", 0, nil, false},
	{"1b", 1, nil, false},
	{"1k", 1024, nil, false},
	{"1K", 1024, nil, false},
	{"1m", 1 << 20, nil, false},
	{"1G", 1 << 30, nil, false},
	{"1t", 1 << 40, nil, false},
	{"1P", 1 << 50, nil, false},
	{"7E", 7 << 60, nil, false},
	{"1kb", 0, ErrNonNumeric, false},
	{"1KiB", 0, ErrNonNumeric, false},
	{"1k1", 0, ErrNonNumeric, false},
	{"1e3", 0, ErrNonNumeric, false},
	// fractions
	{"1.", 1, nil, false},
	{"1.k", 1024, nil, false},
	{"1.b", 1, nil, false},
	{"1.e", 1 << 60, nil, false},
	{"1.0", 1, nil, false},
	{"1.000", 1, nil, false},
	{"12.0", 12, nil, false},
	{"0.0", 0, nil, false},
	{"0.1k", 102, nil, false},
	{"1.1k", 1126, nil, false},
	{"0.5k", 512, nil, false},
	{"0.25M", 262144, nil, false},
	{"0.1M", 104858, nil, false},
	{"1.7G", 1825361101, nil, false},
	{"0.9999999999k", 1024, nil, false},
	{"0.00000001k", 0, nil, false},
	{"0.5E", 1 << 59, nil, false},
	{"1.5e", 3 << 59, nil, false},
	{"7.99999E", 9223360507639729792, nil, false},
	{".5k", 0, ErrNonNumeric, false},
	{".k", 0, ErrNonNumeric, false},
	{".", 0, ErrNonNumeric, false},
	{"1.5", 0, ErrNonNumeric, false},
	{"0.5", 0, ErrNonNumeric, false},
	{"0.5b", 0, ErrNonNumeric, false},
	{"2.5b", 0, ErrNonNumeric, false},
	{"1.5B", 0, ErrNonNumeric, false},
	{"1.0000000001", 0, ErrNonNumeric, false},
	{"0.5000000000000000001", 0, ErrNonNumeric, false},
	{"1.5e3", 0, ErrNonNumeric, false},
	{"1.5e-3k", 0, ErrNonNumeric, false},
	{"1.0e5k", 0, ErrNonNumeric, false},
	{"1.0e0k", 0, ErrNonNumeric, false},
	{"1.0e-4000000000000000000000k", 0, ErrNonNumeric, false},
	{"1.5e+", 0, ErrNonNumeric, false}, // strtod stops before "e+", then 'e' is the suffix
	// fraction quirks: a fraction that rounds to 1.0 in double is lost,
	// one below 2^-64 becomes 0 and needs no suffix
	{"1.99999999999999999999k", 1024, nil, false},
	{"0.99999999999999999999k", 0, nil, false},
	{"0.9999999999999999999999999999k", 0, nil, false},
	{"7.99999999999999999999E", 7 << 60, nil, false},
	{"0.99999999999999999999E", 0, nil, false},
	{"7.9999999999999999E", 1<<63 - 128, nil, false}, // qemu-io: EIO beyond the image, i.e. accepted
	{"1.99999999999999999999", 1, nil, false},
	{"0.99999999999999999999b", 0, nil, false},
	{"1.00000000000000000001", 1, nil, false},
	{"0.00000000000000000001", 0, nil, false},
	// strtod range errors make qemu skip one character after the number
	{"1.5e400k", 1, nil, false},
	{"1.5e-400k", 1, nil, false},
	{"2.5e400kk", 2048, nil, false},
	{"1.1e-4000000000000000000000k", 1, nil, false},
	{"1.1e+4000000000000000000000k", 1, nil, false},
	{"1." + zeros(307) + "1k", 1, nil, false},                    // 1e-308 is subnormal: ERANGE
	{"1." + zeros(306) + "1k", 1024, nil, false},                 // 1e-307 is normal
	{"1." + zeros(400) + "1k", 1, nil, false},                    // underflow to 0
	{"1." + zeros(400) + "k", 1024, nil, false},                  // exact 0 is fine
	{"1." + zeros(400) + "1xk", 1024, nil, false},                // skips the x
	{"1." + zeros(400) + "1kk", 1024, nil, false},                // skips one k
	{"1." + zeros(307) + "22250738585072014k", 1024, nil, false}, // DBL_MIN
	{"1." + zeros(307) + "22250738585072013k", 1024, nil, false}, // rounds to DBL_MIN at 53 bits
	{"1." + zeros(307) + "22250738585072012k", 1, nil, false},    // tiny after rounding
	{"1." + zeros(307) + "22250738585072011k", 1, nil, false},
	{"3." + zeros(1073) + "4940656458412465441765687928682213723651k", 3, nil, false},
	// range
	{"8E", 0, ErrTooLarge, false},
	{"8.0E", 0, ErrTooLarge, false},
	{"16E", 0, ErrTooLarge, false},
	{"16Ex", 0, ErrNonNumeric, false},
	{"9223372036854775808", 0, ErrTooLarge, false},
	{"18446744073709551615", 0, ErrTooLarge, false},
	{"18446744073709551616", 0, ErrTooLarge, false},
	{"99999999999999999999", 0, ErrTooLarge, false},
	{"99999999999999999999k", 0, ErrNonNumeric, false},
	{"99999999999999999999.5k", 0, ErrNonNumeric, false},
}

func zeros(n int) string { return strings.Repeat("0", n) }

func TestParseNum(t *testing.T) {
	for _, c := range parseNumCases {
		v, warn, err := ParseNumWarn(c.in)
		if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
			t.Errorf("ParseNumWarn(%q) error %v, want %v", c.in, err, c.err)
			continue
		}
		if v != c.want {
			t.Errorf("ParseNumWarn(%q) = %d, want %d", c.in, v, c.want)
		}
		wantWarn := ""
		if c.warn {
			wantWarn = "Using a multiplier suffix on hex numbers is deprecated: " + c.in
		}
		if warn != wantWarn {
			t.Errorf("ParseNumWarn(%q) warning %q, want %q", c.in, warn, wantWarn)
		}
		v2, err2 := ParseNum(c.in)
		if v2 != v || (err2 == nil) != (err == nil) {
			t.Errorf("ParseNum(%q) = %d, %v; ParseNumWarn gave %d, %v", c.in, v2, err2, v, err)
		}
		if err != nil {
			prefix := nonNum
			if c.err == ErrTooLarge {
				prefix = tooBig
			}
			if err.Error() != prefix+c.in {
				t.Errorf("ParseNum(%q) error text %q", c.in, err.Error())
			}
		}
	}
}

func TestParseNumNUL(t *testing.T) {
	// qemu-io gets C strings: nothing after a NUL exists, not even in the
	// message.
	v, err := ParseNum("12k\x00junk")
	if err != nil || v != 12<<10 {
		t.Errorf("ParseNum with NUL = %d, %v", v, err)
	}
	_, err = ParseNum("x\x00junk")
	if err == nil || err.Error() != nonNum+"x" {
		t.Errorf("ParseNum(x NUL junk) error %v", err)
	}
}

func TestParseNumOverrun(t *testing.T) {
	// When a strtod range error ends the word, qemu steps past the NUL and
	// reads whatever follows in memory; we read a NUL (it then accepts the
	// integer part, as qemu-io does for the last word of a -c string).
	for _, s := range []string{"1.5e400", "1.5e-400", "1." + zeros(319) + "1"} {
		v, err := ParseNum(s)
		if err != nil || v != 1 {
			t.Errorf("ParseNum(%.20q) = %d, %v, want 1", s, v, err)
		}
	}
}

var patternCases = []struct {
	in   string
	want byte
	ok   bool
}{
	{"0", 0, true},
	{"255", 255, true},
	{"-0", 0, true},
	{"077", 63, true},
	{"0252", 170, true},
	{"0377", 255, true},
	{"0xff", 255, true},
	{"0XAB", 0xab, true},
	{"+5", 5, true},
	{"\t7", 7, true},
	{"\n7", 7, true},
	{"00", 0, true},
	{"0x0", 0, true},
	{"-0x0", 0, true},
	{"+0x10", 16, true},
	{"00000000000000000000000000000000000012", 10, true},
	{"", 0, true}, // C: no conversion and *end == '\0'
	{"256", 0, false},
	{"-1", 0, false},
	{"0400", 0, false},
	{"0x1g", 0, false},
	{"1k", 0, false},
	{"x", 0, false},
	{"08", 0, false},
	{"0b1", 0, false}, // glibc 2.36 has no 0b prefix
	{"0x", 0, false},
	{"\t", 0, false},
	{"7 ", 0, false},
	{"99999999999999999999", 0, false},
	{"-99999999999999999999", 0, false},
}

func TestParsePattern(t *testing.T) {
	for _, c := range patternCases {
		got, err := ParsePattern(c.in)
		if c.ok {
			if err != nil || got != c.want {
				t.Errorf("ParsePattern(%q) = %d, %v, want %d", c.in, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, ErrBadPattern) || err.Error() != c.in+" is not a valid pattern byte" {
			t.Errorf("ParsePattern(%q) error %v", c.in, err)
		}
	}
}

var sleepCases = []struct {
	in   string
	want int64
	ok   bool
}{
	{"0", 0, true},
	{"100", 100, true},
	{"0x10", 16, true},
	{"010", 8, true},
	{"-0", 0, true},
	{"\t5", 5, true},
	{"", 0, true},
	{"99999999999999999999", math.MaxInt64, true}, // strtol clamps, no error
	{"9223372036854775807", math.MaxInt64, true},
	{"9223372036854775808", math.MaxInt64, true},
	{"-5", 0, false},
	{"1k", 0, false},
	{"1.5", 0, false},
	{"abc", 0, false},
	{"08", 0, false},
	{"0x", 0, false},
	{"0b1", 0, false},
	{"-99999999999999999999", 0, false},
	{"-9223372036854775808", 0, false},
}

func TestParseSleepMS(t *testing.T) {
	for _, c := range sleepCases {
		got, err := ParseSleepMS(c.in)
		if c.ok {
			if err != nil || got != c.want {
				t.Errorf("ParseSleepMS(%q) = %d, %v, want %d", c.in, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, ErrBadNumber) || err.Error() != c.in+" is not a valid number" {
			t.Errorf("ParseSleepMS(%q) error %v", c.in, err)
		}
	}
}

func TestSleepDuration(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, c := range []struct {
		ms   int64
		want time.Duration
	}{
		{0, 0},
		{1, time.Millisecond},
		{1500, 1500 * time.Millisecond},
		{math.MaxInt64, 0},                // wraps to -1 ms
		{9223372036854, 0},                // fits in int64 ns, but now+d overflows
		{288230376151712744, time.Second}, // 2^58+1000: the product wraps to 1e9 ns
		{288230376151712504, 760 * time.Millisecond},
	} {
		if got := SleepDuration(c.ms, now); got != c.want {
			t.Errorf("SleepDuration(%d) = %v, want %v", c.ms, got, c.want)
		}
	}
}
