package qdict

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Error texts measured with `qemu-io -c length 'json:TEXT'`; the part after
// "can't open device json:TEXT: ".
func TestParseJSONErrors(t *testing.T) {
	const p = "Could not parse the JSON options: "
	const pe = p + "JSON parse error, "
	tests := []struct{ in, err string }{
		{`{bad`, pe + "invalid keyword 'bad'"},
		{``, p + "Expecting a JSON value"},
		{`   `, p + "Expecting a JSON value"},
		{`{`, pe + "premature EOI"},
		{`[]`, "Invalid JSON object given"},
		{`1`, "Invalid JSON object given"},
		{`"x"`, "Invalid JSON object given"},
		{` "x" `, "Invalid JSON object given"},
		{`null`, "Invalid JSON object given"},
		{`{"a"}`, pe + "missing : in object pair"},
		{`{"a":}`, pe + "expecting value"},
		{`{"a" 1}`, pe + "missing : in object pair"},
		{`{"a":1,}`, pe + "expecting value"},
		{`{"a":1 "b":2}`, pe + "expected separator in dict"},
		{`{1:2}`, pe + "key is not a string in object"},
		{`{{}:1}`, pe + "key is not a string in object"},
		{`{"a":1}}`, p + "Expecting at most one JSON value"},
		{`{"a":1} {"b":2}`, p + "Expecting at most one JSON value"},
		{`{"a":1} x`, p + "Expecting at most one JSON value"},
		{`{"a":tru}`, pe + "invalid keyword 'tru'"},
		{`{"a":TRUE}`, pe + "stray 'T'"},
		{`{"a":"\x"}`, pe + "invalid escape sequence in string"},
		{`{"a":"\u00"}`, pe + `\u00" is not a valid Unicode character`},
		{`{"a":"\u12"}`, pe + `\u12" is not a valid Unicode character`},
		{`{"a":"\ud83d"}`, pe + `\ud83d is not a valid Unicode character`},
		{`{"a":"\ud83d\u0041"}`, pe + `\ud83d is not a valid Unicode character`},
		{`{"a":"\uFFFF"}`, pe + `\uFFFF is not a valid Unicode character`},
		{`{"a":"abc`, pe + `stray '"abc'`},
		{"{\"a\":\"x\t\"}", pe + "stray '\"x\t'"},
		{`{"a":01}`, pe + "stray '01'"},
		{`{"a":-01}`, pe + "stray '-01'"},
		{`{"a":-}`, pe + "stray '-}'"},
		{`{"a":1.}`, pe + "stray '1.}'"},
		{`{"a":1e}`, pe + "stray '1e}'"},
		{`{"a":1é}`, pe + "stray '\xc3'"},
		{`{"a":tré}`, pe + "stray '\xc3'"},
		{`{"a":1.é}`, pe + "stray '1.\xc3'"},
		{`{"a":0e5}`, pe + "expected separator in dict"},
		{`{"a":[1,]}`, pe + "expecting value"},
		{`{"a":[1 2]}`, pe + "expected separator in list"},
		{`{"a":[}]}`, pe + "expecting value"},
		{`{"a":1]`, pe + "expected separator in dict"},
		{`]`, pe + "expecting value"},
		{`{"a":@}`, pe + "stray '@'"},
		{`{"a":%d}`, pe + "stray '%'"},
		{`{"a":tru, @}`, pe + "stray '@'"},
		{`{"driver":"raw","driver":"file"}`, pe + "duplicate key"},
		{`{"a":'it''s'}`, pe + "expected separator in dict"},
		{`json:{}`, pe + "invalid keyword 'json'"},
		{"[" + strings.Repeat("[", 1024) + strings.Repeat("]", 1025), p + "JSON nesting depth limit exceeded"},
		{`{"a":` + strings.Repeat("[", 1024) + strings.Repeat("]", 1024) + "}", p + "JSON nesting depth limit exceeded"},
	}
	for _, tt := range tests {
		d, err := ParseJSON(tt.in)
		if err == nil || err.Error() != tt.err {
			t.Errorf("%q: got %v, %v; want %q", tt.in, d, err, tt.err)
		}
	}
	// 1024 levels are still fine.
	if _, err := ParseJSON(`{"a":` + strings.Repeat("[", 1023) + strings.Repeat("]", 1023) + "}"); err != nil {
		t.Errorf("depth 1024: %v", err)
	}
}

