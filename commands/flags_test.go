package commands

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"gio/blk"
)

// TestOptStrings: the option strings built from the flag lists are
// qemu-io 7.2's getopt strings (qemu-io-cmds.c), letter for letter.
func TestOptStrings(t *testing.T) {
	want := map[string]string{
		"aio_read": "CP:iqv", "aio_write": "CfiqP:uz", "create": "f:o:",
		"open": "snCro:ki:t:d:U", "reopen": "c:o:rw", "truncate": "m:",
		"read": "bCl:pP:qs:v", "readv": "CP:qv", "write": "bcCfnpP:qs:uz",
		"writev": "CfqP:", "discard": "Cq", "bench": "hc:d:f:ni:o:qs:S:t:wU",
	}
	tab := NewTable(All())
	for name, w := range want {
		c := tab.Lookup(name)
		if c == nil {
			t.Fatalf("no command %s", name)
		}
		if got := OptString(c.Flags); got != w {
			t.Errorf("%s: option string %q, want %q", name, got, w)
		}
	}
}

// TestFlagsInSynopsis: every flag shows in its command's synopsis, and
// every option argument under its name, but for qemu-io's own omissions.
func TestFlagsInSynopsis(t *testing.T) {
	omitted := map[string]bool{"open -i": true, "read -p": true, "write -p": true, "aio_read -i": true, "aio_write -i": true, "bench -h": true}
	for _, c := range All() {
		for _, f := range c.Flags {
			key := c.Name + " -" + string(f.Letter)
			if omitted[key] {
				continue
			}
			if f.Arg != "" {
				if !strings.Contains(c.Args, "-"+string(f.Letter)+" "+f.Arg) {
					t.Errorf("%s: synopsis %q lacks \"-%c %s\"", c.Name, c.Args, f.Letter, f.Arg)
				}
				continue
			}
			if !strings.Contains(flagLetters(c.Args), string(f.Letter)) {
				t.Errorf("%s: synopsis %q lacks -%c", c.Name, c.Args, f.Letter)
			}
		}
	}
}

// flagLetters collects the letters of the synopsis' flag groups
// ("[-bcCfnquz]", "(-r|-w)").
func flagLetters(syn string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(syn, func(r rune) bool { return strings.ContainsRune(" []()|", r) }) {
		if strings.HasPrefix(w, "-") && !strings.HasPrefix(w, "--") {
			b.WriteString(w[1:])
		}
	}
	return b.String()
}

// TestFlagsInHelp: every flag of a command with an extended help has
// its " -X, --" line there (qemu-io's texts are verbatim; gio's come from
// FlagHelp).
func TestFlagsInHelp(t *testing.T) {
	for _, c := range All() {
		if c.Help == "" || c.Name == "bench" { // bench's help names long options too
			continue
		}
		for _, f := range c.Flags {
			if !strings.Contains(c.Help, " -"+string(f.Letter)+", --") {
				t.Errorf("%s: help lacks -%c:\n%s", c.Name, f.Letter, c.Help)
			}
		}
	}
}

func TestApplyOpenFlag(t *testing.T) {
	var o OpenOptions
	for _, c := range []struct {
		l   byte
		arg string
		err string
	}{
		{'t', "none", ""}, {'t', "bogus", "Invalid cache option: bogus"},
		{'d', "unmap", ""}, {'d', "x", "Invalid discard option: x"},
		{'i', "threads", ""}, {'i', "y", "Invalid aio option: y"},
		{'r', "", ""}, {'U', "", ""},
	} {
		known, err := o.ApplyOpenFlag(c.l, c.arg)
		if !known {
			t.Errorf("-%c not an open flag", c.l)
		}
		if got := ""; err != nil {
			got = err.Error()
			if got != c.err {
				t.Errorf("-%c %s: %q, want %q", c.l, c.arg, got, c.err)
			}
		} else if c.err != "" {
			t.Errorf("-%c %s: no error, want %q", c.l, c.arg, c.err)
		}
	}
	if !o.ReadOnly || !o.ForceShare || o.Cache != "none" || o.Discard != "unmap" || o.AIO != "threads" {
		t.Errorf("options %+v", o)
	}
	if known, _ := o.ApplyOpenFlag('o', "x"); known {
		t.Errorf("-o taken without a session")
	}
}

// TestSubsInSynopsis: every subcommand, its flags and their values show
// in the command's synopsis, and the command takes each value.
func TestSubsInSynopsis(t *testing.T) {
	for _, c := range All() {
		for _, sc := range c.Subs {
			if !strings.Contains(c.Args, sc.Name) {
				t.Errorf("%s: synopsis %q lacks %s", c.Name, c.Args, sc.Name)
			}
			for _, f := range sc.Flags {
				want := "-" + string(f.Letter)
				if f.Values != nil {
					want += " " + strings.Join(f.Values, "|")
				}
				if !strings.Contains(c.Args, want) {
					t.Errorf("%s %s: synopsis %q lacks %q", c.Name, sc.Name, c.Args, want)
				}
			}
		}
	}
	dir := t.TempDir()
	s := NewSession(io.Discard, io.Discard, nil, blk.NewLoop(blk.NewVirtualClock()))
	defer s.Cleanup()
	for _, v := range traceSubs[0].Flags[0].Values {
		for _, l := range []string{"trace start -f " + v + " " + filepath.Join(dir, "t."+v), "trace stop"} {
			if !s.Execute(l) {
				t.Errorf("%q failed", l)
			}
		}
	}
}
