// Package qdict implements QEMU's flat option dictionaries: the "QDict with
// dotted keys" that every way of specifying an image (plain options,
// --image-opts / open -o strings, json: filenames) is turned into before a
// block driver sees it.
//
// A Dict maps dotted keys ("file.driver", "file.image.filename",
// "file.inject-error.0.event") to string values, in insertion order. Values
// that came from JSON keep a Kind so that they can be rendered back the way
// QEMU would and so that non-scalar leftovers (null, {}, []) behave as in
// QEMU: invisible to the typed getters, but still present as "unsupported
// options".
//
// The typed getters (TakeString, TakeBool, TakeSize, TakeUint, TakeInt)
// consume the key they read, so a driver can report whatever is left as an
// unknown option, and they produce QEMU 7.2's exact error texts.
package qdict

import (
	"sort"
	"strconv"
	"strings"
)

// Kind tells where a value came from and how QEMU would treat it.
type Kind uint8

const (
	// String is a string value: everything from key=value syntax and JSON
	// strings.
	String Kind = iota
	// Number is a JSON number; the value holds QEMU's text form of it
	// (qnum_to_string: decimal for integers, "%.17g" otherwise).
	Number
	// Bool is a JSON true/false; the value holds "on" or "off", which is
	// what QEMU converts it to when an option is read as a string.
	Bool
	// Null is a JSON null. QEMU's option absorption skips it, so it is
	// invisible to Get and the Take getters but still counts as present.
	Null
	// EmptyObject is a JSON {} that qdict_flatten keeps as a value.
	EmptyObject
	// EmptyList is a JSON [] that qdict_flatten keeps as a value.
	EmptyList
)

// Scalar reports whether values of this kind are visible as strings (QEMU
// converts strings, numbers and booleans when absorbing options and skips
// everything else).
func (k Kind) Scalar() bool { return k <= Bool }

type entry struct {
	key  string
	val  string
	kind Kind
}

// Dict is an ordered map of dotted keys to values. The zero value is an
// empty dictionary ready to use; use Clone to copy one.
type Dict struct {
	ents []entry
	idx  map[string]int
}

// New returns an empty Dict.
func New() *Dict { return &Dict{} }

// FromPairs builds a Dict from alternating keys and string values; it is a
// convenience for tests and callers building fixed option sets.
func FromPairs(kv ...string) *Dict {
	d := New()
	for i := 0; i+1 < len(kv); i += 2 {
		d.Set(kv[i], kv[i+1])
	}
	return d
}

func (d *Dict) index() map[string]int {
	if d.idx == nil {
		d.idx = make(map[string]int, len(d.ents))
		for i, e := range d.ents {
			d.idx[e.key] = i
		}
	}
	return d.idx
}

// Get returns the value of key if it is present and a scalar (string,
// number or boolean); null and empty containers are reported as absent,
// as QEMU's option code cannot read them either.
func (d *Dict) Get(key string) (string, bool) {
	v, k, ok := d.Lookup(key)
	if !ok || !k.Scalar() {
		return "", false
	}
	return v, true
}

// GetStr returns the value of key only if it is a string (QEMU's
// qdict_get_try_str): a JSON number, boolean or null there is absent to
// the code that picks drivers, file names and node references.
func (d *Dict) GetStr(key string) (string, bool) {
	v, k, ok := d.Lookup(key)
	if !ok || k != String {
		return "", false
	}
	return v, true
}

// Lookup returns the value and kind of key, whatever the kind.
func (d *Dict) Lookup(key string) (value string, kind Kind, ok bool) {
	if d == nil {
		return "", 0, false
	}
	i, ok := d.index()[key]
	if !ok {
		return "", 0, false
	}
	return d.ents[i].val, d.ents[i].kind, true
}

// Has reports whether key is present, whatever its kind.
func (d *Dict) Has(key string) bool {
	_, _, ok := d.Lookup(key)
	return ok
}

// Set stores a string value. An existing key keeps its position (as a
// QDict entry keeps its place when qdict_put replaces its value).
func (d *Dict) Set(key, value string) { d.SetKind(key, value, String) }

// SetKind stores a value of the given kind (see Kind for what value holds
// for each kind).
func (d *Dict) SetKind(key, value string, kind Kind) {
	idx := d.index()
	if i, ok := idx[key]; ok {
		d.ents[i].val, d.ents[i].kind = value, kind
		return
	}
	idx[key] = len(d.ents)
	d.ents = append(d.ents, entry{key: key, val: value, kind: kind})
}

