package qdict

import (
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// errno-like results of the C number parsers we emulate.
type numErr int

const (
	numOK numErr = iota
	numInvalid
	numRange
)

// strtoull emulates glibc strtoull(s, &end, base) for base 0, 10 or 16:
// leading white space, an optional sign (a '-' negates modulo 2^64), "0x"
// prefixes for bases 0 and 16, octal for base 0 with a leading '0'. It
// returns the value, the index where parsing stopped, and numRange on
// overflow (the value is then MaxUint64 whatever the sign). With no digits
// at all end is 0, except that "0x" followed by a non-hex digit parses as
// 0 ending at the 'x', as glibc does.
func strtoull(s string, base int) (uint64, int, numErr) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	if i < len(s) && s[i] == '0' {
		if (base == 0 || base == 16) && i+1 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X') {
			if i+2 < len(s) && digitVal(s[i+2]) < 16 {
				i += 2
				base = 16
			} else {
				// "0x" without hex digits: the number is the "0".
				return 0, i + 1, numOK
			}
		} else if base == 0 {
			base = 8
		}
	}
	if base == 0 {
		base = 10
	}
	start := i
	var v uint64
	overflow := false
	for i < len(s) {
		dv := digitVal(s[i])
		if dv >= base {
			break
		}
		hi, lo := bits.Mul64(v, uint64(base))
		lo, carry := bits.Add64(lo, uint64(dv), 0)
		if hi != 0 || carry != 0 {
			overflow = true
		}
		v = lo
		i++
	}
	if i == start {
		return 0, 0, numOK
	}
	if overflow {
		return math.MaxUint64, i, numRange
	}
	if neg {
		v = -v
	}
	return v, i, numOK
}

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func digitVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}

// qemuStrtou64 is qemu_strtou64(s, NULL, base): the whole string must be
// consumed; "no digits" and trailing junk are numInvalid (which takes
// precedence over an overflow).
func qemuStrtou64(s string, base int) (uint64, numErr) {
	v, end, e := strtoull(s, base)
	if e == numOK && end == 0 {
		return 0, numInvalid
	}
	if end != len(s) {
		return 0, numInvalid
	}
	return v, e
}

// ParseNumber converts value like QEMU's QEMU_OPT_NUMBER options do
// (qemu_strtou64 with base 0: decimal, 0x hex, leading-0 octal, a leading
// '-' wraps modulo 2^64, no suffixes). name is the option name used in the
// messages:
//
//	Parameter 'sector' expects a number
//	Value '99999999999999999999' is too large for parameter 'sector'
func ParseNumber(name, value string) (uint64, error) {
	v, e := qemuStrtou64(value, 0)
	switch e {
	case numRange:
		return 0, &Error{Msg: "Value '" + value + "' is too large for parameter '" + name + "'"}
	case numInvalid:
		return 0, &Error{Msg: "Parameter '" + name + "' expects a number"}
	}
	return v, nil
}

// ParseBool converts value like QEMU's boolean options (qapi_bool_parse):
// on/yes/true/y and off/no/false/n, case-sensitive. Otherwise:
//
//	Parameter 'once' expects 'on' or 'off'
func ParseBool(name, value string) (bool, error) {
	switch value {
	case "on", "yes", "true", "y":
		return true, nil
	case "off", "no", "false", "n":
		return false, nil
	}
	return false, &Error{Msg: "Parameter '" + name + "' expects 'on' or 'off'"}
}

// ParseSize converts value like QEMU 7.2's size options (qemu_strtosz):
// a decimal number with an optional fraction and an optional suffix
// b/k/M/G/T/P/E (case-insensitive, powers of 1024; a fraction needs a
// suffix other than b), or 0x hex. A hex number with a suffix is accepted
// but QEMU warns; the warning text (without the "qemu-io: " prefix) is
// returned even when parsing then fails, because QEMU prints it at once:
//
//	warning: Using a multiplier suffix on hex numbers is deprecated: 0x1k
//
// Errors:
//
//	Value '16E' is out of range for parameter 'align'
//	Parameter 'align' expects a non-negative number below 2^64
//	Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-
//	and exabytes, respectively.
func ParseSize(name, value string) (uint64, string, error) {
	v, warnHex, e := strtosz(value)
	warning := ""
	if warnHex {
		warning = "warning: Using a multiplier suffix on hex numbers is deprecated: " + value
	}
	switch e {
	case numRange:
		return 0, warning, &Error{Msg: "Value '" + value + "' is out of range for parameter '" + name + "'"}
	case numInvalid:
		return 0, warning, &Error{Msg: "Parameter '" + name + "' expects a non-negative number below 2^64\n" +
			"Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n" +
			"and exabytes, respectively."}
	}
	return v, warning, nil
}

// suffixMul is QEMU's suffix_mul with unit 1024 (0 = not a suffix).
func suffixMul(c byte) uint64 {
	switch c {
	case 'b', 'B':
		return 1
	case 'k', 'K':
		return 1 << 10
	case 'm', 'M':
		return 1 << 20
	case 'g', 'G':
		return 1 << 30
	case 't', 'T':
		return 1 << 40
	case 'p', 'P':
		return 1 << 50
	case 'e', 'E':
		return 1 << 60
	}
	return 0
}

