package blkdebug

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"gio/blk"
	"gio/blk/qdict"
	"gio/internal/cutils"
)

// This file turns rule text into Rules in QEMU's three steps, because the
// order of the steps decides which error a broken configuration reports:
//
//  1. the config file is read line by line (qemu_config_foreach) into one
//     QemuOpts per section, each value checked against its type as the
//     section closes;
//  2. the inject-error.* and set-state.* options are cut into sections
//     the same way (qemu_config_parse_qdict);
//  3. every inject-error section, then every set-state section, in the
//     order they were created, becomes a Rule (add_rule), which is where
//     event names and I/O types are looked up.

type optType int

const (
	optString optType = iota
	optNumber
	optBool
)

// optsList is a QemuOptsList: a group name and its keys.
type optsList struct {
	name   string
	action Action
	desc   []optDesc
}

type optDesc struct {
	name string
	typ  optType
}

var (
	injectErrorOpts = &optsList{name: "inject-error", action: InjectError, desc: []optDesc{
		{"event", optString}, {"state", optNumber}, {"iotype", optString}, {"errno", optNumber},
		{"sector", optNumber}, {"once", optBool}, {"immediately", optBool},
	}}
	setStateOpts = &optsList{name: "set-state", action: SetState, desc: []optDesc{
		{"event", optString}, {"state", optNumber}, {"new_state", optNumber},
	}}
	// configGroups is QEMU's config_groups, in its order.
	configGroups = []*optsList{injectErrorOpts, setStateOpts}
)

func (l *optsList) find(name string) *optDesc {
	for i := range l.desc {
		if l.desc[i].name == name {
			return &l.desc[i]
		}
	}
	return nil
}

// qemuOpts is one QemuOpts: a section whose values passed their type
// checks. vals keeps the text; add_rule converts it.
type qemuOpts struct {
	list *optsList
	id   string
	vals map[string]string
}

// set is qemu_opt_set: the key must be known, the value must parse.
func (o *qemuOpts) set(key, value string) error {
	d := o.list.find(key)
	if d == nil {
		return fmt.Errorf("Invalid parameter '%s'", cutils.CString(key))
	}
	var err error
	switch d.typ {
	case optNumber:
		_, err = parseNumber(key, value)
	case optBool:
		_, err = parseBool(key, value)
	}
	if err != nil {
		return err
	}
	o.vals[key] = value
	return nil
}

// absorb is qemu_opts_absorb_qdict: it takes the keys it knows from d and
// leaves the rest there.
func (o *qemuOpts) absorb(d *qdict.Dict) error {
	for _, k := range d.HashOrderKeys() {
		if o.list.find(k) == nil {
			continue
		}
		v, _ := d.Get(k)
		if err := o.set(k, v); err != nil {
			return err
		}
		d.Del(k)
	}
	return nil
}

// optsStore holds the QemuOpts created while one node opens, per list,
// in creation order. QEMU keeps them in global lists reset after every
// open; ids are unique per list for the whole open.
type optsStore struct {
	opts    map[*optsList][]*qemuOpts
	created []*qemuOpts // every list, in creation order
}

func newOptsStore() *optsStore { return &optsStore{opts: map[*optsList][]*qemuOpts{}} }

// create is qemu_opts_create with fail_if_exists set whenever an id is
// given, as every caller here does.
func (s *optsStore) create(list *optsList, id string, hasID bool) (*qemuOpts, error) {
	if hasID {
		if !cutils.IDWellFormed(id) {
			return nil, &hintError{"Parameter 'id' expects an identifier",
				"Identifiers consist of letters, digits, '-', '.', '_', starting with a letter."}
		}
		for _, o := range s.opts[list] {
			if o.id == id {
				return nil, fmt.Errorf("Duplicate ID '%s' for %s", id, list.name)
			}
		}
	}
	o := &qemuOpts{list: list, id: id, vals: map[string]string{}}
	s.opts[list] = append(s.opts[list], o)
	s.created = append(s.created, o)
	return o, nil
}

func (s *optsStore) remove(o *qemuOpts) {
	s.opts[o.list] = without(s.opts[o.list], o)
	s.created = without(s.created, o)
}

func without(l []*qemuOpts, o *qemuOpts) []*qemuOpts {
	for i, x := range l {
		if x == o {
			return append(l[:i:i], l[i+1:]...)
		}
	}
	return l
}

// fromDict is qemu_opts_from_qdict, the end of a config-file section:
// unknown keys are errors here, unlike absorb.
func (s *optsStore) fromDict(list *optsList, d *qdict.Dict) error {
	id, hasID := d.Get("id")
	o, err := s.create(list, cutils.CString(id), hasID)
	if err != nil {
		return err
	}
	for _, k := range d.HashOrderKeys() {
		if k == "id" {
			continue
		}
		v, _ := d.Get(k)
		if err := o.set(k, v); err != nil {
			s.remove(o)
			return err
		}
	}
	return nil
}

