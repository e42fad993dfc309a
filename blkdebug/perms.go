package blkdebug

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gio/blk"
	"gio/blk/qdict"
	"gio/internal/cutils"
)

// qapiPermNames are the names of blk.Perm's bits (in bit order) in
// QEMU's QAPI BlockPermission enum, which take-child-perms and
// unshare-child-perms use (blk.Perm's String has bdrv_perm_names' words).
var qapiPermNames = []string{"consistent-read", "write", "write-unchanged", "resize"}

// qval is a crumpled option value: a string, a dict or a list
// (QEMU's QString, QDict, QList after qdict_crumple).
type qval struct {
	str  string
	dict *qtree
	list []*qval
	kind int // qString, qDict, qList
}

const (
	qString = iota
	qDict
	qList
)

// qtree is a QDict of qvals in insertion order.
type qtree struct {
	keys []string
	vals map[string]*qval
}

func newQTree() *qtree { return &qtree{vals: map[string]*qval{}} }

func (t *qtree) put(k string, v *qval) {
	if _, ok := t.vals[k]; !ok {
		t.keys = append(t.keys, k)
	}
	t.vals[k] = v
}

// takePerms is blkdebug_parse_perm_list: the keys under prefix
// ("take-child-perms.0", ...) are taken out of opts, crumpled into a list
// and read as permission names, with the messages of QEMU's QAPI visitor.
func takePerms(opts *qdict.Dict, prefix string) (blk.Perm, error) {
	full := qdict.New()
	for _, k := range opts.Keys() {
		if strings.HasPrefix(k, prefix) {
			v, _ := opts.TakeString(k)
			full.Set(k, v)
		}
	}
	sub := full.ExtractPrefix(strings.TrimSuffix(prefix, "."))
	if sub.Len() == 0 {
		return 0, nil
	}
	flat := newQTree()
	for _, k := range sub.Keys() {
		v, _ := sub.Get(k)
		flat.put(k, &qval{str: v})
	}
	v, err := crumple(flat)
	if err != nil {
		return 0, err
	}
	if v.kind != qList {
		return 0, errors.New("Invalid parameter type for '<anonymous>', expected: array")
	}
	var p blk.Perm
	for i, e := range v.list {
		if e.kind != qString {
			return 0, fmt.Errorf("Invalid parameter type for '[%d]', expected: string", i)
		}
		found := false
		for j, n := range qapiPermNames {
			if n == cutils.CString(e.str) {
				p |= 1 << j
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("Parameter 'null' does not accept value '%s'", cutils.CString(e.str))
		}
	}
	return p, nil
}

// splitFlatKey is qdict_split_flat_key: the key splits at its first '.'
// that is not part of a ".." escape; the prefix is unescaped.
func splitFlatKey(key string) (prefix, suffix string, hasSuffix bool) {
	i := 0
	sep := -1
	for {
		j := strings.IndexByte(key[i:], '.')
		if j < 0 {
			break
		}
		j += i
		if j+1 < len(key) && key[j+1] == '.' {
			i = j + 2
			if i > len(key) {
				break
			}
			continue
		}
		sep = j
		break
	}
	if sep >= 0 {
		prefix, suffix, hasSuffix = key[:sep], key[sep+1:], true
	} else {
		prefix = key
	}
	return strings.ReplaceAll(prefix, "..", "."), suffix, hasSuffix
}

// crumple is qdict_crumple: dotted keys become nested dicts, and dicts
// whose keys are all integers become lists.
func crumple(src *qtree) (*qval, error) {
	two := newQTree()
	for _, k := range qdictOrder(src.keys) {
		prefix, suffix, hasSuffix := splitFlatKey(k)
		child := two.vals[prefix]
		if child != nil && (child.kind != qDict || !hasSuffix) {
			return nil, errors.New("Cannot mix scalar and non-scalar keys")
		}
		if hasSuffix {
			if child == nil {
				child = &qval{kind: qDict, dict: newQTree()}
				two.put(prefix, child)
			}
			child.dict.put(suffix, src.vals[k])
		} else {
			two.put(prefix, src.vals[k])
		}
	}
	multi := newQTree()
	for _, k := range qdictOrder(two.keys) {
		v := two.vals[k]
		if v.kind == qDict {
			c, err := crumple(v.dict)
			if err != nil {
				return nil, err
			}
			v = c
		}
		multi.put(k, v)
	}
	isList, err := qdictIsList(multi)
	if err != nil {
		return nil, err
	}
	if !isList {
		return &qval{kind: qDict, dict: multi}, nil
	}
	out := &qval{kind: qList}
	for i := range multi.keys {
		c := multi.vals[strconv.Itoa(i)]
		if c == nil {
			return nil, fmt.Errorf("Missing list index %d", i)
		}
		out.list = append(out.list, c)
	}
	return out, nil
}

// qdictIsList is qdict_is_list: all keys integers (a list) or none.
func qdictIsList(t *qtree) (bool, error) {
	isList := -1
	n, top := int64(0), int64(-1)
	for _, k := range qdictOrder(t.keys) {
		v, r := cutils.Strtoi64(cutils.CString(k), 10)
		isIndex := r == cutils.OK
		idx := 0
		if isIndex {
			idx = 1
		}
		if isList == -1 {
			isList = idx
		}
		if idx != isList {
			return false, errors.New("Cannot mix list and non-list keys")
		}
		if isIndex {
			n++
			top = max(top, v)
		}
	}
	if isList == -1 {
		isList = 0
	}
	if n != top+1 {
		return false, fmt.Errorf("List indices are not contiguous, saw %d elements but %d largest index", n, top)
	}
	return isList == 1, nil
}
