// Package cutils is the one home of the C-library and util/cutils.c
// rules QEMU 7.2 parses numbers and names with: glibc's strtoull, strtol
// and strtod as far as QEMU can observe them, isspace in the C locale, C
// strings cut at NUL, and QEMU's qemu_strtosz, qemu_strtou64,
// qemu_strtoi64 and id_wellformed built on them. qemu-io's offsets
// (internal/cvt), option values (blk/qdict) and blkdebug's config files
// all go through these functions, so a quirk is reproduced once.
//
// The glibc 2.36 / x86-64 behaviour is what is reproduced, since that is
// what the reference qemu-io binary runs on. The package imports nothing
// of gio.
package cutils

// CString cuts s at its first NUL byte: QEMU receives words and option
// values as C strings, so nothing after a NUL can ever be seen (or
// printed) by it.
func CString(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i]
		}
	}
	return s
}

// IsSpace is isspace() in the C locale; strtol, strtoull and strtod skip
// these before the number.
func IsSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// DigitVal returns the value of c as a digit in bases up to 36, or 99.
func DigitVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c|0x20 >= 'a' && c|0x20 <= 'z':
		return int(c|0x20-'a') + 10
	}
	return 99
}

// IDWellFormed is QEMU's id_wellformed: a letter, then letters, digits,
// '-', '.' or '_'.
func IDWellFormed(id string) bool {
	isAlpha := func(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }
	if id == "" || !isAlpha(id[0]) {
		return false
	}
	for i := 1; i < len(id); i++ {
		c := id[i]
		if !isAlpha(c) && !(c >= '0' && c <= '9') && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return true
}

// OptValue reads a QemuOpts value up to its first single comma, as
// util/qemu-option.c's get_opt_value does (",," is a literal comma), and
// returns it with what follows that comma. --object, -T and the other
// QemuOpts-style arguments all read their values this way.
func OptValue(p string) (value, rest string) {
	var b []byte
	for i := 0; i < len(p); i++ {
		if p[i] == ',' {
			if i+1 < len(p) && p[i+1] == ',' {
				b = append(b, ',')
				i++
				continue
			}
			return string(b), p[i+1:]
		}
		b = append(b, p[i])
	}
	return string(b), ""
}
