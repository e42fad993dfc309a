package qdict

import (
	"strings"

	"gio/internal/cutils"
)

// ParseNumber converts value like QEMU's QEMU_OPT_NUMBER options do
// (qemu_strtou64 with base 0: decimal, 0x hex, leading-0 octal, a leading
// '-' wraps modulo 2^64, no suffixes). name is the option name used in the
// messages:
//
//	Parameter 'sector' expects a number
//	Value '99999999999999999999' is too large for parameter 'sector'
func ParseNumber(name, value string) (uint64, error) {
	v, e := cutils.Strtou64(value, 0)
	switch e {
	case cutils.Range:
		return 0, &Error{Msg: "Value '" + value + "' is too large for parameter '" + name + "'"}
	case cutils.Invalid:
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
	v, warnHex, e, _ := cutils.Strtosz(value)
	warning := ""
	if warnHex {
		warning = "warning: Using a multiplier suffix on hex numbers is deprecated: " + value
	}
	switch e {
	case cutils.Range:
		return 0, warning, &Error{Msg: "Value '" + value + "' is out of range for parameter '" + name + "'"}
	case cutils.Invalid:
		return 0, warning, &Error{Msg: "Parameter '" + name + "' expects a non-negative number below 2^64\n" +
			"Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n" +
			"and exabytes, respectively."}
	}
	return v, warning, nil
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
