package cvt

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"testing"
	"time"

	"gio/internal/cutils"
)

var numSuffixes = []struct {
	s     string
	shift uint
}{{"k", 10}, {"M", 20}, {"g", 30}, {"T", 40}, {"p", 50}, {"E", 60}}

func FuzzParseNum(f *testing.F) {
	for _, c := range parseNumCases {
		if len(c.in) < 100 {
			f.Add(c.in)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, warn, err := ParseNumWarn(s)
		arg := cutils.CString(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Arg != arg {
				t.Fatalf("%q: error %#v", s, err)
			}
			if !errors.Is(err, ErrNonNumeric) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%q: unexpected error kind %v", s, err)
			}
			if v != 0 {
				t.Fatalf("%q: value %d with error", s, v)
			}
		} else if v < 0 {
			t.Fatalf("%q: negative value %d", s, v)
		}
		if warn != "" && !strings.ContainsAny(arg, "xX") {
			t.Fatalf("%q: hex warning without hex", s)
		}
		if err != nil {
			return
		}

		// Round trips: plain decimal, hex, and every suffix that fits.
		check := func(text string, want int64) {
			t.Helper()
			got, w, err := ParseNumWarn(text)
			if err != nil || got != want || w != "" {
				t.Fatalf("%q parsed as %d: %q gives %d, %q, %v", s, v, text, got, w, err)
			}
		}
		check(strconv.FormatInt(v, 10), v)
		check("0x"+strconv.FormatInt(v, 16), v)
		check("+"+strconv.FormatInt(v, 10)+"b", v)
		for _, u := range numSuffixes {
			q, r := v>>u.shift, v&(1<<u.shift-1)
			if r == 0 {
				check(strconv.FormatInt(q, 10)+u.s, v)
			}
			// q.FRACTION with the exact decimal expansion of r/2^shift;
			// up to 53 bits the double is exact, so the result is too.
			if q == 0 && r == 0 {
				continue
			}
			frac := exactFraction(uint64(r), u.shift)
			text := strconv.FormatInt(q, 10) + frac + u.s
			got, _, err := ParseNumWarn(text)
			if fd, _ := strconv.ParseFloat("0"+frac, 64); fd == 1 {
				// the fraction rounds to 1.0 as a double and is lost (the
				// "1.99999999999999999999k" quirk); only possible above 53 bits
				if err != nil || got != q<<u.shift {
					t.Fatalf("%q parsed as %d: %q gives %d, %v", s, v, text, got, err)
				}
				continue
			}
			if err != nil {
				if errors.Is(err, ErrTooLarge) && u.shift > 53 && v > math.MaxInt64-1<<8 {
					continue // rounded up to 2^63
				}
				t.Fatalf("%q parsed as %d: %q fails: %v", s, v, text, err)
			}
			diff := got - v
			if diff < 0 {
				diff = -diff
			}
			if u.shift <= 53 && diff != 0 || diff > 1<<(60-52) {
				t.Fatalf("%q parsed as %d: %q gives %d", s, v, text, got)
			}
		}
	})
}

// exactFraction returns "." and the exact decimal digits of r / 2^shift
// (r < 2^shift); ".0" for 0.
func exactFraction(r uint64, shift uint) string {
	if r == 0 {
		return ".0"
	}
	// r/2^shift = r*5^shift / 10^shift; do it digit by digit with 128 bits.
	var b strings.Builder
	b.WriteByte('.')
	hi, lo := uint64(0), r // 128-bit numerator, denominator 2^shift
	for hi != 0 || lo != 0 {
		// multiply by 10
		h1, l1 := bits.Mul64(lo, 10)
		hi = hi*10 + h1
		lo = l1
		// digit = numerator >> shift
		var d uint64
		if shift >= 64 {
			d = hi >> (shift - 64)
			hi &= 1<<(shift-64) - 1
		} else {
			d = hi<<(64-shift) | lo>>shift
			hi = 0
			lo &= 1<<shift - 1
		}
		b.WriteByte('0' + byte(d))
	}
	return b.String()
}

func FuzzParsePattern(f *testing.F) {
	for _, c := range patternCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			if p != 0 || !errors.Is(err, ErrBadPattern) || err.Error() != cutils.CString(s)+" is not a valid pattern byte" {
				t.Fatalf("%q: %d, %v", s, p, err)
			}
			return
		}
		// every spelling of the value must parse to it
		for _, text := range []string{
			strconv.Itoa(int(p)), fmt.Sprintf("0%o", p), fmt.Sprintf("0x%x", p),
			fmt.Sprintf("0X%X", p), "+" + strconv.Itoa(int(p)), "\t" + strconv.Itoa(int(p)),
		} {
			if q, err := ParsePattern(text); err != nil || q != p {
				t.Fatalf("%q gives %d but %q gives %d, %v", s, p, text, q, err)
			}
		}
		// and the sleep parser agrees on the same text
		if ms, err := ParseSleepMS(s); err != nil || ms != int64(p) {
			t.Fatalf("%q: ParsePattern %d, ParseSleepMS %d, %v", s, p, ms, err)
		}
	})
}

// refSize is an independent, slower spelling of cvtstr with fmt.
func refSize(v float64) string {
	units := []string{" EiB", " PiB", " TiB", " GiB", " MiB", " KiB"}
	num, suffix, limit := "", " bytes", 57
	for i, u := range units {
		if m := math.Ldexp(1, 60-10*i); v >= m {
			num, suffix, limit = fmt.Sprintf("%.3f", v/m), u, 59
			break
		}
	}
	if suffix == " bytes" {
		num = fmt.Sprintf("%f", v)
	}
	switch num {
	case "+Inf":
		num = "inf"
	case "-Inf":
		num = "-inf"
	case "NaN":
		num = "nan"
		if math.Signbit(v) {
			num = "-nan"
		}
	}
	if len(num) > limit {
		num = num[:limit]
	}
	if i := strings.Index(num, ".000"); i >= 0 {
		num = num[:i]
	}
	return num + suffix
}

func FuzzSize(f *testing.F) {
	for _, v := range []float64{0, 1, 512, 1023.5, 1024, 1048064, 2147483136, 0x1p60, 1e300, -1e300, math.Inf(1)} {
		f.Add(math.Float64bits(v))
	}
	f.Fuzz(func(t *testing.T, b uint64) {
		v := math.Float64frombits(b)
		got := Size(v)
		if want := refSize(v); got != want {
			t.Fatalf("Size(%v) = %q, want %q", v, got, want)
		}
		if len(got) > 63 {
			t.Fatalf("Size(%v) = %q is longer than qemu's buffer", v, got)
		}
		// whole numbers of a unit print without decimals
		if v >= 0 && v < 1024 && v == math.Trunc(v) {
			if want := strconv.Itoa(int(v)) + " bytes"; got != want {
				t.Fatalf("Size(%v) = %q, want %q", v, got, want)
			}
		}
		// Report must not panic for any elapsed time and size either
		_ = Report("read", int64(b>>1), int64(b>>2), time.Duration(b), 1, b&1 == 1)
	})
}
