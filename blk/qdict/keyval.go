package qdict

import (
	"strings"

	"gio/internal/cutils"
)

// ParseKeyValue parses an option string the way qemu-io 7.2 parses its
// --image-opts argument (qemu_opts_parse_noisily on a QemuOptsList that
// accepts any option):
//
//   - options are separated by ','; "key=value" sets key; inside a value a
//     literal comma is written ",,". Keys have no escape: a key ends at the
//     first ',' or '='.
//   - a bare word "foo" means foo=on and "nofoo" means foo=off; both are
//     deprecated and produce a warning (except "help" and "?", which QEMU
//     exempts). Empty keys are accepted ("=x", or "," which is the bare
//     word ""), exactly like QEMU; the driver later rejects them.
//   - a repeated key: the last value wins, at the first one's position.
//   - "id=X" is not an option but the list's identifier. The first one
//     counts (it may also be spelled as a bare word: "id" is id=on); it
//     must be well-formed and is stored under the key "id" at the front of
//     the result (QEMU then rejects it as an unsupported block option).
//
// Each warning is the two-line text QEMU prints, without the "qemu-io: "
// prefix its first line gets and without a final newline:
//
//	warning: short-form boolean option 'img.raw' deprecated
//	Please use img.raw=on instead
//
// The only parse error is a malformed id:
//
//	Parameter 'id' expects an identifier
//	Identifiers consist of letters, digits, '-', '.', '_', starting with a letter.
//
// QEMU reports the id error before parsing the rest, so no warnings come
// with it.
func ParseKeyValue(s string) (*Dict, []string, error) {
	return parseKeyValue(s, true)
}

// ParseKeyValueNoID parses like ParseKeyValue but for the option lists of
// qemu-io's open -o and reopen -o, which merge into a single unnamed entry:
// any id (even "id" as a bare word) is rejected with QEMU's
// "Invalid parameter 'id'".
func ParseKeyValueNoID(s string) (*Dict, []string, error) {
	return parseKeyValue(s, false)
}

// kvOption is one parsed element of an option string.
type kvOption struct {
	name, value string
	// flag is set for the bare-word forms; prefix is "no" for "nofoo".
	flag   bool
	prefix string
}

// nextOption parses one option starting at s and returns it with the rest
// of the string after its separating comma (get_opt_name_value).
func nextOption(s string) (kvOption, string) {
	n := strings.IndexAny(s, "=,")
	if n < 0 {
		n = len(s)
	}
	var o kvOption
	var rest string
	if n < len(s) && s[n] == '=' {
		o.name = s[:n]
		o.value, rest = optValue(s[n+1:])
	} else {
		o.flag = true
		o.name = s[:n]
		rest = s[n:]
		if strings.HasPrefix(o.name, "no") {
			o.name = o.name[2:]
			o.value = "off"
			o.prefix = "no"
		} else {
			o.value = "on"
		}
	}
	rest = strings.TrimPrefix(rest, ",")
	return o, rest
}

// optValue reads a value up to a single ',' (",," is a literal comma) and
// returns it and the remainder starting at that comma (get_opt_value).
func optValue(s string) (string, string) {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, ',')
		if i < 0 {
			b.WriteString(s)
			return b.String(), ""
		}
		b.WriteString(s[:i])
		if i+1 < len(s) && s[i+1] == ',' {
			b.WriteByte(',')
			s = s[i+2:]
			continue
		}
		return b.String(), s[i:]
	}
}

func parseKeyValue(s string, allowID bool) (*Dict, []string, error) {
	// QEMU looks for the id first (opts_parse_id), before any warning.
	id, hasID := "", false
	for p := s; p != ""; {
		var o kvOption
		o, p = nextOption(p)
		if o.name == "id" {
			id, hasID = o.value, true
			break
		}
	}
	d := New()
	if hasID {
		if !allowID {
			return nil, nil, &Error{Msg: "Invalid parameter 'id'"}
		}
		if !cutils.IDWellFormed(id) {
			return nil, nil, &Error{Msg: "Parameter 'id' expects an identifier\n" +
				"Identifiers consist of letters, digits, '-', '.', '_', starting with a letter."}
		}
		d.Set("id", id)
	}

	var warnings []string
	for p := s; p != ""; {
		var o kvOption
		o, p = nextOption(p)
		if o.flag && !(o.prefix == "" && (o.name == "help" || o.name == "?")) {
			warnings = append(warnings, flagWarning(o))
		}
		if o.name == "id" {
			continue // already handled; every id element is dropped
		}
		d.Set(o.name, o.value)
	}
	return d, warnings, nil
}

// flagWarning is the deprecation text for a bare-word boolean. QEMU words
// the hint for "delay"/"nodelay" the other way round (a leftover from the
// socket chardev's inverted "nodelay" option), and so do we.
func flagWarning(o kvOption) string {
	w := "warning: short-form boolean option '" + o.prefix + o.name + "' deprecated\n"
	if o.name == "delay" {
		if o.prefix != "" {
			return w + "Please use nodelay=on instead"
		}
		return w + "Please use nodelay=off instead"
	}
	return w + "Please use " + o.name + "=" + o.value + " instead"
}
