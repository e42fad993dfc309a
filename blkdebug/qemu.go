package blkdebug

import "gio/blk/qdict"

// This file holds the small pieces of QEMU's option machinery that
// blkdebug's rules go through (util/qemu-option.c, qobject/qdict.c,
// util/cutils.c), reproduced closely enough that every error message and
// every parsed value matches qemu-io 7.2. They are shared by the config
// file parser and the option parser, which is what makes both produce the
// same Rule values.

// hintError is an error followed by QEMU hint lines (error_append_hint).
// qemu-io prints the hint right after the message, so the hint is part of
// the text: "can't open: MSG\nHINT".
type hintError struct{ msg, hint string }

func (e *hintError) Error() string { return e.msg + "\n" + e.hint }

// cString cuts s at its first NUL byte: QEMU sees every option value as a
// C string.
func cString(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i]
		}
	}
	return s
}

// isCSpace is isspace() in the C locale.
func isCSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// parseNumber is parse_option_number (qemu_strtou64 with base 0:
// decimal, 0x hex or 0 octal, nothing after the number; a '-' wraps
// around, and the rule fields then truncate back to int, which is how
// errno = "-5" works). QEMU sees the value as a C string.
func parseNumber(name, value string) (uint64, error) {
	return qdict.ParseNumber(name, cString(value))
}

// parseBool is qapi_bool_parse.
func parseBool(name, value string) (bool, error) {
	return qdict.ParseBool(name, cString(value))
}

// parseInt64 is qemu_strtoi64(key, NULL, 10) == 0, as qdict_is_list uses
// it to tell list indices from names.
func parseInt64(s string) (int64, bool) {
	s = cString(s)
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var v uint64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if v > (1<<63)/10 {
			return 0, false
		}
		v = v*10 + uint64(s[i]-'0')
		i++
	}
	if i == start || i != len(s) || v > 1<<63 || (!neg && v == 1<<63) {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

// qdictOrder returns keys (given in insertion order) in the order QEMU
// visits a QDict holding them. When several options are wrong, the one
// QEMU reports is the first in this order, not the first typed.
func qdictOrder(keys []string) []string {
	d := qdict.New()
	for _, k := range keys {
		d.Set(k, "")
	}
	return d.HashOrderKeys()
}

// odict is a tiny QDict of strings: insertion order plus values, with
// QEMU's iteration order available through qdictOrder.
type odict struct {
	keys []string
	vals map[string]string
}

func newODict() *odict { return &odict{vals: map[string]string{}} }

// put is qdict_put_str: a key already present keeps its place.
func (d *odict) put(k, v string) {
	if _, ok := d.vals[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.vals[k] = v
}

func (d *odict) del(k string) {
	if _, ok := d.vals[k]; !ok {
		return
	}
	delete(d.vals, k)
	for i, x := range d.keys {
		if x == k {
			d.keys = append(d.keys[:i], d.keys[i+1:]...)
			return
		}
	}
}

func (d *odict) size() int { return len(d.keys) }

// ordered returns the keys in QEMU's iteration order.
func (d *odict) ordered() []string { return qdictOrder(d.keys) }

// first is qdict_first(d)->key.
func (d *odict) first() string { return d.ordered()[0] }

// extract is qdict_extract_subqdict: it moves the keys starting with
// prefix (visited in QEMU's order, which decides the insertion order of
// the result) into a new dict, without the prefix.
func (d *odict) extract(prefix string) *odict {
	out := newODict()
	for _, k := range d.ordered() {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			out.put(k[len(prefix):], d.vals[k])
			d.del(k)
		}
	}
	return out
}

// idWellFormed is id_wellformed: a letter, then letters, digits, '-', '.'
// or '_'.
func idWellFormed(id string) bool {
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
