package qcrypto

import (
	"fmt"
	"strings"

	"gio/blk/qdict"
)

// field is one member of a QAPI info structure as qemu-io dumps it: a
// scalar value, or children (a struct, or a list when list is set).
type field struct {
	key      string
	value    string
	children []field
	list     bool
}

// dump renders fields the way QEMU's dump_qdict does: struct members in
// QDict iteration order (hash buckets, not declaration order), '-' in
// names shown as ' ', nested values indented by 4.
func dump(fields []field, indent int, out []string) []string {
	d := qdict.New()
	byKey := map[string]field{}
	for _, f := range fields {
		d.Set(f.key, "")
		byKey[f.key] = f
	}
	pad := strings.Repeat(" ", indent)
	for _, k := range d.HashOrderKeys() {
		f := byKey[k]
		name := strings.ReplaceAll(k, "-", " ")
		if f.children == nil {
			out = append(out, fmt.Sprintf("%s%s: %s", pad, name, f.value))
			continue
		}
		out = append(out, pad+name+":")
		if !f.list {
			out = dump(f.children, indent+4, out)
			continue
		}
		for i, c := range f.children {
			out = append(out, fmt.Sprintf("%s    [%d]:", pad, i))
			out = dump(c.children, indent+8, out)
		}
	}
	return out
}

// Info returns the lines of "Format specific information" for the header
// (qcrypto_block_luks_get_info), indented by indent; format adds the
// "format: luks" member that qcow2's encrypt section carries.
func (h *Header) Info(indent int, format bool) []string {
	r := &h.raw
	var fs []field
	if format {
		fs = append(fs, field{key: "format", value: "luks"})
	}
	fs = append(fs,
		field{key: "cipher-alg", value: h.spec.Alg.String()},
		field{key: "cipher-mode", value: h.spec.Mode},
		field{key: "ivgen-alg", value: h.spec.IVGen})
	if strings.Contains(cstr(r.CipherMode[:]), ":") {
		fs = append(fs, field{key: "ivgen-hash-alg", value: h.spec.IVHash.String()})
	}
	fs = append(fs,
		field{key: "hash-alg", value: h.hash.String()},
		field{key: "payload-offset", value: fmt.Sprint(h.PayloadOffset())},
		field{key: "master-key-iters", value: fmt.Sprint(r.MKIterations)},
		field{key: "uuid", value: cstr(r.UUID[:])})
	slots := field{key: "slots", list: true, children: []field{}}
	for _, s := range r.Slots {
		sl := []field{{key: "active", value: fmt.Sprint(s.Active == slotEnabled)}}
		if s.Active == slotEnabled {
			sl = append(sl, field{key: "iters", value: fmt.Sprint(s.Iterations)},
				field{key: "stripes", value: fmt.Sprint(s.Stripes)})
		}
		sl = append(sl, field{key: "key-offset", value: fmt.Sprint(int64(s.KeyOffset) * SectorSize)})
		slots.children = append(slots.children, field{children: sl})
	}
	fs = append(fs, slots)
	return dump(fs, indent, nil)
}