// cscan reads a C string the way sscanf does, for the few conversions
// the config file syntax uses.
type cscan struct {
	s string
	i int
}

func (c *cscan) skipSpace() {
	for c.i < len(c.s) && cutils.IsSpace(c.s[c.i]) {
		c.i++
	}
}

// word is %Ns: skip white space, then 1..max non-space characters.
func (c *cscan) word(max int) (string, bool) {
	c.skipSpace()
	start := c.i
	for c.i < len(c.s) && c.i-start < max && !cutils.IsSpace(c.s[c.i]) {
		c.i++
	}
	return c.s[start:c.i], c.i > start
}

// lit matches one literal character.
func (c *cscan) lit(b byte) bool {
	if c.i < len(c.s) && c.s[c.i] == b {
		c.i++
		return true
	}
	return false
}

// until is %N[^x]: 1..max characters other than stop, white space
// included and not skipped.
func (c *cscan) until(max int, stop byte) (string, bool) {
	start := c.i
	for c.i < len(c.s) && c.i-start < max && c.s[c.i] != stop {
		c.i++
	}
	return c.s[start:c.i], c.i > start
}

// findList is find_list.
func findList(group string) (*optsList, error) {
	for _, l := range configGroups {
		if l.name == group {
			return l, nil
		}
	}
	return nil, fmt.Errorf("There is no option group '%s'", group)
}

func (s *optsStore) closeSection(group string, d *qdict.Dict) error {
	list, err := findList(group)
	if err != nil {
		return err
	}
	return s.fromDict(list, d)
}

// parseConfig is qemu_config_parse, quirks included, since they decide
// what a slightly wrong file means:
//
//   - lines are read with fgets into 1024 bytes, so a longer line is read
//     as several;
//   - "[group]" and `[group "id"]` open a section; a line starting with
//     '[' that is neither is read as a key line;
//   - a key line is ` KEY = "VALUE"`; sscanf's partial matches mean that
//     any line with a word on it is accepted, as KEY with an empty value
//     when the rest does not match (`KEY="V"` is the key `KEY="V"`);
//   - the last section is checked under the name the group variable last
//     held, which a stray "[]" line changes to "]".
func (s *optsStore) parseConfig(data []byte) error {
	var (
		cur       *qdict.Dict // the open section
		group     string      // sscanf's target, clobbered by partial matches
		prevGroup string
	)
	for len(data) > 0 {
		n := min(len(data), 1023)
		if i := bytes.IndexByte(data[:n], '\n'); i >= 0 {
			n = i + 1
		}
		line := cutils.CString(string(data[:n]))
		data = data[n:]
		if line != "" && (line[0] == '\n' || line[0] == '#') {
			continue
		}
		if line != "" && line[0] == '[' {
			prev := cur
			c := cscan{s: line, i: 1}
			if g, ok := c.word(63); ok {
				group = g
				c.skipSpace()
				if c.lit('"') {
					if id, ok := c.until(63, '"'); ok {
						cur = qdict.New()
						cur.Set("id", id)
					}
				}
			}
			if cur == prev {
				c = cscan{s: line, i: 1}
				if g, ok := c.until(63, ']'); ok {
					group = g
					cur = qdict.New()
				}
			}
			if cur != prev {
				if prev != nil {
					if err := s.closeSection(prevGroup, prev); err != nil {
						return err
					}
				}
				prevGroup = group
				continue
			}
		}
		c := cscan{s: line}
		arg, ok := c.word(63)
		if !ok {
			return errors.New("parse error")
		}
		value := ""
		c.skipSpace()
		if c.lit('=') {
			c.skipSpace()
			if c.lit('"') {
				value, _ = c.until(1023, '"')
			}
		}
		if cur == nil {
			return errors.New("no group defined")
		}
		cur.Set(arg, value)
	}
	if cur != nil {
		return s.closeSection(group, cur)
	}
	return nil
}

// parseDictSection is config_parse_qdict_section: the list's keys are
// taken out of options ("inject-error.event" or "inject-error.N.event")
// and become one section, or one per index.
func (s *optsStore) parseDictSection(options *qdict.Dict, list *optsList) error {
	sub := options.ExtractPrefix(list.name)
	orig := sub.Len()
	if orig == 0 {
		return nil
	}
	o, _ := s.create(list, "", false)
	if err := o.absorb(sub); err != nil {
		return err
	}
	left := sub.Len()
	if left > 0 && left < orig {
		return fmt.Errorf("Unknown option '%s' for [%s]", firstKey(sub), list.name)
	}
	if left == 0 {
		return nil
	}
	// Enumerated sections: the flat keys were indices, not options.
	s.remove(o)
	elems := arraySplit(sub)
	if sub.Len() > 0 {
		return fmt.Errorf("Unused option '%s' for [%s]", firstKey(sub), list.name)
	}
	for i, e := range elems {
		if e == nil {
			return fmt.Errorf("[%s] section (index %d) does not consist of keys", list.name, i)
		}
		o, err := s.create(list, list.name+"."+strconv.Itoa(i), true)
		if err != nil {
			return err
		}
		if err := o.absorb(e); err != nil {
			s.remove(o)
			return err
		}
		if e.Len() > 0 {
			s.remove(o)
			return fmt.Errorf("[%s] section doesn't support the option '%s'", list.name, firstKey(e))
		}
	}
	return nil
}

