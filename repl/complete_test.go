package repl

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gio/blk"
	"gio/blk/drivers/file"
	"gio/blk/drivers/raw"
	"gio/blkdebug"
	"gio/commands"
)

// testSession is a session on a virtual clock over file, raw and
// blkdebug, writing nowhere.
func testSession(t *testing.T) *commands.Session {
	t.Helper()
	s := commands.NewSession(io.Discard, io.Discard, testRegistry(io.Discard), blk.NewLoop(blk.NewVirtualClock()))
	t.Cleanup(func() {
		s.CloseImage()
		s.Cleanup()
	})
	return s
}

func testRegistry(out io.Writer) *blk.Registry {
	return blk.NewRegistry(file.Driver, raw.Driver, blkdebug.NewDriver(func() io.Writer { return out }))
}

func TestComplete(t *testing.T) {
	s := testSession(t)
	for _, l := range []string{"create img 64k", "open -o driver=raw blkdebug::img", "break pwritev T1", "break flush_to_os T2"} {
		if !s.Execute(l) {
			t.Fatalf("%q failed", l)
		}
	}
	t.Chdir(t.TempDir()) // scratch names, not this directory's files
	dir := t.TempDir()
	for _, f := range []string{"alpha.raw", "alpine.raw", ".hidden", "sub/x.raw"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &completer{s: s}
	tests := []struct {
		before string
		want   []string
	}{
		{"wai", []string{"wait_break"}},
		{"re", []string{"read", "readv", "record", "remove_break", "reopen", "requests", "resume"}},
		{"?", []string{"?"}},
		{"read -", []string{"-C", "-P", "-b", "-l", "-p", "-q", "-s", "-v"}},
		{"r -x", nil},
		{"r -v", []string{"-v"}},
		{"open -t write", []string{"writeback", "writethrough"}},
		{"open -d ", []string{"ignore", "off", "on", "unmap"}},
		{"o -r -i io", []string{"io_uring"}},
		{"break pwritev_rmw_h", []string{"pwritev_rmw_head"}},
		{"break pwritev_rmw_after_", []string{"pwritev_rmw_after_head", "pwritev_rmw_after_tail"}},
		{"break pwritev ", nil},
		{"resume ", []string{"T1", "T2"}},
		{"wait_break T", []string{"T1", "T2"}},
		{"remove_break T2", []string{"T2"}},
		{"resume T1 ", nil},
		{"open blkdebug::i", []string{"blkdebug::img"}},
		{"open " + dir + "/al", []string{dir + "/alpha.raw", dir + "/alpine.raw"}},
		{"open " + dir + "/", []string{dir + "/alpha.raw", dir + "/alpine.raw", dir + "/sub/"}},
		{"open " + dir + "/.", []string{dir + "/.hidden"}},
		{"open -o driver=raw " + dir + "/s", []string{dir + "/sub/"}},
		{"write -P 1 -s " + dir + "/alph", []string{dir + "/alpha.raw"}},
		{"write 0 " + dir + "/alph", nil},
		{"help wait", []string{"wait_break"}},
		{"help gi", []string{"gio"}},
		{"record of", []string{"off"}},
		{"map -", []string{"--output=human", "--output=json", "-s"}},
		{"trace ", []string{"start", "stop", "view"}},
		{"trace st", []string{"start", "stop"}},
		{"trace start " + dir + "/al", []string{dir + "/alpha.raw", dir + "/alpine.raw"}},
		{"trace start -", []string{"-f"}},
		{"trace start -f ", []string{"json", "jsonl"}},
		{"trace start -f jsonl " + dir + "/s", []string{dir + "/sub/"}},
		{"trace stop ", nil},
		{"trace view " + dir + "/alpi", []string{dir + "/alpine.raw"}},
		{"trace view " + dir + "/alpine.raw -", []string{"-o"}},
		{"trace view " + dir + "/alpine.raw -o " + dir + "/sub/", []string{dir + "/sub/x.raw"}},
		{"trace nosuch ", nil},
		{"nosuch ", nil},
		{"length ", nil},
	}
	for _, tc := range tests {
		_, got := c.complete(tc.before)
		if tc.before == "map -" {
			// map's gio-only words are whatever its table entry lists.
			got = filterPrefix(got, "-")
		}
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("complete(%q) = %q, want %q", tc.before, got, tc.want)
		}
	}
	if _, got := c.complete(""); !contains(got, "read") || !contains(got, "r") || !contains(got, "create") {
		t.Errorf("complete(\"\") = %q, want every name and alias", got)
	}
}

