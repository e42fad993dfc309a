package qdict

import (
	"reflect"
	"strings"
	"testing"
)

// Expectations measured with qemu-io 7.2 (--image-opts STRING and
// open -o STRING); see the package documentation.

func pairs(d *Dict) []string {
	var out []string
	for _, k := range d.Keys() {
		v, _, _ := d.Lookup(k)
		out = append(out, k+"="+v)
	}
	return out
}

func TestParseKeyValue(t *testing.T) {
	w := func(name, use string) string {
		return "warning: short-form boolean option '" + name + "' deprecated\nPlease use " + use + " instead"
	}
	tests := []struct {
		in       string
		want     []string
		warnings []string
		err      string
	}{
		{in: "", want: nil},
		{in: "driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.align=4096",
			want: []string{"driver=raw", "file.driver=blkdebug", "file.image.filename=img.raw", "file.align=4096"}},
		{in: "img.raw", want: []string{"img.raw=on"}, warnings: []string{w("img.raw", "img.raw=on")}},
		{in: "nofoo", want: []string{"foo=off"}, warnings: []string{w("nofoo", "foo=off")}},
		{in: "no", want: []string{"=off"}, warnings: []string{w("no", "=off")}},
		{in: ",", want: []string{"=on"}, warnings: []string{w("", "=on")}},
		{in: ",,", want: []string{"=on"}, warnings: []string{w("", "=on"), w("", "=on")}},
		{in: "=x", want: []string{"=x"}},
		{in: "=", want: []string{"="}},
		{in: "driver=raw,", want: []string{"driver=raw"}},
		{in: "driver=raw,,", want: []string{"driver=raw,"}},
		{in: "driver=raw,,,file.filename=img.raw", want: []string{"driver=raw,", "file.filename=img.raw"}},
		{in: "a=b=c", want: []string{"a=b=c"}},
		{in: "x=", want: []string{"x="}},
		{in: "driver=raw,driver=file,a=1", want: []string{"driver=file", "a=1"}},
		{in: "a,,b=c", want: []string{"a=on", "=on", "b=c"}, warnings: []string{w("a", "a=on"), w("", "=on")}},
		{in: "help", want: []string{"help=on"}},
		{in: "?", want: []string{"?=on"}},
		{in: "nohelp", want: []string{"help=off"}, warnings: []string{w("nohelp", "help=off")}},
		{in: "nodelay", want: []string{"delay=off"}, warnings: []string{w("nodelay", "nodelay=on")}},
		{in: "delay", want: []string{"delay=on"}, warnings: []string{w("delay", "nodelay=off")}},
		{in: "driver=raw,id=x", want: []string{"id=x", "driver=raw"}},
		{in: "id=a,driver=raw,id=b", want: []string{"id=a", "driver=raw"}},
		{in: "driver=raw,id", want: []string{"id=on", "driver=raw"}, warnings: []string{w("id", "id=on")}},
		{in: "driver=raw,noid", want: []string{"id=off", "driver=raw"}, warnings: []string{w("noid", "id=off")}},
		{in: "id=a.b-c_9", want: []string{"id=a.b-c_9"}},
		{in: "id=1x", err: "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter."},
		{in: "driver=raw,id=", err: "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter."},
		{in: "x,id=1", err: "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter."},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, warns, err := ParseKeyValue(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if warns != nil {
					t.Errorf("warnings with error: %q", warns)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := pairs(d); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("dict = %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(warns, tt.warnings) {
				t.Errorf("warnings = %q, want %q", warns, tt.warnings)
			}
		})
	}
}

func TestParseKeyValueNoID(t *testing.T) {
	for _, in := range []string{"id=x", "id=1", "id=x,driver=raw", "x,id=1", "noid", "a=1,id"} {
		d, warns, err := ParseKeyValueNoID(in)
		if err == nil || err.Error() != "Invalid parameter 'id'" || d != nil || warns != nil {
			t.Errorf("%q: got %v %q %v", in, d, warns, err)
		}
	}
	d, warns, err := ParseKeyValueNoID("x,driver=raw")
	if err != nil || len(warns) != 1 || d.Len() != 2 {
		t.Errorf("got %v %q %v", d, warns, err)
	}
}

func TestStringRoundTrip(t *testing.T) {
	d := FromPairs("driver", "raw", "file.filename", "a,b,,c", "", "x=y", "k", "")
	s := d.String()
	if s != "driver=raw,file.filename=a,,b,,,,c,=x=y,k=" {
		t.Fatalf("String() = %q", s)
	}
	back, warns, err := ParseKeyValue(s)
	if err != nil || warns != nil || !back.Equal(d) {
		t.Fatalf("round trip: %q %q %v", pairs(back), warns, err)
	}
}

// FuzzParseKeyValue checks that parsing never panics and that a Dict
// rendered with String parses back to itself. The fuzzer supplies keys and
// values separated by NUL bytes; keys that the syntax cannot express
// (containing ',' or '=') or that have special meaning ("id") are dropped.
func FuzzParseKeyValue(f *testing.F) {
	f.Add("driver=raw,file.filename=a,,b", "driver\x00raw\x00file.filename\x00a,b")
	f.Add("nofoo,,=x,id=a", "\x00\x00x\x00,,")
	f.Add("id=1x", "no\x00")
	f.Fuzz(func(t *testing.T, line, kv string) {
		d, warns, err := ParseKeyValue(line)
		if err == nil {
			for _, w := range warns {
				if !strings.HasPrefix(w, "warning: short-form boolean option '") {
					t.Fatalf("odd warning %q", w)
				}
			}
			// What String renders must parse back identically, unless a
			// key holds ',' or '=' or is "id".
			ok := true
			for _, k := range d.Keys() {
				if strings.ContainsAny(k, ",=") || k == "id" {
					ok = false
				}
			}
			if ok {
				back, _, err := ParseKeyValue(d.String())
				if err != nil || !back.Equal(d) {
					t.Fatalf("reparse of %q: %q vs %q (%v)", d.String(), pairs(back), pairs(d), err)
				}
			}
		}
		if _, _, err := ParseKeyValueNoID(line); err != nil && err.Error() != "Invalid parameter 'id'" {
			t.Fatalf("NoID error %v", err)
		}

		parts := strings.Split(kv, "\x00")
		built := New()
		for i := 0; i+1 < len(parts); i += 2 {
			k := parts[i]
			if strings.ContainsAny(k, ",=") || k == "id" {
				continue
			}
			built.Set(k, parts[i+1])
		}
		back, warns, err := ParseKeyValue(built.String())
		if err != nil || len(warns) != 0 || !back.Equal(built) {
			t.Fatalf("round trip of %q via %q: %q %q %v", pairs(built), built.String(), pairs(back), warns, err)
		}
	})
}