// arraySplit is qdict_array_split: index i is either the key "i" (a
// scalar, returned as nil since no caller here accepts one) or the keys
// "i.*" (a dict); it stops at the first index that is neither or both.
func arraySplit(src *qdict.Dict) []*qdict.Dict {
	var out []*qdict.Dict
	for i := 0; ; i++ {
		idx := strconv.Itoa(i)
		scalar := src.Has(idx)
		prefixed := false
		for _, k := range src.Keys() {
			if len(k) > len(idx) && k[:len(idx)+1] == idx+"." {
				prefixed = true
				break
			}
		}
		if scalar == prefixed {
			return out
		}
		if prefixed {
			out = append(out, src.ExtractPrefix(idx))
		} else {
			src.Del(idx)
			out = append(out, nil)
		}
	}
}

// rules is the add_rule pass: every inject-error section, then every
// set-state section, each in creation order. The rules come back in that
// order too, which is the order QEMU adds them to its per-event lists.
func (s *optsStore) rules() ([]Rule, error) {
	var out []Rule
	for _, l := range configGroups {
		for _, o := range s.opts[l] {
			r, err := o.rule()
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// number returns a checked number option, or def when absent.
func (o *qemuOpts) number(key string, def uint64) uint64 {
	v, ok := o.vals[key]
	if !ok {
		return def
	}
	n, _ := parseNumber(key, v) // checked by set
	return n
}

func (o *qemuOpts) boolean(key string) bool {
	v, ok := o.vals[key]
	if !ok {
		return false
	}
	b, _ := parseBool(key, v) // checked by set
	return b
}

// rule is add_rule.
func (o *qemuOpts) rule() (Rule, error) {
	name, ok := o.vals["event"]
	if !ok {
		return Rule{}, errors.New("Missing event name for rule")
	}
	name = cutils.CString(name)
	ev, ok := blk.ParseEvent(name)
	if !ok {
		return Rule{}, fmt.Errorf("invalid parameter value: %s", name)
	}
	r := Rule{Event: ev, Action: o.list.action, State: cInt(o.number("state", 0))}
	switch r.Action {
	case InjectError:
		r.Errno = cInt(o.number("errno", 5))
		r.Once = o.boolean("once")
		r.Immediately = o.boolean("immediately")
		r.Sector = int64(o.number("sector", ^uint64(0)))
		r.IOTypeMask = DefaultIOTypes
		if v, ok := o.vals["iotype"]; ok {
			v = cutils.CString(v)
			t, ok := ParseIOType(v)
			if !ok {
				return Rule{}, fmt.Errorf("invalid parameter value: %s", v)
			}
			r.IOTypeMask = MaskOf(t)
		}
	case SetState:
		r.NewState = cInt(o.number("new_state", 0))
	}
	return r, nil
}

// cInt is C's conversion of a uint64 option to an int field.
func cInt(v uint64) int { return int(int32(v)) }

// ParseConfig parses a blkdebug config file (the FILE of
// blkdebug:FILE:IMAGE) and returns its rules in file order. It reads what
// QEMU 7.2 reads, quirks included: lines are read in pieces of at most
// 1023 bytes; a line with a word on it but not of the form KEY = "VALUE"
// sets the key to "" or becomes the key itself (`event="x"` is the key
// `event="x"`); indentation turns a group or comment line into a key line.
// Errors carry qemu-io's messages ("There is no option group 'foo'", "no
// group defined", "Invalid parameter 'bogus'", ...), and the first error
// is the one QEMU reports: values are checked as each section closes, in
// QEMU's hash order of the keys, and the event names of all
// [inject-error] sections before those of the [set-state] sections.
func ParseConfig(data []byte) ([]Rule, error) {
	s := newOptsStore()
	if err := s.parseConfig(data); err != nil {
		return nil, err
	}
	// add_rule order decides which bad event is reported; the result is
	// in file order, which the store has lost across lists, so rebuild it.
	if _, err := s.rules(); err != nil {
		return nil, err
	}
	var out []Rule
	for _, o := range s.created {
		r, _ := o.rule()
		out = append(out, r)
	}
	return out, nil
}