// Del removes key and reports whether it was present.
func (d *Dict) Del(key string) bool {
	if d == nil {
		return false
	}
	i, ok := d.index()[key]
	if !ok {
		return false
	}
	d.ents = append(d.ents[:i], d.ents[i+1:]...)
	d.idx = nil // positions shifted; rebuilt lazily
	return true
}

// Keys returns the keys in insertion order.
func (d *Dict) Keys() []string {
	if d == nil {
		return nil
	}
	keys := make([]string, len(d.ents))
	for i, e := range d.ents {
		keys[i] = e.key
	}
	return keys
}

// Len returns the number of entries.
func (d *Dict) Len() int {
	if d == nil {
		return 0
	}
	return len(d.ents)
}

// Clone returns an independent copy.
func (d *Dict) Clone() *Dict {
	c := New()
	if d != nil {
		c.ents = append([]entry(nil), d.ents...)
	}
	return c
}

// Equal reports whether both dictionaries hold the same keys with the same
// values and kinds, in the same order.
func (d *Dict) Equal(o *Dict) bool {
	if d.Len() != o.Len() {
		return false
	}
	for i := range d.Len() {
		if d.ents[i] != o.ents[i] {
			return false
		}
	}
	return true
}

// HasPrefix reports whether any key starts with prefix + ".".
func (d *Dict) HasPrefix(prefix string) bool {
	if d == nil {
		return false
	}
	p := prefix + "."
	for _, e := range d.ents {
		if strings.HasPrefix(e.key, p) {
			return true
		}
	}
	return false
}

// ExtractPrefix removes every key starting with prefix + "." from d and
// returns those entries with that prefix stripped, in order. This is
// qdict_extract_subqdict, used to hand "file.*" to a child node. A key
// equal to prefix itself (e.g. "file=node-name") stays in d.
func (d *Dict) ExtractPrefix(prefix string) *Dict {
	sub := New()
	if d == nil {
		return sub
	}
	p := prefix + "."
	kept := d.ents[:0]
	for _, e := range d.ents {
		if rest, ok := strings.CutPrefix(e.key, p); ok {
			sub.SetKind(rest, e.val, e.kind)
			continue
		}
		kept = append(kept, e)
	}
	// Clear the tail so removed entries do not linger in the array.
	for i := len(kept); i < len(d.ents); i++ {
		d.ents[i] = entry{}
	}
	d.ents = kept
	d.idx = nil
	return sub
}

// ListIndices returns, in ascending order, the distinct numeric indices N
// for which a key "prefix.N" or "prefix.N.*" exists. Only canonical
// decimal indices count ("00" is not 0), as in qdict_array_split.
func (d *Dict) ListIndices(prefix string) []int {
	if d == nil {
		return nil
	}
	p := prefix + "."
	seen := map[int]bool{}
	var out []int
	for _, e := range d.ents {
		rest, ok := strings.CutPrefix(e.key, p)
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		n, err := strconv.ParseUint(num, 10, 31)
		if err != nil || strconv.FormatUint(n, 10) != num {
			continue
		}
		if !seen[int(n)] {
			seen[int(n)] = true
			out = append(out, int(n))
		}
	}
	sort.Ints(out)
	return out
}