func filterPrefix(s []string, p string) []string {
	var out []string
	for _, w := range s {
		if strings.HasPrefix(w, p) {
			out = append(out, w)
		}
	}
	return out
}

// commandNames lists the session's command names, aliases left out.
func commandNames(s *commands.Session) []string {
	var ns []string
	for _, c := range s.Table.Commands() {
		ns = append(ns, c.Name)
	}
	return ns
}

// TestCompleteDo checks the readline side: suffixes, a space after a
// finished word, none after a directory.
func TestCompleteDo(t *testing.T) {
	s := testSession(t)
	c := &completer{s: s}
	got, n := c.Do([]rune("wai"), 3)
	if n != 3 || len(got) != 1 || string(got[0]) != "t_break " {
		t.Errorf("Do(wai) = %q, %d; want [\"t_break \"], 3", got, n)
	}
	got, n = c.Do([]rune("break x"), 5) // cursor after "break"
	if n != 5 || len(got) != 1 || string(got[0]) != " " {
		t.Errorf("Do(break|) = %q, %d; want [\" \"], 5", got, n)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	line := "open " + dir + "/im"
	got, _ = c.Do([]rune(line), len([]rune(line)))
	if len(got) != 1 || string(got[0]) != "ages/" {
		t.Errorf("Do(%q) = %q, want [\"ages/\"]", line, got)
	}
}

func TestSuggest(t *testing.T) {
	s := testSession(t)
	names := commandNames(s)
	tests := []struct{ word, want string }{
		{"wiat_break", "wait_break"},
		{"wait_brk", "wait_break"},
		{"wai", "wait_break"},
		{"writ", "write"},
		{"READ", "read"},
		{"aio_wrte", "aio_write"},
		{"raed", "read"},
		{"rsume", "resume"},
		{"foo", ""},
		{"x", ""},
		{"re", ""},
		{"bogus_command", ""},
		{"exit", "quit"},
		{"EXIT", "quit"},
	}
	for _, tc := range tests {
		if got := suggest(tc.word, names); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}

func TestSuggestEvent(t *testing.T) {
	for _, c := range []struct{ word, want string }{
		{"pwritev_rmw_afterhead", "pwritev_rmw_after_head"},
		{"pwritev_rmw_tial", "pwritev_rmw_tail"},
		{"nonsense_event_name", ""},
	} {
		if got := suggest(c.word, blk.EventNames()); got != c.want {
			t.Errorf("suggest(%q) = %q, want %q", c.word, got, c.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "ab", 2}, {"read", "read", 0},
		{"read", "raed", 1}, {"read", "readv", 1}, {"flush", "flash", 1},
		{"kitten", "sitting", 3},
	}
	for _, tc := range tests {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCompleteOptions(t *testing.T) {
	s := testSession(t)
	c := &completer{s: s}
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"open -o dri", []string{"driver="}},
		{"open -o driver=r", []string{"driver=raw"}},
		{"open -o driver=raw,file.al", nil}, // file. defaults to the file driver
		{"open -o driver=raw,file.driver=blkdebug,file.al", []string{"driver=raw,file.driver=blkdebug,file.align="}},
		{"open -o driver=raw,file.driver=blkdebug,file.serialise=o", []string{"driver=raw,file.driver=blkdebug,file.serialise=off", "driver=raw,file.driver=blkdebug,file.serialise=on"}},
		{"open -o driver=raw,fi", []string{"driver=raw,file."}},
		{"reopen -o read-only=", []string{"read-only=off", "read-only=on"}},
		{"create -o clu", []string{"cluster_size="}},
		{"create -o compat=v", []string{"compat=v2", "compat=v3"}},
		{"create -f q", []string{"qcow", "qcow2", "qed"}},
		{"open -t w", []string{"writeback", "writethrough"}},
		{"bench -t w", []string{"writeback", "writethrough"}},
		{"bench -i n", []string{"native"}},
		{"bench -S", []string{"-S"}},
	} {
		_, got := c.complete(tc.line)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %q, want %q", tc.line, got, tc.want)
		}
	}
	// A key waiting for its value takes no space after it.
	out, _ := c.Do([]rune("open -o dri"), len("open -o dri"))
	if len(out) != 1 || string(out[0]) != "ver=" {
		t.Errorf("Do: %q", out)
	}
}
