package qdict

import (
	"testing"
)

const sizeHint = "\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively."

// Measured through blkdebug's align option, whose "Cannot meet constraints
// with align N" error echoes the parsed value.
func TestParseSize(t *testing.T) {
	badAlign := "Parameter 'align' expects a non-negative number below 2^64" + sizeHint
	tests := []struct {
		in   string
		want uint64
		warn string
		err  string
	}{
		{in: "3", want: 3},
		{in: "4k", want: 4096},
		{in: "4K", want: 4096},
		{in: "0x3", want: 3},
		{in: "0X3", want: 3},
		{in: "0x1b", want: 0x1b}, // b is a hex digit, not a suffix
		{in: "0x1k", want: 1024, warn: "warning: Using a multiplier suffix on hex numbers is deprecated: 0x1k"},
		{in: "0x1kz", warn: "warning: Using a multiplier suffix on hex numbers is deprecated: 0x1kz", err: badAlign},
		{in: "1.5k", want: 1536},
		{in: "3.5m", want: 3670016},
		{in: "1.k", want: 1024},
		{in: "3.", want: 3},
		{in: " 3", want: 3},
		{in: "+4k", want: 4096},
		{in: "3b", want: 3},
		{in: "3B", want: 3},
		{in: "1.e", want: 1 << 60},
		{in: "1.5e", want: 1729382256910270464},
		{in: "15E", want: 17293822569102704640},
		{in: "3.99999999999999999999", want: 3},
		{in: "0.99999999999999999999k", want: 0},
		{in: "0.00048828125k", want: 1}, // 0.5 rounds up
		{in: "0.0029296875k", want: 3},
		{in: "-1", err: badAlign},
		{in: "-0", err: badAlign},
		{in: "", err: badAlign},
		{in: "1e3", err: badAlign},
		{in: "0.5", err: badAlign},
		{in: "1.5b", err: badAlign},
		{in: ".5k", err: badAlign},
		{in: "0x", err: badAlign},
		{in: "0x1.5k", err: badAlign},
		{in: "1kk", err: badAlign},
		{in: "3 ", err: badAlign},
		{in: "1.5e3", err: badAlign},
		{in: "1.5e3k", err: badAlign},
		{in: "99999999999999999999", err: "Value '99999999999999999999' is out of range for parameter 'align'"},
		{in: "-99999999999999999999", err: "Value '-99999999999999999999' is out of range for parameter 'align'"},
		{in: "99999999999999999999k", err: badAlign},
		{in: "16E", err: "Value '16E' is out of range for parameter 'align'"},
		{in: "0x10000000000000000", err: "Value '0x10000000000000000' is out of range for parameter 'align'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, warn, err := ParseSize("align", tt.in)
			if warn != tt.warn {
				t.Errorf("warning = %q, want %q", warn, tt.warn)
			}
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || v != tt.want {
				t.Fatalf("got %d, %v; want %d", v, err, tt.want)
			}
		})
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  string
	}{
		{in: "28", want: 28},
		{in: "0x1c", want: 28},
		{in: "010", want: 8}, // octal: errno=010 gives "Exec format error"
		{in: " 0x10", want: 16},
		{in: "-1", want: 1<<64 - 1},
		{in: "-0x1c", want: 1<<64 - 28},
		{in: "18446744073709551615", want: 1<<64 - 1},
		{in: "x", err: "Parameter 'errno' expects a number"},
		{in: "", err: "Parameter 'errno' expects a number"},
		{in: "08", err: "Parameter 'errno' expects a number"},
		{in: "0x", err: "Parameter 'errno' expects a number"},
		{in: "0x1c ", err: "Parameter 'errno' expects a number"},
		{in: "4k", err: "Parameter 'errno' expects a number"},
		{in: "99999999999999999999x", err: "Parameter 'errno' expects a number"},
		{in: "99999999999999999999", err: "Value '99999999999999999999' is too large for parameter 'errno'"},
		{in: "-99999999999999999999", err: "Value '-99999999999999999999' is too large for parameter 'errno'"},
	}
	for _, tt := range tests {
		v, err := ParseNumber("errno", tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || v != tt.want {
			t.Errorf("%q: got %d, %v; want %d", tt.in, v, err, tt.want)
		}
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"on": true, "yes": true, "true": true, "y": true,
		"off": false, "no": false, "false": false, "n": false} {
		if v, err := ParseBool("once", in); err != nil || v != want {
			t.Errorf("%q: %v %v", in, v, err)
		}
	}
	for _, in := range []string{"", "x", "ON", "1", "0", "Y"} {
		if _, err := ParseBool("once", in); err == nil || err.Error() != "Parameter 'once' expects 'on' or 'off'" {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestTakeGetters(t *testing.T) {
	d := FromPairs("align", "4k", "inject-error.0.once", "x", "max-transfer", "-1", "s", "str", "n", "0x10", "i", "-1")
	d.SetKind("nul", "", Null)

	if v, warn, err := d.TakeSize("align", 0); v != 4096 || warn != "" || err != nil {
		t.Errorf("TakeSize = %d %q %v", v, warn, err)
	}
	if d.Has("align") {
		t.Error("TakeSize did not consume the key")
	}
	if v, _, err := d.TakeSize("align", 7); v != 7 || err != nil {
		t.Errorf("default: %d %v", v, err)
	}
	// Messages name the last dotted component, as QEMU sees the option.
	if _, err := d.TakeBool("inject-error.0.once", false); err == nil || err.Error() != "Parameter 'once' expects 'on' or 'off'" {
		t.Errorf("TakeBool err = %v", err)
	}
	if _, _, err := d.TakeSize("max-transfer", 0); err == nil || err.Error() != "Parameter 'max-transfer' expects a non-negative number below 2^64"+sizeHint {
		t.Errorf("TakeSize err = %v", err)
	}
	if v, ok := d.TakeString("s"); v != "str" || !ok {
		t.Errorf("TakeString = %q %v", v, ok)
	}
	if v, err := d.TakeUint("n", 0); v != 16 || err != nil {
		t.Errorf("TakeUint = %d %v", v, err)
	}
	if v, err := d.TakeInt("i", 0); v != -1 || err != nil {
		t.Errorf("TakeInt = %d %v", v, err)
	}
	// A JSON null is invisible to the getters and stays behind.
	if v, err := d.TakeBool("nul", true); !v || err != nil || !d.Has("nul") {
		t.Errorf("TakeBool(null) = %v %v, present %v", v, err, d.Has("nul"))
	}
	if d.Len() != 1 {
		t.Errorf("leftover %q", d.Keys())
	}
}