// TakeGroup extracts an option group such as blkdebug's "inject-error" or
// "set-state" the way QEMU's qemu_config_parse_qdict does, and returns one
// Dict per section (rule). known lists the option names a section accepts.
//
// Two spellings are accepted: a single section without an index
// ("inject-error.event=read_aio,inject-error.errno=5") or enumerated
// sections ("inject-error.0.event=...,inject-error.1.event=..."), indices
// counting up from 0 without gaps. All "name.*" keys are removed from d.
// Errors carry QEMU's texts:
//
//	Unknown option '0.event' for [inject-error]          (both spellings mixed)
//	Unused option '2.event' for [inject-error]           (gap or stray key)
//	[inject-error] section (index 0) does not consist of keys
//	[inject-error] section doesn't support the option 'bogus'
//
// Where QEMU names "the first" offending key it means the first in its
// hash-table order; HashOrderKeys reproduces that order.
func (d *Dict) TakeGroup(name string, known []string) ([]*Dict, error) {
	sub := d.ExtractPrefix(name)
	if sub.Len() == 0 {
		return nil, nil
	}
	isKnown := func(e entry) bool {
		if !e.kind.Scalar() {
			return false // qemu_opts_absorb_qdict skips non-scalars
		}
		for _, k := range known {
			if k == e.key {
				return true
			}
		}
		return false
	}
	single := New()
	rest := New()
	for _, e := range sub.ents {
		if isKnown(e) {
			single.SetKind(e.key, e.val, e.kind)
		} else {
			rest.SetKind(e.key, e.val, e.kind)
		}
	}
	if rest.Len() == 0 {
		return []*Dict{single}, nil
	}
	if single.Len() > 0 {
		return nil, &Error{Msg: "Unknown option '" + rest.HashOrderKeys()[0] + "' for [" + name + "]"}
	}

	// Enumerated sections: qdict_array_split stops at the first index
	// that has neither or both of "N" and "N.*".
	type elem struct {
		dict   *Dict
		scalar bool
	}
	var elems []elem
	for i := 0; ; i++ {
		idx := strconv.Itoa(i)
		_, kind, direct := rest.Lookup(idx)
		nested := rest.HasPrefix(idx)
		if direct == nested {
			break
		}
		if nested {
			elems = append(elems, elem{dict: rest.ExtractPrefix(idx)})
			continue
		}
		rest.Del(idx)
		// An empty JSON object is still a (key-less) dictionary.
		elems = append(elems, elem{dict: New(), scalar: kind != EmptyObject})
	}
	if rest.Len() > 0 {
		return nil, &Error{Msg: "Unused option '" + rest.HashOrderKeys()[0] + "' for [" + name + "]"}
	}
	out := make([]*Dict, 0, len(elems))
	for i, el := range elems {
		if el.scalar {
			return nil, &Error{Msg: "[" + name + "] section (index " + strconv.Itoa(i) + ") does not consist of keys"}
		}
		sec := New()
		left := New()
		for _, e := range el.dict.ents {
			if isKnown(e) {
				sec.SetKind(e.key, e.val, e.kind)
			} else {
				left.SetKind(e.key, e.val, e.kind)
			}
		}
		if left.Len() > 0 {
			return nil, &Error{Msg: "[" + name + "] section doesn't support the option '" + left.HashOrderKeys()[0] + "'"}
		}
		out = append(out, sec)
	}
	return out, nil
}

// String renders d in key=value syntax, commas in values doubled, so that
// ParseKeyValue gives the same Dict back. Non-scalar entries are left out
// (the syntax cannot express them), and keys containing ',' or '=' cannot
// round-trip because QEMU's parser has no escape for keys.
func (d *Dict) String() string {
	if d == nil {
		return ""
	}
	var b strings.Builder
	first := true
	for _, e := range d.ents {
		if !e.kind.Scalar() {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(e.key)
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(e.val, ",", ",,"))
	}
	return b.String()
}

// HashOrderKeys returns the keys in the order QEMU 7.2 iterates a QDict
// holding them: by hash bucket (tdb_hash modulo 512), and within a bucket
// the most recently inserted first. QEMU reports "the first unsupported
// option" and renders json: filenames in this order. Insertion order is
// taken to be d's order, which matches QEMU whenever no two keys share a
// bucket (the common case).
func (d *Dict) HashOrderKeys() []string {
	keys := d.Keys()
	return hashOrder(keys)
}

// hashOrder sorts keys (given in insertion order) into QDict iteration
// order.
func hashOrder(keys []string) []string {
	type kb struct {
		key    string
		bucket uint32
		pos    int
	}
	list := make([]kb, len(keys))
	for i, k := range keys {
		list[i] = kb{k, qdictBucket(k), i}
	}
	sort.SliceStable(list, func(a, b int) bool {
		if list[a].bucket != list[b].bucket {
			return list[a].bucket < list[b].bucket
		}
		return list[a].pos > list[b].pos
	})
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = e.key
	}
	return out
}

// qdictBucket is QEMU's tdb_hash(key) % QDICT_BUCKET_MAX. C stops at a NUL
// byte, so we do too.
func qdictBucket(key string) uint32 {
	if i := strings.IndexByte(key, 0); i >= 0 {
		key = key[:i]
	}
	value := uint32(0x238F13AF) * uint32(len(key))
	for i := 0; i < len(key); i++ {
		value += uint32(key[i]) << (uint(i) * 5 % 24)
	}
	return (1103515243*value + 12345) % 512
}

// Error is an option error with QEMU's message text. Some messages span
// several lines (the size hint, the identifier hint); the text then
// contains newlines but no trailing one.
type Error struct {
	Msg string
}

func (e *Error) Error() string { return e.Msg }
