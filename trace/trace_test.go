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
}

func TestCheck(t *testing.T) {
	const (
		sub   = `{"name":"w","cat":"request","ph":"B","ts":1,"pid":2,"tid":1}`
		end   = `{"ph":"E","ts":5,"pid":2,"tid":1}`
		span  = `{"name":"write","cat":"req","ph":"b","ts":2,"pid":1,"tid":1,"id":1,"args":{"req":1}}`
		send  = `{"cat":"req","ph":"e","ts":3,"pid":1,"tid":1,"id":1}`
		child = `{"name":"write","cat":"req","ph":"b","ts":2,"pid":1,"tid":2,"id":2,"args":{"req":1,"parent":1}}`
		cend  = `{"cat":"req","ph":"e","ts":3,"pid":1,"tid":2,"id":2}`
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
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		_ = Check(evs)
	})
}

func TestAppendUint(t *testing.T) {
	for _, v := range []uint64{0, 9, 10, 99, 100, 101, 999, 1000, 12345, 99999, 100000, 1<<64 - 1} {
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
