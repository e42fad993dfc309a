package blkdebug

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gio/blk"
)

// configCases are config files and what qemu-io 7.2 makes of them: the
// open error (without "can't open device ...: "), or the rules, printed
// in canonical form and separated by blank lines.
var configCases = []struct {
	name, cfg, err, rules string
}{
	{name: "empty", cfg: ""},
	{name: "comments and blank lines", cfg: "# c\n\n#[foo]\n"},
	{name: "unknown group", cfg: "[foo]\n", err: "There is no option group 'foo'"},
	{name: "group not trimmed", cfg: "[ inject-error ]\n", err: "There is no option group ' inject-error '"},
	{name: "unterminated group", cfg: "[inject-error\nevent = \"read_aio\"\n", err: "There is no option group 'inject-error\n'"},
	{name: "group alone on its line", cfg: "[\n", err: "There is no option group '\n'"},
	{name: "empty id", cfg: "[inject-error \"\"]\nevent = \"read_aio\"\n", err: "There is no option group 'inject-error \"\"'"},
	{name: "no spaces around =", cfg: "[inject-error]\nevent=\"read_aio\"\n", err: "Invalid parameter 'event=\"read_aio\"'"},
	{name: "unquoted is empty", cfg: "[inject-error]\nevent = read_aio\n", err: "invalid parameter value: "},
	{name: "unquoted number", cfg: "[inject-error]\nerrno = 5\nevent = \"read_aio\"\n", err: "Parameter 'errno' expects a number"},
	{name: "key before group", cfg: "event = \"read_aio\"\n", err: "no group defined"},
	{name: "indented group is a key", cfg: "  [inject-error]\nevent = \"read_aio\"\n", err: "no group defined"},
	{name: "indented comment is a key", cfg: " # comment\n[inject-error]\nevent = \"read_aio\"\n", err: "no group defined"},
	{name: "unknown key", cfg: "[inject-error]\nbogus = \"1\"\n", err: "Invalid parameter 'bogus'"},
	{name: "lone equals", cfg: "[inject-error]\n  = \"x\"\n", err: "Invalid parameter '='"},
	{name: "blank line with tab", cfg: "\t\n[inject-error]\nevent = \"read_aio\"\n", err: "parse error"},
	{name: "blank line with spaces", cfg: "[inject-error]\n  \nevent = \"read_aio\"\n", err: "parse error"},
	{name: "unterminated value keeps the newline", cfg: "[inject-error]\nevent = \"read_aio\n", err: "invalid parameter value: read_aio\n"},
	{name: "empty value", cfg: "[inject-error]\nevent = \"\"\n", err: "invalid parameter value: "},
	{name: "missing event", cfg: "[inject-error]\n", err: "Missing event name for rule"},
	{name: "missing event in set-state", cfg: "[set-state]\n", err: "Missing event name for rule"},
	{name: "bad new_state", cfg: "[inject-error]\nevent = \"read_aio\"\n[set-state]\nevent = \"read_aio\"\nnew_state = \"x\"\n", err: "Parameter 'new_state' expects a number"},
	{name: "stray [] renames the last group", cfg: "[inject-error]\nevent = \"read_aio\"\n[]\n", err: "There is no option group ']'"},
	{name: "bad key in an earlier section", cfg: "[inject-error]\nevent = \"read_aio\"\n\n[set-state]\nevent = \"bogus\"\n[inject-error]\nevent=\"x\"\n", err: "Invalid parameter 'event=\"x\"'"},
	{name: "inject-error events are checked first", cfg: "[inject-error]\nevent = \"write_aio\"\n[set-state]\nevent = \"bogus\"\n[inject-error]\nevent = \"x\"\n", err: "invalid parameter value: x"},
	{name: "hash order picks once", cfg: "[inject-error]\nevent = \"read_aio\"\nstate = \"x\"\nonce = \"x\"\n", err: "Parameter 'once' expects 'on' or 'off'"},
	{name: "bool y", cfg: "[inject-error]\nevent = \"read_aio\"\nonce = \"y\"\n", rules: "[inject-error]\nevent = \"read_aio\"\nonce = \"on\""},
	{name: "bool Y", cfg: "[inject-error]\nevent = \"read_aio\"\nonce = \"Y\"\n", err: "Parameter 'once' expects 'on' or 'off'"},
	{name: "case-sensitive event", cfg: "[inject-error]\nevent = \"READ_AIO\"\n", err: "invalid parameter value: READ_AIO"},
	{name: "bad iotype", cfg: "[inject-error]\nevent = \"read_aio\"\niotype = \"x\"\n", err: "invalid parameter value: x"},
	{name: "set-state has no errno", cfg: "[set-state]\nevent = \"read_aio\"\nerrno = \"5\"\n", err: "Invalid parameter 'errno'"},
	{name: "duplicate id", cfg: "[inject-error \"a\"]\nevent = \"read_aio\"\n[inject-error \"a\"]\nevent = \"read_aio\"\n", err: "Duplicate ID 'a' for inject-error"},
	{name: "bad id", cfg: "[inject-error \"1a\"]\nevent = \"read_aio\"\n",
		err: "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter."},
	{name: "id key", cfg: "[inject-error]\nid = \"1a\"\nevent = \"read_aio\"\n",
		err: "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter."},
	{name: "too large", cfg: "[inject-error]\nevent = \"read_aio\"\nerrno = \"18446744073709551616\"\n", err: "Value '18446744073709551616' is too large for parameter 'errno'"},
	{name: "junk after number", cfg: "[inject-error]\nevent = \"read_aio\"\nsector = \"5 \"\n", err: "Parameter 'sector' expects a number"},

	{name: "reference example", cfg: "# rules.cfg\n[set-state]\nevent = \"write_aio\"\nstate = \"1\"\nnew_state = \"2\"\n\n[inject-error]\nevent = \"write_aio\"\nstate = \"2\"\nerrno = \"5\"\nonce = \"on\"\n",
		rules: "[set-state]\nevent = \"write_aio\"\nstate = \"1\"\nnew_state = \"2\"\n\n[inject-error]\nevent = \"write_aio\"\nstate = \"2\"\nonce = \"on\""},
	{name: "last value wins", cfg: "[inject-error]\nevent = \"read_aio\"\nevent = \"write_aio\"\n", rules: "[inject-error]\nevent = \"write_aio\""},
	{name: "junk after value, CRLF", cfg: "[inject-error]\r\n  event = \"read_aio\" junk\r\n", rules: "[inject-error]\nevent = \"read_aio\""},
	{name: "tabs and wide spaces", cfg: "[inject-error]\nevent\t=\t\"read_aio\"\nerrno  =  \"28\"\n", rules: "[inject-error]\nevent = \"read_aio\"\nerrno = \"28\""},
	{name: "junk after group", cfg: "[inject-error] x\nevent = \"read_aio\"\n", rules: "[inject-error]\nevent = \"read_aio\""},
	{name: "ids", cfg: "[inject-error \"inject-error.0\"]\nevent = \"write_aio\"\n[set-state \"s\"]\nevent = \"none\"\nnew_state = \"3\"\n",
		rules: "[inject-error]\nevent = \"write_aio\"\n\n[set-state]\nevent = \"none\"\nnew_state = \"3\""},
	{name: "numbers wrap and truncate", cfg: "[inject-error]\nevent = \"read_aio\"\nerrno = \"-5\"\nstate = \"4294967298\"\nsector = \"010\"\n",
		rules: "[inject-error]\nevent = \"read_aio\"\nstate = \"2\"\nerrno = \"-5\"\nsector = \"8\""},
	{name: "sector -1 is any", cfg: "[inject-error]\nevent = \"read_aio\"\nsector = \"-1\"\n", rules: "[inject-error]\nevent = \"read_aio\""},
	{name: "hex, plus, leading space", cfg: "[inject-error]\nevent = \"read_aio\"\nerrno = \" +0x1c\"\niotype = \"block-status\"\nimmediately = \"true\"\n",
		rules: "[inject-error]\nevent = \"read_aio\"\nerrno = \"28\"\nimmediately = \"on\"\niotype = \"block-status\""},
	{name: "key of 63 characters then =", cfg: "[inject-error]\n" + strings.Repeat("a", 63) + "= \"x\"\n", err: "Invalid parameter '" + strings.Repeat("a", 63) + "'"},
	{name: "key longer than 63", cfg: "[inject-error]\n" + strings.Repeat("a", 70) + " = \"x\"\n", err: "Invalid parameter '" + strings.Repeat("a", 63) + "'"},
	{name: "long line is read in pieces", cfg: "[inject-error]\nevent = \"read_aio\"" + strings.Repeat(" ", 1100) + "x\n", err: "Invalid parameter 'x'"},
}