// strtosz follows QEMU 7.2's do_strtosz(nptr, NULL, 'B', 1024) step by
// step, including its oddities: "1." and "1.k" are fine (a '.' that strtod
// cannot parse is skipped), "1.e" means one exbibyte, a fraction that
// rounds to 1.0 becomes 0 (the double-to-uint64 overflow on x86-64 yields
// 0 after gcc's unsigned-conversion sequence), and trailing junk turns an
// overflow into a plain "invalid".
func strtosz(s string) (val uint64, warnHex bool, err numErr) {
	at := func(i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	v, end, e := strtoull(s, 10)
	if e == numOK && end == 0 {
		e = numInvalid
	}
	var valf uint64
	hex := false
	switch {
	case e != numOK:
		// goto out with end where strtoull stopped
	case strings.IndexByte(s[:end], '-') >= 0:
		end, e = 0, numInvalid
	case v == 0 && (at(end) == 'x' || at(end) == 'X'):
		v, end, e = strtoull(s, 16)
		if e == numOK && end == 0 {
			e = numInvalid
		}
		if e == numOK && at(end) == '.' {
			end, e = 0, numInvalid
		}
		hex = true
	case at(end) == '.':
		f := end
		frac, fend, ok := parseFraction(s[f:])
		switch {
		case !ok:
			end = f + fend + 1
		case strings.ContainsAny(s[f:f+fend], "eE"):
			end, e = 0, numInvalid
		default:
			end = f + fend
			x := frac * 0x1p64
			if x < 0x1p64 {
				valf = uint64(x)
			} // else: gcc's conversion of 2^64 gives 0
		}
	}
	if e == numOK {
		mul := suffixMul(at(end))
		if mul != 0 {
			if hex {
				warnHex = true
			}
			end++
		} else {
			mul = 1
		}
		if mul == 1 {
			if valf != 0 {
				end, e = 0, numInvalid
			}
		} else {
			// 64.64 fixed point times mul, rounding half up.
			hi, lo := bits.Mul64(v, mul)
			fhi, flo := bits.Mul64(valf, mul)
			var c uint64
			lo, c = bits.Add64(lo, fhi, 0)
			hi += c
			lo, c = bits.Add64(lo, flo>>63, 0)
			hi += c
			if hi != 0 {
				e = numRange
			}
			v = lo
		}
	}
	if end > len(s) {
		end = len(s) // C would read past the NUL here; treat as the end
	}
	if end != len(s) {
		e = numInvalid
	}
	if e != numOK {
		return 0, warnHex, e
	}
	return v, warnHex, numOK
}

// parseFraction emulates qemu_strtod_finite on a string starting with '.':
// it returns the value, the length strtod consumed, and whether it
// succeeded (at least one digit after the '.', a finite result without
// underflow, which glibc reports as ERANGE). On failure the length is 0,
// matching strtod's "no conversion", or the consumed length on underflow.
func parseFraction(s string) (float64, int, bool) {
	i := 1
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 1 {
		return 0, 0, false
	}
	n := i
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k > j {
			n = k
		}
	}
	f, err := strconv.ParseFloat("0"+s[:n], 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, n, false
	}
	if f < 0x1p-1022 && strings.Trim(s[1:i], "0") != "" {
		return 0, n, false // underflow: glibc sets ERANGE
	}
	return f, n, true
}

// optName is the name QEMU uses in messages about key: the part after the
// last '.', because by the time QEMU reads an option the child and list
// prefixes have been stripped off.
func optName(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[i+1:]
	}
	return key
}

// take removes key if it holds a scalar and returns its text. Non-scalar
// values are left in place, like qemu_opts_absorb_qdict leaves them, so
// they are later reported as unsupported options.
func (d *Dict) take(key string) (string, bool) {
	v, ok := d.Get(key)
	if ok {
		d.Del(key)
	}
	return v, ok
}

// TakeString returns and removes a scalar value.
func (d *Dict) TakeString(key string) (string, bool) { return d.take(key) }

// TakeBool returns and removes a boolean option (see ParseBool), or def
// when it is absent.
func (d *Dict) TakeBool(key string, def bool) (bool, error) {
	v, ok := d.take(key)
	if !ok {
		return def, nil
	}
	return ParseBool(optName(key), v)
}

// TakeSize returns and removes a size option (see ParseSize), or def when
// it is absent. warning is non-empty when QEMU would print a deprecation
// warning (print it even if err is set).
func (d *Dict) TakeSize(key string, def uint64) (v uint64, warning string, err error) {
	s, ok := d.take(key)
	if !ok {
		return def, "", nil
	}
	return ParseSize(optName(key), s)
}

// TakeUint returns and removes a number option (see ParseNumber), or def
// when it is absent.
func (d *Dict) TakeUint(key string, def uint64) (uint64, error) {
	s, ok := d.take(key)
	if !ok {
		return def, nil
	}
	return ParseNumber(optName(key), s)
}

// TakeInt is TakeUint for options QEMU stores in a signed C variable: the
// unsigned result is reinterpreted, so "-1" (which qemu_strtou64 wraps to
// 2^64-1) gives -1, as it does in QEMU.
func (d *Dict) TakeInt(key string, def int64) (int64, error) {
	s, ok := d.take(key)
	if !ok {
		return def, nil
	}
	v, err := ParseNumber(optName(key), s)
	return int64(v), err
}
