package qdict

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"gio/internal/cutils"
)

// This file reproduces QEMU 7.2's JSON reader (qobject_from_json: the
// json-lexer state machine, the json-streamer that groups tokens until
// brackets balance, and the recursive-descent json-parser) closely enough
// that malformed json: filenames get the same error texts. encoding/json
// cannot be used for that: QEMU also accepts 'single-quoted' strings, the
// \' escape and the "modified UTF-8" NUL (\u0000 becomes C0 80), rejects
// duplicate keys, and words its errors its own way.

// maxNesting is the json-streamer's MAX_NESTING: more open brackets and
// braces than this at once is an error.
const maxNesting = 1024

type tokType uint8

const (
	tokLCurly tokType = iota
	tokRCurly
	tokLSquare
	tokRSquare
	tokComma
	tokColon
	tokInteger
	tokFloat
	tokKeyword
	tokString
)

type token struct {
	typ  tokType
	text string
}

// jkind is the type of a parsed JSON value (a QObject).
type jkind uint8

const (
	jString jkind = iota
	jNumber
	jBool
	jNull
	jObject
	jArray
)

// jvalue is a parsed JSON value. Objects keep their keys in insertion
// order because QEMU's iteration order (needed for flattening) depends on
// it for keys sharing a hash bucket.
type jvalue struct {
	kind jkind
	str  string // string value, number text (qnum_to_string), "on"/"off"
	keys []string
	obj  map[string]*jvalue
	arr  []*jvalue
}

// lexer states (json-lexer.c's IN_* states).
type lexState uint8

const (
	lxStart lexState = iota
	lxDQ
	lxDQEsc
	lxSQ
	lxSQEsc
	lxZero
	lxDigits
	lxSign
	lxMantissa
	lxMantissaDigits
	lxExpE
	lxExpSign
	lxExpDigits
	lxKeyword
)

// lexAction is what the lexer does with one input byte.
type lexAction uint8