func TestParseConfig(t *testing.T) {
	for _, tc := range configCases {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := ParseConfig([]byte(tc.cfg))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("ParseConfig(%q) error = %v, want %q", tc.cfg, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig(%q): %v", tc.cfg, err)
			}
			got := strings.TrimSuffix(FormatConfig(rules), "\n")
			if got != tc.rules {
				t.Errorf("ParseConfig(%q) =\n%s\nwant\n%s", tc.cfg, got, tc.rules)
			}
		})
	}
}

// TestConfigAgainstQemu checks the table against qemu-io itself, when it
// is installed: the error message, or that the open succeeds.
func TestConfigAgainstQemu(t *testing.T) {
	q := needQemu(t)
	dir := t.TempDir()
	img := q.image(t, dir, 1<<20)
	for _, tc := range configCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "rules.cfg")
			if err := os.WriteFile(cfg, []byte(tc.cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			spec := "blkdebug:" + cfg + ":" + img
			stderr := q.run(t, "-f", "raw", spec, "-c", "quit")
			want := ""
			if tc.err != "" {
				want = "qemu-io: can't open device " + spec + ": " + tc.err + "\n"
			}
			if stderr != want {
				t.Errorf("qemu-io says %q, table says %q", stderr, want)
			}
		})
	}
}

