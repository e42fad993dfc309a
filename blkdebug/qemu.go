package blkdebug

import (
	"gio/blk/qdict"
	"gio/internal/cutils"
)

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

// parseNumber is parse_option_number (qemu_strtou64 with base 0:
// decimal, 0x hex or 0 octal, nothing after the number; a '-' wraps
// around, and the rule fields then truncate back to int, which is how
// errno = "-5" works). QEMU sees the value as a C string.
func parseNumber(name, value string) (uint64, error) {
	return qdict.ParseNumber(name, cutils.CString(value))
}

// parseBool is qapi_bool_parse.
func parseBool(name, value string) (bool, error) {
	return qdict.ParseBool(name, cutils.CString(value))
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

// firstKey is qdict_first(d)->key.
func firstKey(d *qdict.Dict) string { return d.HashOrderKeys()[0] }
