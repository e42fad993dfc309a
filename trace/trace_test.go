package trace

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "tab\there\nnl\x00\x1f", "é ü 日本", "bad\xffutf8", "</script>"} {
		b := appendString(nil, s)
		if !json.Valid(b) {
			t.Errorf("appendString(%q) = %s: not valid JSON", s, b)
			continue
		}
		var back string
		json.Unmarshal(b, &back)
		if want := validUTF8(s); back != want {
			t.Errorf("appendString(%q) reads back as %q, want %q", s, back, want)
		}
	}
}

// validUTF8 replaces each byte of invalid UTF-8 with U+FFFD.
func validUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b\\c\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil || back != validUTF8(s) {
			t.Fatalf("appendString(%q) = %s (%v)", s, b, err)
		}
	})
}

func TestAppendMicros(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{0, "0.000"}, {1, "0.001"}, {999, "0.999"}, {1000, "1.000"}, {103815, "103.815"}, {100 * time.Millisecond, "100000.000"}, {-1500, "-1.500"}} {
		if got := string(appendMicros(nil, tc.d)); got != tc.want {
			t.Errorf("appendMicros(%d) = %s, want %s", tc.d, got, tc.want)
		}
	}
	// The word-at-a-time rendering against the long one, across
	// digit counts.
	for e := time.Duration(1); e < 1e13; e *= 10 {
		for _, d := range []time.Duration{e - 1, e, e + 1, 3 * e, 9*e + 7, -e} {
			b := make([]byte, 1, 64)
			if got, want := string(appendMicros(b, d)), string(appendMicrosLong([]byte{0}, d)); got != want {
				t.Errorf("appendMicros(%d) = %q, want %q", d, got, want)
			}
		}
	}
}