type qemu struct{ path string }

func needQemu(t *testing.T) qemu {
	t.Helper()
	if testing.Short() {
		t.Skip("comparison with qemu-io skipped in short mode")
	}
	p, err := exec.LookPath("qemu-io")
	if err != nil {
		t.Skip("qemu-io not installed")
	}
	return qemu{p}
}

func (q qemu) image(t *testing.T, dir string, size int64) string {
	p := filepath.Join(dir, "img.raw")
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs qemu-io and returns its stderr.
func (q qemu) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(q.path, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	_ = cmd.Run()
	return stderr.String()
}

// roundTripRules covers every field and the extremes of each type.
var roundTripRules = []Rule{
	NewInjectError(blk.EvReadAIO),
	{Event: blk.EvWriteAIO, Action: InjectError, State: -3, Errno: -5, Sector: 1<<54 + 1, Once: true, Immediately: true, IOTypeMask: MaskOf(IOWriteZeroes)},
	{Event: blk.EvNone, Action: InjectError, Errno: 0, Sector: 0, IOTypeMask: MaskOf(IOBlockStatus)},
	{Event: blk.EvFlushToDisk, Action: InjectError, Errno: 2147483647, Sector: -1 << 63, IOTypeMask: MaskOf(IOFlush)},
	NewSetState(blk.EvPwritevRMWAfterTail, 0, 0),
	NewSetState(blk.EvClusterAllocSpace, -2147483648, 2147483647),
}

func TestRuleRoundTrip(t *testing.T) {
	for _, r := range roundTripRules {
		got, err := ParseConfig([]byte(r.String()))
		if err != nil {
			t.Errorf("ParseConfig(%q): %v", r, err)
			continue
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], r) {
			t.Errorf("ParseConfig(%q) = %+v, want %+v", r, got, r)
		}
	}
	text := FormatConfig(roundTripRules)
	got, err := ParseConfig([]byte(text))
	if err != nil || !reflect.DeepEqual(got, roundTripRules) {
		t.Errorf("ParseConfig(FormatConfig(rules)) = %+v, %v\nwant %+v", got, err, roundTripRules)
	}
}

func TestSuspendString(t *testing.T) {
	if got, want := NewSuspend(blk.EvPwritev, "A").String(), "break pwritev A"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// FuzzConfig: the parser never panics, and whatever it accepts prints
// to a config that parses back to the same rules.
func FuzzConfig(f *testing.F) {
	for _, tc := range configCases {
		f.Add([]byte(tc.cfg))
	}
	f.Add([]byte(FormatConfig(roundTripRules)))
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := ParseConfig(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseConfig(%q): empty error", data)
			}
			return
		}
		text := FormatConfig(rules)
		again, err := ParseConfig([]byte(text))
		if err != nil {
			t.Fatalf("ParseConfig(%q) = %v; printed\n%s\ndoes not parse: %v", data, rules, text, err)
		}
		if !reflect.DeepEqual(again, rules) && !(len(again) == 0 && len(rules) == 0) {
			t.Fatalf("ParseConfig(%q) = %+v; printed and parsed again: %+v", data, rules, again)
		}
	})
}