func TestParseJSON(t *testing.T) {
	type kv struct {
		key, val string
		kind     Kind
	}
	tests := []struct {
		in   string
		want []kv
	}{
		{`{}`, nil},
		{`  {"driver":"null-co"}  `, []kv{{"driver", "null-co", String}}},
		{`{"driver":"raw","file":{"driver":"blkdebug","image":{"driver":"file","filename":"img.raw"},"inject-error":[{"event":"read_aio","errno":28}]}}`,
			[]kv{{"driver", "raw", String}, {"file.driver", "blkdebug", String}, {"file.image.driver", "file", String},
				{"file.image.filename", "img.raw", String}, {"file.inject-error.0.event", "read_aio", String},
				{"file.inject-error.0.errno", "28", Number}}},
		{`{"errno":"28"}`, []kv{{"errno", "28", String}}},
		// Number texts checked via blkdebug's "invalid parameter value: X".
		{`{"a":0.1,"b":1.5,"c":1e400,"d":-0,"e":-0.0,"f":1E3,"g":1e-7}`, []kv{{"a", "0.10000000000000001", Number},
			{"b", "1.5", Number}, {"c", "inf", Number}, {"d", "0", Number}, {"e", "-0", Number}, {"f", "1000", Number},
			{"g", "9.9999999999999995e-08", Number}}},
		{`{"a":18446744073709551615,"b":18446744073709551616,"c":-9223372036854775809,"d":1e22,"e":1e16,"f":1e17,"g":-1e400}`,
			[]kv{{"a", "18446744073709551615", Number}, {"b", "1.8446744073709552e+19", Number},
				{"c", "-9.2233720368547758e+18", Number}, {"d", "1e+22", Number}, {"e", "10000000000000000", Number},
				{"f", "1e+17", Number}, {"g", "-inf", Number}}},
		{`{"t":true,"f":false,"n":null,"o":{},"l":[]}`, []kv{{"t", "on", Bool}, {"f", "off", Bool},
			{"n", "", Null}, {"o", "", EmptyObject}, {"l", "", EmptyList}}},
		{`{"x":[[1]],"y":{"z":{}},"w":[{}]}`, []kv{{"x.0.0", "1", Number}, {"y.z", "", EmptyObject}, {"w.0", "", EmptyObject}}},
		{`{"s":"\u0000x","e":"\u00e9\t","p":"\ud83d\ude00","q":"\/\b\'","r":"é"}`, []kv{{"s", "\xc0\x80x", String},
			{"e", "é\t", String}, {"p", "😀", String}, {"q", "/\b'", String}, {"r", "é", String}}},
		{`{'a':'sq"\''}`, []kv{{"a", `sq"'`, String}}},
		// Flattened keys beat a flat key with the same name.
		{`{"x.y":1,"x":{"y":2}}`, []kv{{"x.y", "2", Number}}},
		{`{"x":{"y":2},"x.y":1}`, []kv{{"x.y", "2", Number}}},
	}
	for _, tt := range tests {
		d, err := ParseJSON(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		var got []kv
		for _, k := range d.Keys() {
			v, kind, _ := d.Lookup(k)
			got = append(got, kv{k, v, kind})
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q:\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestFlattenCollisionOrder(t *testing.T) {
	// When two nested objects produce the same key, QEMU's hash-table
	// iteration order decides which is written last. Measured with
	// blkdebug, whose "invalid parameter value: X" names the survivor:
	// "0" (bucket 110) is flattened before "0.event" (bucket 384), and
	// "inject-error" (100) before "inject-error.0" (174).
	tests := []struct{ in, want string }{
		{`{"inject-error":{"0.event":"bogus1","0":{"event":"bogus2"}}}`, "bogus1"},
		{`{"inject-error":{"0":{"event":"bogus2"},"0.event":"bogus1"}}`, "bogus1"},
		{`{"inject-error.0":{"event":"bogus"},"inject-error":{"0.event":"read_aio"}}`, "bogus"},
		{`{"inject-error":{"0.event":"read_aio"},"inject-error.0":{"event":"bogus"}}`, "bogus"},
		{`{"inject-error.0.event":"bogus","inject-error":[{"event":"read_aio"}]}`, "read_aio"},
	}
	for _, tt := range tests {
		d, err := ParseJSON(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := d.Get("inject-error.0.event"); v != tt.want || d.Len() != 1 {
			t.Errorf("%s: got %q, want %s", tt.in, pairs(d), tt.want)
		}
	}
}

// FuzzParseJSON checks that the parser never panics, that success means
// an object, and that rendering the result works.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{
		`{"driver":"raw","file":{"driver":"blkdebug","image":{"driver":"file","filename":"img.raw"},"inject-error":[{"event":"read_aio","errno":28}]}}`,
		`{bad`, `{"a":"\ud83d\ude00\u0000"}`, `{'a':[1.5e3,-0,{}]}`, `{"a":1} x`, `{"a":"\u00`, `{"x.y":1,"x":{"y":2}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseJSON(s)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "Could not parse the JSON options: ") && msg != "Invalid JSON object given" {
				t.Fatalf("odd error %q", msg)
			}
			return
		}
		_ = d.JSON()
		_ = d.String()
		_ = d.HashOrderKeys()
	})
}

// FuzzParseJSONDifferential compares with encoding/json on the inputs where
// QEMU's dialect and standard JSON agree: printable ASCII without single
// quotes or \u escapes. There, QEMU accepts exactly the valid objects,
// except for duplicate keys, nesting deeper than 1024 and numbers like
// "0e5" (a zero directly followed by an exponent), which it rejects.
func FuzzParseJSONDifferential(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":-0.5E+3}],"c":"x\\n"}`, `{"a":0e5}`, `{"a":1,"a":2}`, `{"a" : [ ] }`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '\'' || c >= 0x7f || c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				return
			}
		}
		if strings.Contains(s, `\u`) {
			return
		}
		_, err := ParseJSON(s)
		valid := json.Valid([]byte(s))
		if err == nil && !valid {
			t.Fatalf("accepted invalid JSON %q", s)
		}
		if err != nil && valid && strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "{") && stdAgrees(s) {
			t.Fatalf("rejected valid JSON %q: %v", s, err)
		}
	})
}

// stdAgrees reports whether a valid JSON text avoids the constructs QEMU
// rejects although they are valid JSON.
func stdAgrees(s string) bool {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	type level struct {
		obj   bool
		keys  map[string]bool
		atKey bool
	}
	var stack []*level
	for {
		tok, err := dec.Token()
		if err != nil {
			return true // io.EOF: the whole text was seen
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.obj && top.atKey
		if top != nil && top.obj {
			top.atKey = !top.atKey
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, &level{obj: v == '{', keys: map[string]bool{}, atKey: true})
				if len(stack) > maxNesting {
					return false
				}
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if isKey {
				if top.keys[v] {
					return false
				}
				top.keys[v] = true
			}
		case json.Number:
			n := strings.TrimPrefix(string(v), "-")
			if len(n) > 1 && n[0] == '0' && (n[1] == 'e' || n[1] == 'E') {
				return false
			}
		}
	}
}