func TestCheck(t *testing.T) {
	const (
		sub   = `{"name":"w","cat":"request","ph":"B","ts":1,"pid":2,"tid":1}`
		end   = `{"ph":"E","ts":5,"pid":2,"tid":1}`
		span  = `{"name":"write","cat":"req","ph":"b","ts":2,"pid":1,"tid":1,"id":1,"args":{"req":1}}`
		send  = `{"cat":"req","ph":"e","ts":3,"pid":1,"tid":1,"id":1}`
		child = `{"name":"write","cat":"req","ph":"b","ts":2,"pid":1,"tid":2,"id":2,"args":{"req":1,"parent":1}}`
		cend  = `{"cat":"req","ph":"e","ts":3,"pid":1,"tid":2,"id":2}`
		// On the request's lane, from 2 to 3, before the end at 5.
		yieldX = `{"name":"waits for I/O","cat":"yield","ph":"X","ts":2,"dur":1,"pid":2,"tid":1}`
	)
	for _, tc := range []struct {
		name, trace, want string
	}{
		{"good", strings.Join([]string{sub, span, send, end}, "\n"), ""},
		{"no end", strings.Join([]string{sub, span, send}, "\n"), "1 slices never end"},
		{"span no end", strings.Join([]string{sub, span, end}, "\n"), "span req/1 never ends"},
		{"end no begin", strings.Join([]string{end}, "\n"), "end without begin"},
		{"backwards", strings.Join([]string{sub, span, strings.Replace(send, `"ts":3`, `"ts":1`, 1), end}, "\n"), "before 2.000"},
		{"child", strings.Join([]string{sub, span, child, cend, send, end}, "\n"), ""},
		// A yield with nothing inside it is one complete slice; what
		// follows on its lane comes no earlier than its end.
		{"complete", strings.Join([]string{sub, span, yieldX, send, end}, "\n"), ""},
		{"complete backwards", strings.Join([]string{sub, span, strings.Replace(yieldX, `"dur":1`, `"dur":3.5`, 1), send, end}, "\n"), "ts 5.000 before 5.500"},
		{"complete negative", strings.Join([]string{sub, strings.Replace(yieldX, `"dur":1`, `"dur":-1`, 1), end}, "\n"), "negative duration"},
		{"complete outside", strings.Join([]string{yieldX}, "\n"), "slice outside its request"},
		// A folded chain (Writer's chain) reads as begins and ends.
		{"folded", strings.Join([]string{
			`{"name":"w","cat":"request","ph":"X","ts":1,"dur":4,"pid":2,"tid":1}`,
			`{"name":"write","cat":"req","ph":"X","ts":2,"dur":1,"pid":1,"tid":1,"id":1,"args":{"req":1}}`,
			`{"name":"write","cat":"req","ph":"X","ts":2,"dur":1,"pid":1,"tid":2,"id":2,"args":{"req":1,"parent":1}}`,
			yieldX}, "\n"), ""},
		{"folded bad parent", strings.Join([]string{
			`{"name":"w","cat":"request","ph":"X","ts":1,"dur":4,"pid":2,"tid":1}`,
			`{"name":"write","cat":"req","ph":"X","ts":2,"dur":1,"pid":1,"tid":2,"id":2,"args":{"req":1,"parent":1}}`}, "\n"),
			"parent span 1 does not exist"},
		{"folded backwards", strings.Join([]string{
			`{"name":"w","cat":"request","ph":"X","ts":1,"dur":4,"pid":2,"tid":1}`,
			`{"name":"w","cat":"request","ph":"B","ts":3,"pid":2,"tid":1}`, `{"ph":"E","ts":3,"pid":2,"tid":1}`}, "\n"),
			"ts 3.000 before 5.000"},
		// Traces written before 2026-12-02 repeated the id as "span"
		// and wrote "parent":0 and named ends.
		{"old format", strings.Join([]string{sub,
			`{"name":"write","cat":"req","ph":"b","ts":2,"pid":1,"tid":1,"id":1,"args":{"req":1,"span":1,"parent":0}}`,
			`{"name":"write","cat":"req","ph":"b","ts":2,"pid":1,"tid":2,"id":2,"args":{"req":1,"span":2,"parent":1}}`,
			`{"name":"","cat":"req","ph":"e","ts":3,"pid":1,"tid":2,"id":2}`, send,
			`{"name":"","cat":"request","ph":"E","ts":5,"pid":2,"tid":1}`}, "\n"), ""},
		{"bad parent", strings.Join([]string{sub, strings.Replace(child, `"parent":1`, `"parent":7`, 1), cend, end}, "\n"), "parent span 7 does not exist"},
		{"unknown request", strings.Join([]string{strings.Replace(span, `"req":1`, `"req":9`, 1), send}, "\n"), "request #9 was never submitted"},
		{"flow without start", strings.Join([]string{sub, `{"name":"w","cat":"wait","ph":"f","ts":2,"pid":2,"tid":1,"id":3,"bp":"e"}`, end}, "\n"), "flow 3 ends without a start"},
		{"wait unknown", strings.Join([]string{sub, `{"name":"wait","ph":"i","ts":2,"pid":1,"tid":1,"args":{"req":1,"waits_for":4}}`, end}, "\n"), "request #4 that was never submitted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := Read(strings.NewReader(tc.trace))
			if err != nil {
				t.Fatal(err)
			}
			err = Check(evs)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestReadForms(t *testing.T) {
	ev := `{"name":"x","ph":"i","ts":1.5,"pid":1,"tid":2,"args":{"k":"v"}}`
	for _, tc := range []struct{ name, in string }{
		{"array", "[\n" + ev + ",\n" + ev + "\n]\n"},
		{"array cut short", "[\n" + ev + ",\n" + ev + "\n"},
		{"object", `{"traceEvents":[` + ev + "," + ev + `]}`},
		{"lines", ev + "\n\n" + ev + "\n"},
	} {
		evs, err := Read(strings.NewReader(tc.in))
		if err != nil || len(evs) != 2 || evs[1].Arg("k") != "v" || evs[0].Ts != 1.5 {
			t.Errorf("%s: Read = %+v, %v", tc.name, evs, err)
		}
	}
	for _, in := range []string{"", "x", "[{]", "[" + ev + "] junk", "{\"name\":1}\n", ev + "\n{", "[1]"} {
		if _, err := Read(strings.NewReader(in)); err == nil {
			t.Errorf("Read(%q) succeeded", in)
		}
	}
}

// FuzzRead: no input makes Read panic, and what it accepts Check can
// judge and Write's reader round-trips as JSON.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`[{"name":"x","ph":"B","ts":0,"pid":2,"tid":1}]`))
	f.Add([]byte(`{"name":"x","ph":"b","cat":"req","id":"1","ts":0,"pid":1,"tid":1,"args":{"parent":3}}` + "\n"))
	f.Add([]byte(`{"traceEvents":[]}`))
	f.Add([]byte(`{"name":"y","cat":"yield","ph":"X","ts":1e305,"dur":-1e308,"pid":2,"tid":1}` + "\n"))
	f.Add([]byte(`{"name":"w","cat":"request","ph":"X","ts":1,"dur":4,"pid":2,"tid":1,"args":{"yield":"waits for I/O"}}` + "\n" +
		`{"name":"write","cat":"req","ph":"X","ts":1,"dur":4,"pid":1,"tid":1,"id":1,"args":{"req":1}}` + "\n"))
	f.Add([]byte(`{"name":"w","cat":"request","ph":"X","ts":1,"dur":4,"pid":2,"tid":1}` + "\n" +
		`{"name":"thread_name","ph":"M","ts":0,"pid":1,"tid":1,"args":{"name":"raw"}}` + "\n" +
		`{"name":"write","cat":"req","ph":"X","ts":2,"dur":1,"pid":1,"tid":1,"id":1,"args":{"req":1}}` + "\n" +
		`{"name":"waits for I/O","cat":"yield","ph":"X","ts":2,"dur":1,"pid":2,"tid":1}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		_ = Check(evs)
	})
}

func TestAppendUint(t *testing.T) {
	vals := []uint64{0, 12345, 1<<64 - 1}
	for p := uint64(10); p <= 1e19; p *= 10 { // every digit count, both sides
		vals = append(vals, p-1, p, p+1)
	}
	for i := range 64 {
		vals = append(vals, 1<<i, 1<<i-1)
	}
	for _, v := range vals {
		for _, pre := range [][]byte{nil, []byte("x"), make([]byte, 3, 4)} {
			want := strconv.AppendUint(append([]byte(nil), pre...), v, 10)
			if got := appendUint(append(pre[:len(pre):len(pre)], nil...), v); !bytes.Equal(got, want) {
				t.Errorf("appendUint(%q, %d) = %q, want %q", pre, v, got, want)
			}
			if got := appendUint(pre, v); !bytes.Equal(got, want) {
				t.Errorf("appendUint(%q (cap %d), %d) = %q, want %q", pre, cap(pre), v, got, want)
			}
		}
	}
}

// TestPlainPrefix checks the word-at-a-time scan against the byte loop:
// every byte value at every position of strings of 0 to 20 bytes.
func TestPlainPrefix(t *testing.T) {
	for n := 0; n <= 20; n++ {
		for pos := 0; pos < max(n, 1); pos++ {
			for c := 0; c < 256; c++ {
				b := []byte(strings.Repeat("a", n))
				if n > 0 {
					b[pos] = byte(c)
				}
				s := string(b)
				want := 0
				for want < len(s) && plainByte[s[want]] {
					want++
				}
				if got := plainPrefix(s); got != want {
					t.Fatalf("plainPrefix(%q) = %d, want %d", s, got, want)
				}
			}
		}
	}
}

// TestStepDecimal checks the in-place step of request and span numbers
// against strconv, across the carries.
func TestStepDecimal(t *testing.T) {
	var d decimal
	for v := 1; v <= 10001; v++ {
		d.set(v)
		if string(d.p.bytes()) != strconv.Itoa(v) {
			t.Fatalf("decimal after %d = %s", v, d.p.bytes())
		}
	}
	d.set(5)
	if string(d.p.bytes()) != "5" {
		t.Fatalf("decimal set back to 5 = %s", d.p.bytes())
	}
	b := []byte(`"tid":99}`)
	if stepDecimal(b, len(b)-1) || string(b) != `"tid":99}` {
		t.Errorf("stepDecimal grew or changed %s", b)
	}
	b = []byte(`"tid":109}`)
	if !stepDecimal(b, len(b)-1) || string(b) != `"tid":110}` {
		t.Errorf("stepDecimal = %s", b)
	}
}

// TestAppendHex checks the two-digits-a-step hex rendering against
// strconv, across digit counts.
func TestAppendHex(t *testing.T) {
	for _, v := range []uint64{0, 1, 0xf, 0x10, 0xff, 0x100, 0x1000, 0xabcde, 0x9a9a9a9, 0xfedcba98, 0x10000000, 1 << 32, 0x7fffffffffffffff, 1<<64 - 1} {
		for _, w := range []uint64{v, v + 1, v - 1} {
			for _, c := range []int{1, 64} { // no room, and room for a word
				b := append(make([]byte, 0, c), 'x')
				if got, want := string(appendHex(b, w)), "x"+strconv.FormatUint(w, 16); got != want {
					t.Errorf("appendHex(%#x) = %s, want %s", w, got, want)
				}
			}
		}
	}
}

// TestTable checks the tables of open requests and spans against a map,
// over numbers that share slots.
func TestTable(t *testing.T) {
	var tb table[int]
	want := map[int]int{}
	r := uint64(1)
	for i := range 20000 {
		r = r*6364136223846793005 + 1442695040888963407
		k := int(r>>33) % 300
		switch r >> 62 {
		case 0:
			tb.del(k)
			delete(want, k)
		default:
			tb.set(k, i)
			want[k] = i
		}
		w, present := want[k]
		if v, ok := tb.get(k); v != w || ok != present {
			t.Fatalf("step %d: get(%d) = %d, %v; want %d", i, k, v, ok, want[k])
		}
	}
	keys := tb.ids()
	if len(keys) != len(want) {
		t.Fatalf("ids: %d keys, want %d", len(keys), len(want))
	}
	for i, k := range keys {
		if _, ok := want[k]; !ok || i > 0 && keys[i-1] >= k {
			t.Fatalf("ids = %v", keys)
		}
	}
}
