package qdict

import (
	"fmt"
	"sort"
	"strings"
)

// JSON renders d the way QEMU 7.2 renders a generated "json:{...}"
// filename (qobject_to_json of a node's full_open_options), without the
// "json:" prefix:
//
//	{"image": {"driver": "file", "filename": "img.raw"}, "driver": "blkdebug", "align": "4k"}
//
// QEMU nests only child nodes; a node's own options stay flat even when
// dotted ("inject-error.0.event"). So the caller names the children:
// each entry of children is a key prefix (relative to d, e.g. "image", or
// "file" and "file.image") whose keys are rendered as a nested object.
//
// Members appear in QDict iteration order (see HashOrderKeys), child
// objects being treated as inserted after d's own keys. Strings are
// escaped like QEMU's JSON writer (", \, \b \f \n \r \t, other control
// characters and everything outside printable ASCII as \uXXXX with upper
// case hex, astral characters as surrogate pairs, invalid UTF-8 as
// \uFFFD); a string is cut at a NUL byte as C would. Numbers and booleans
// from JSON input are written bare; everything from key=value input is a
// string, as in QEMU's generated names.
//
// Differences from QEMU: when two keys share a hash bucket, QEMU's order
// depends on the history of copies its dictionaries went through; here
// the later-inserted key comes first.
func (d *Dict) JSON(children ...string) string {
	var b strings.Builder
	writeObject(&b, d, children)
	return b.String()
}

func writeObject(b *strings.Builder, d *Dict, children []string) {
	// Direct children: listed prefixes not nested in another listed one.
	var direct []string
	for _, c := range children {
		nested := false
		for _, o := range children {
			if o != c && strings.HasPrefix(c, o+".") {
				nested = true
				break
			}
		}
		if !nested && !contains(direct, c) {
			direct = append(direct, c)
		}
	}
	sort.Strings(direct)

	rest := d.Clone()
	subs := map[string]*Dict{}
	subChildren := map[string][]string{}
	for _, c := range direct {
		subs[c] = rest.ExtractPrefix(c)
		for _, o := range children {
			if s, ok := strings.CutPrefix(o, c+"."); ok {
				subChildren[c] = append(subChildren[c], s)
			}
		}
	}

	keys := rest.Keys()
	for _, c := range direct {
		if !rest.Has(c) {
			keys = append(keys, c)
		}
	}
	b.WriteByte('{')
	for i, k := range hashOrder(keys) {
		if i > 0 {
			b.WriteString(", ")
		}
		writeString(b, k)
		b.WriteString(": ")
		if sub, ok := subs[k]; ok {
			writeObject(b, sub, subChildren[k])
			continue
		}
		v, kind, _ := rest.Lookup(k)
		writeValue(b, v, kind)
	}
	b.WriteByte('}')
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func writeValue(b *strings.Builder, v string, kind Kind) {
	switch kind {
	case Number:
		b.WriteString(v)
	case Bool:
		if v == "on" {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case Null:
		b.WriteString("null")
	case EmptyObject:
		b.WriteString("{}")
	case EmptyList:
		b.WriteString("[]")
	default:
		writeString(b, v)
	}
}

// writeString is QEMU's quoted_str.
func writeString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for s != "" && s[0] != 0 {
		cp, n := modUTF8Codepoint(s)
		if n == 0 {
			n = 1
		}
		s = s[n:]
		switch cp {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if cp < 0 {
				cp = 0xFFFD
			}
			switch {
			case cp > 0xFFFF:
				fmt.Fprintf(b, `\u%04X\u%04X`, 0xD800+(cp-0x10000)>>10, 0xDC00+(cp-0x10000)&0x3FF)
			case cp < 0x20 || cp >= 0x7F:
				fmt.Fprintf(b, `\u%04X`, cp)
			default:
				b.WriteByte(byte(cp))
			}
		}
	}
	b.WriteByte('"')
}
