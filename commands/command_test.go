package commands

import (
	"bytes"
	"strings"
	"testing"
)

// TestTableNoDuplicates: every name and alias is unique (NewTable panics
// on a duplicate).
func TestTableNoDuplicates(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("command table: %v", r)
		}
	}()
	NewTable(All())
}

// TestSplitLine: qemu-io splits on spaces only.
func TestSplitLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"read 0 512", []string{"read", "0", "512"}},
		{"  read   0  512  ", []string{"read", "0", "512"}},
		{"read\t0 512", []string{"read\t0", "512"}},
		{"", nil},
		{"# x", []string{"#", "x"}},
	} {
		got := SplitLine(tc.line)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("SplitLine(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestDispatchErrors: qemu-io's dispatcher messages, in its check order.
func TestDispatchErrors(t *testing.T) {
	for _, tc := range []struct {
		line, out, err string
		ok             bool
	}{
		{"nosuch", "", "command \"nosuch\" not found\n", false},
		{"read 0 512", "", "no file open, try 'help open'\n", false},
		{"help a b", "", "bad argument count 2 to help, expected between 0 and 1 arguments\n", false},
		{"sleep", "", "bad argument count 0 to sleep, expected 1 arguments\n", false},
		{"open", "", "bad argument count 0 to open, expected at least 1 arguments\n", false},
		{"help nosuch", "command nosuch not found\n", "", false},
		{"help r", "r [-abCqv] [-P pattern [-s off] [-l len]] off len -- reads a number of bytes at a specified offset\n", "", true},
		{"sleep abc", "abc is not a valid number\n", "", false},
	} {
		var out, errw bytes.Buffer
		s := NewSession(&out, &errw, nil, nil)
		s.Execute(tc.line)
		gotOut := out.String()
		if strings.HasPrefix(tc.line, "help r") {
			gotOut = strings.SplitAfterN(gotOut, "\n", 2)[0]
		}
		if gotOut != tc.out || errw.String() != tc.err {
			t.Errorf("%q: out %q err %q, want out %q err %q", tc.line, gotOut, errw.String(), tc.out, tc.err)
		}
		if s.Failed == tc.ok {
			t.Errorf("%q: failed = %v, want %v", tc.line, s.Failed, !tc.ok)
		}
	}
}