const (
	actContinue  lexAction = iota // move to the new state, keep the byte
	actEmit                       // token complete including this byte
	actLookahead                  // token complete before this byte
	actSkip                       // white space between tokens
	actError                      // lexical error including this byte
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lexStep is the json-lexer transition table. Terminal states use every
// byte (0x00-0xFF) as lookahead, which is why "1é" lexes as "1" followed by
// a stray '\xc3'.
func lexStep(st lexState, c byte) (lexState, lexAction, tokType) {
	switch st {
	case lxStart:
		switch {
		case c == '"':
			return lxDQ, actContinue, 0
		case c == '\'':
			return lxSQ, actContinue, 0
		case c == '0':
			return lxZero, actContinue, 0
		case c >= '1' && c <= '9':
			return lxDigits, actContinue, 0
		case c == '-':
			return lxSign, actContinue, 0
		case c == '{':
			return lxStart, actEmit, tokLCurly
		case c == '}':
			return lxStart, actEmit, tokRCurly
		case c == '[':
			return lxStart, actEmit, tokLSquare
		case c == ']':
			return lxStart, actEmit, tokRSquare
		case c == ',':
			return lxStart, actEmit, tokComma
		case c == ':':
			return lxStart, actEmit, tokColon
		case c >= 'a' && c <= 'z':
			return lxKeyword, actContinue, 0
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			return lxStart, actSkip, 0
		}
	case lxDQ, lxSQ:
		quote, esc := byte('"'), lxDQEsc
		if st == lxSQ {
			quote, esc = '\'', lxSQEsc
		}
		switch {
		case c == quote:
			return lxStart, actEmit, tokString
		case c == '\\':
			return esc, actContinue, 0
		case c >= 0x20 && c <= 0xFD:
			return st, actContinue, 0
		}
	case lxDQEsc, lxSQEsc:
		if c >= 0x20 && c <= 0xFD {
			if st == lxDQEsc {
				return lxDQ, actContinue, 0
			}
			return lxSQ, actContinue, 0
		}
	case lxZero:
		switch {
		case isDigit(c):
			return lxStart, actError, 0
		case c == '.':
			return lxMantissa, actContinue, 0
		}
		return lxStart, actLookahead, tokInteger
	case lxDigits:
		switch {
		case isDigit(c):
			return lxDigits, actContinue, 0
		case c == 'e' || c == 'E':
			return lxExpE, actContinue, 0
		case c == '.':
			return lxMantissa, actContinue, 0
		}
		return lxStart, actLookahead, tokInteger
	case lxSign:
		switch {
		case c == '0':
			return lxZero, actContinue, 0
		case c >= '1' && c <= '9':
			return lxDigits, actContinue, 0
		}
	case lxMantissa:
		if isDigit(c) {
			return lxMantissaDigits, actContinue, 0
		}
	case lxMantissaDigits:
		switch {
		case isDigit(c):
			return lxMantissaDigits, actContinue, 0
		case c == 'e' || c == 'E':
			return lxExpE, actContinue, 0
		}
		return lxStart, actLookahead, tokFloat
	case lxExpE:
		switch {
		case c == '+' || c == '-':
			return lxExpSign, actContinue, 0
		case isDigit(c):
			return lxExpDigits, actContinue, 0
		}
	case lxExpSign:
		if isDigit(c) {
			return lxExpDigits, actContinue, 0
		}
	case lxExpDigits:
		if isDigit(c) {
			return lxExpDigits, actContinue, 0
		}
		return lxStart, actLookahead, tokFloat
	case lxKeyword:
		if c >= 'a' && c <= 'z' {
			return lxKeyword, actContinue, 0
		}
		return lxStart, actLookahead, tokKeyword
	}
	return lxStart, actError, 0
}

// ParseJSON parses the text of a json: filename (without the "json:"
// prefix) like QEMU 7.2's parse_json_filename: the text must hold exactly
// one JSON object, which is flattened into dotted keys as qdict_flatten
// does (nested objects "a.b", arrays "a.0"; empty objects and arrays and
// nulls stay as values of their own Kind). Numbers become QEMU's text for
// them ("28", "0.10000000000000001", "inf"), booleans "on"/"off".
//
// When a flattened key collides with another (`"x.y":1,"x":{"y":2}`) the
// value QEMU would keep wins. The result's order is the document order of
// the keys.
//
// Errors have QEMU's texts, e.g.
//
//	Could not parse the JSON options: JSON parse error, invalid keyword 'bad'
//	Could not parse the JSON options: Expecting a JSON value
//	Could not parse the JSON options: Expecting at most one JSON value
//	Invalid JSON object given
func ParseJSON(s string) (*Dict, error) {
	v, msg := parseQObject(s)
	if msg != "" {
		return nil, &Error{Msg: "Could not parse the JSON options: " + msg}
	}
	if v.kind != jObject {
		return nil, &Error{Msg: "Invalid JSON object given"}
	}
	return flatten(v), nil
}

// parseQObject is qobject_from_json: it returns the single value in s or
// QEMU's error message.
func parseQObject(s string) (*jvalue, string) {
	var (
		st       = lxStart
		tok      []byte
		group    []token
		braces   int
		brackets int
	)
	// finishGroup parses the collected tokens (json_parser_parse).
	finishGroup := func() (*jvalue, string) {
		p := &jparser{toks: group}
		v := p.value()
		group, braces, brackets = nil, 0, 0
		if p.err != "" {
			return nil, p.err
		}
		return v, ""
	}
	// addToken feeds one token to the streamer; it reports a finished
	// value or an error (done == true).
	addToken := func(t token) (v *jvalue, msg string, done bool) {
		switch t.typ {
		case tokLCurly:
			braces++
		case tokRCurly:
			braces--
		case tokLSquare:
			brackets++
		case tokRSquare:
			brackets--
		}
		if braces+brackets > maxNesting {
			return nil, "JSON nesting depth limit exceeded", true
		}
		group = append(group, t)
		if (braces > 0 || brackets > 0) && braces >= 0 && brackets >= 0 {
			return nil, "", false
		}
		v, msg = finishGroup()
		return v, msg, true
	}

	i := 0
	for ; i <= len(s); i++ {
		flush := i == len(s)
		if flush && st == lxStart {
			break
		}
		var c byte
		if !flush {
			c = s[i]
		}
		for {
			ns, act, tt := lexStep(st, c)
			consumed := act != actLookahead
			if consumed && !flush && act != actSkip {
				tok = append(tok, c)
			}
			switch act {
			case actEmit, actLookahead:
				v, msg, done := addToken(token{tt, string(tok)})
				tok = tok[:0]
				st = lxStart
				if done {
					return afterFirst(v, msg, s, i, consumed)
				}
			case actError:
				return nil, "JSON parse error, stray '" + string(tok) + "'"
			default:
				st = ns
			}
			if consumed || flush {
				break
			}
		}
	}
	// End of input: whatever is pending is parsed now.
	if len(group) > 0 {
		v, msg := finishGroup()
		if msg != "" {
			return nil, msg
		}
		return v, ""
	}
	return nil, "Expecting a JSON value"
}

// afterFirst decides the outcome once the streamer has emitted its first
// value or error. An error is final. After a value, anything but white
// space would make the streamer emit something else, which QEMU reports as
// "Expecting at most one JSON value".
func afterFirst(v *jvalue, msg, s string, i int, consumed bool) (*jvalue, string) {
	if msg != "" {
		return nil, msg
	}
	rest := s[min(i, len(s)):]
	if consumed && rest != "" {
		rest = rest[1:]
	}
	if strings.Trim(rest, " \t\r\n") != "" {
		return nil, "Expecting at most one JSON value"
	}
	return v, ""
}

// jparser is the recursive-descent json-parser over one token group. Only
// the first error is kept, as in QEMU's parse_error.
type jparser struct {
	toks []token
	pos  int
	err  string
}

func (p *jparser) fail(msg string) {
	if p.err == "" {
		p.err = "JSON parse error, " + msg
	}
}

func (p *jparser) peek() *token {
	if p.pos < len(p.toks) {
		return &p.toks[p.pos]
	}
	return nil
}

func (p *jparser) pop() *token {
	t := p.peek()
	if t != nil {
		p.pos++
	}
	return t
}

func (p *jparser) value() *jvalue {
	t := p.peek()
	if t == nil {
		p.fail("premature EOI")
		return nil
	}
	switch t.typ {
	case tokLCurly:
		return p.object()
	case tokLSquare:
		return p.array()
	case tokString:
		p.pop()
		s, ok := p.parseString(t.text)
		if !ok {
			return nil
		}
		return &jvalue{kind: jString, str: s}
	case tokInteger, tokFloat:
		p.pop()
		return &jvalue{kind: jNumber, str: numberText(t)}
	case tokKeyword:
		p.pop()
		switch t.text {
		case "true":
			return &jvalue{kind: jBool, str: "on"}
		case "false":
			return &jvalue{kind: jBool, str: "off"}
		case "null":
			return &jvalue{kind: jNull}
		}
		p.fail("invalid keyword '" + t.text + "'")
		return nil
	}
	p.fail("expecting value")
	return nil
}

func (p *jparser) object() *jvalue {
	p.pop() // '{'
	obj := &jvalue{kind: jObject, obj: map[string]*jvalue{}}
	t := p.peek()
	if t == nil {
		p.fail("premature EOI")
		return nil
	}
	if t.typ == tokRCurly {
		p.pop()
		return obj
	}
	if !p.pair(obj) {
		return nil
	}
	for {
		t = p.pop()
		if t == nil {
			p.fail("premature EOI")
			return nil
		}
		if t.typ == tokRCurly {
			return obj
		}
		if t.typ != tokComma {
			p.fail("expected separator in dict")
			return nil
		}
		if !p.pair(obj) {
			return nil
		}
	}
}

func (p *jparser) pair(obj *jvalue) bool {
	if p.peek() == nil {
		p.fail("premature EOI")
		return false
	}
	key := p.value()
	if key == nil || key.kind != jString {
		p.fail("key is not a string in object")
		return false
	}
	t := p.pop()
	if t == nil {
		p.fail("premature EOI")
		return false
	}
	if t.typ != tokColon {
		p.fail("missing : in object pair")
		return false
	}
	val := p.value()
	if val == nil {
		p.fail("Missing value in dict")
		return false
	}
	if _, dup := obj.obj[key.str]; dup {
		p.fail("duplicate key")
		return false
	}
	obj.keys = append(obj.keys, key.str)
	obj.obj[key.str] = val
	return true
}

func (p *jparser) array() *jvalue {
	p.pop() // '['
	arr := &jvalue{kind: jArray}
	t := p.peek()
	if t == nil {
		p.fail("premature EOI")
		return nil
	}
	if t.typ == tokRSquare {
		p.pop()
		return arr
	}
	for {
		v := p.value()
		if v == nil {
			p.fail("expecting value")
			return nil
		}
		arr.arr = append(arr.arr, v)
		t = p.pop()
		if t == nil {
			p.fail("premature EOI")
			return nil
		}
		if t.typ == tokRSquare {
			return arr
		}
		if t.typ != tokComma {
			p.fail("expected separator in list")
			return nil
		}
	}
}

// cvt4hex reads four hex digits at s[i:], or returns -1.
func cvt4hex(s string, i int) int {
	cp := 0
	for k := 0; k < 4; k++ {
		if i+k >= len(s) {
			return -1
		}
		d := cutils.DigitVal(s[i+k])
		if d >= 16 {
			return -1
		}
		cp = cp<<4 | d
	}
	return cp
}

// parseString decodes a string token (quotes included) like QEMU's
// parse_string, producing modified UTF-8.
func (p *jparser) parseString(tok string) (string, bool) {
	quote := tok[0]
	var b []byte
	i := 1
	for i < len(tok) && tok[i] != quote {
		if tok[i] != '\\' {
			cp, n := modUTF8Codepoint(tok[i:])
			if cp < 0 {
				p.fail("invalid UTF-8 sequence in string")
				return "", false
			}
			b = modUTF8Encode(b, cp)
			i += n
			continue
		}
		beg := i
		i++
		esc := tok[i]
		i++
		switch esc {
		case '"', '\'', '\\', '/':
			b = append(b, esc)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			cp := cvt4hex(tok, i)
			i += 4
			if cp >= 0xD800 && cp <= 0xDBFF && i+1 < len(tok) && tok[i] == '\\' && tok[i+1] == 'u' {
				cp = 0x10000 + (cp&0x3FF)<<10
				trailing := cvt4hex(tok, i+2)
				if trailing >= 0xDC00 && trailing <= 0xDFFF {
					cp |= trailing & 0x3FF
					i += 6
				} else {
					cp = -1
				}
			}
			if !validCodepoint(cp) {
				// QEMU prints the escape with %.*s, which stops at
				// the end of the token text.
				p.fail(tok[beg:min(i, len(tok))] + " is not a valid Unicode character")
				return "", false
			}
			b = modUTF8Encode(b, cp)
		default:
			p.fail("invalid escape sequence in string")
			return "", false
		}
	}
	return string(b), true
}

// validCodepoint is QEMU's is_valid_codepoint: in range, not a surrogate,
// not a noncharacter.
func validCodepoint(cp int) bool {
	if cp < 0 || cp > 0x10FFFF {
		return false
	}
	if cp >= 0xFDD0 && cp <= 0xFDEF || cp&0xFFFE == 0xFFFE {
		return false
	}
	return !(cp >= 0xD800 && cp <= 0xDFFF)
}

// modUTF8Encode appends cp in modified UTF-8 (NUL as C0 80).
func modUTF8Encode(b []byte, cp int) []byte {
	switch {
	case cp > 0 && cp <= 0x7F:
		return append(b, byte(cp))
	case cp <= 0x7FF:
		return append(b, byte(0xC0|cp>>6), byte(0x80|cp&0x3F))
	case cp <= 0xFFFF:
		return append(b, byte(0xE0|cp>>12), byte(0x80|(cp>>6)&0x3F), byte(0x80|cp&0x3F))
	}
	return append(b, byte(0xF0|cp>>18), byte(0x80|(cp>>12)&0x3F), byte(0x80|(cp>>6)&0x3F), byte(0x80|cp&0x3F))
}

// modUTF8Codepoint decodes one modified-UTF-8 sequence at the start of s
// (QEMU's mod_utf8_codepoint with n = 6). It returns the code point or -1
// and how many bytes QEMU advances past, which on error depends on where
// the sequence went wrong.
func modUTF8Codepoint(s string) (int, int) {
	if s == "" || s[0] == 0 {
		return -1, 0
	}
	c := s[0]
	switch {
	case c < 0x80:
		return int(c), 1
	case c >= 0xFE:
		return -1, 1
	case c&0x40 == 0:
		return -1, 1 // unexpected continuation byte
	}
	n := 0
	mask := byte(0x80)
	for ; c&mask != 0; mask >>= 1 {
		n++
	}
	cp := int(c & (mask - 1))
	p := 1
	for k := 1; k < n; k++ {
		var cb byte
		if k < 6 && p < len(s) {
			cb = s[p]
		}
		if cb&0xC0 != 0x80 {
			return -1, p // continuation byte missing
		}
		p++
		cp = cp<<6 | int(cb&0x3F)
	}
	minCP := [...]int{0x80, 0x800, 0x10000, 0x200000, 0x4000000}
	if !validCodepoint(cp) {
		return -1, p
	}
	if cp < minCP[n-2] && !(cp == 0 && n == 2) {
		return -1, p // overlong, except C0 80
	}
	return cp, p
}

// numberText converts a number token to the string QEMU reads back from
// it: integers that fit int64 or uint64 print in decimal, everything else
// goes through strtod and "%.17g" (with C's spelling of infinity).
func numberText(t *token) string {
	if t.typ == tokInteger {
		if v, err := strconv.ParseInt(t.text, 10, 64); err == nil {
			return strconv.FormatInt(v, 10)
		}
		if t.text[0] != '-' {
			if v, err := strconv.ParseUint(t.text, 10, 64); err == nil {
				return strconv.FormatUint(v, 10)
			}
		}
	}
	f, _ := strconv.ParseFloat(t.text, 64) // ±Inf on overflow, like strtod
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', 17, 64)
}

// qemuOrder returns an object's keys in QEMU's iteration order.
func (v *jvalue) qemuOrder() []string { return hashOrder(v.keys) }

// flatten is qdict_flatten on a parsed object, reproducing which value
// survives when flattened keys collide, followed by conversion into a Dict
// in document order.
func flatten(root *jvalue) *Dict {
	cur := make(map[string]*jvalue, len(root.keys))
	for _, k := range root.keys {
		cur[k] = root.obj[k]
	}
	nonEmpty := func(v *jvalue) bool {
		return v.kind == jObject && len(v.keys) > 0 || v.kind == jArray && len(v.arr) > 0
	}
	var into func(v *jvalue, prefix string)
	put := func(k string, v *jvalue) {
		if nonEmpty(v) {
			into(v, k)
			return
		}
		cur[k] = v
	}
	into = func(v *jvalue, prefix string) {
		if v.kind == jArray {
			for i, e := range v.arr {
				put(prefix+"."+strconv.Itoa(i), e)
			}
			return
		}
		for _, k := range v.qemuOrder() {
			put(prefix+"."+k, v.obj[k])
		}
	}
	// The root is flattened in place while being iterated: an entry is
	// processed with its value at that time, which a previous entry's
	// flattening may have overwritten.
	for _, k := range root.qemuOrder() {
		v := cur[k]
		if nonEmpty(v) {
			delete(cur, k)
			into(v, k)
		}
	}

	d := New()
	var walk func(v *jvalue, key string)
	add := func(k string) {
		if fv, ok := cur[k]; ok && !d.Has(k) {
			d.SetKind(k, fv.str, leafKind(fv))
		}
	}
	walk = func(v *jvalue, key string) {
		switch {
		case v.kind == jArray && len(v.arr) > 0:
			for i, e := range v.arr {
				walk(e, key+"."+strconv.Itoa(i))
			}
		case v.kind == jObject && len(v.keys) > 0:
			for _, k := range v.keys {
				walk(v.obj[k], key+"."+k)
			}
		default:
			add(key)
		}
	}
	for _, k := range root.keys {
		walk(root.obj[k], k)
	}
	// Anything not reached (cannot happen, but keep the result complete).
	rest := make([]string, 0)
	for k := range cur {
		if !d.Has(k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		add(k)
	}
	return d
}

func leafKind(v *jvalue) Kind {
	switch v.kind {
	case jNumber:
		return Number
	case jBool:
		return Bool
	case jNull:
		return Null
	case jObject:
		return EmptyObject
	case jArray:
		return EmptyList
	}
	return String
}
