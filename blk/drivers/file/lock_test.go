package file_test

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// lockedBytes returns the bytes of path locked by anyone, from
// /proc/locks, sorted. OFD locks of this process count too, which is
// what makes in-process tests of the lock bytes possible.
func lockedBytes(t testing.TB, path string) []int {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		t.Skipf("no /proc/locks: %v", err)
	}
	defer f.Close()
	// "1: OFDLCK ADVISORY  READ -1 fe:00:9977943 100 101"
	suffix := fmt.Sprintf(":%d", st.Ino)
	dev := fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev))
	seen := map[int]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 || fs[0] == "->" {
			continue
		}
		id := fs[len(fs)-3]
		if !strings.HasSuffix(id, suffix) || !strings.HasPrefix(id, dev) {
			continue
		}
		from, err1 := strconv.Atoi(fs[len(fs)-2])
		to, err2 := strconv.Atoi(fs[len(fs)-1])
		if err1 != nil || err2 != nil {
			continue
		}
		for b := from; b <= to; b++ {
			seen[b] = true
		}
	}
	var out []int
	for b := range seen {
		out = append(out, b)
	}
	sort.Ints(out)
	return out
}

func TestLockBytes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		flags blk.OpenFlags
		kv    []string
		want  string
	}{
		{"read-write", blk.OpenFlags{}, nil, "[100 101]"},
		{"read-only", blk.OpenFlags{ReadOnly: true}, nil, "[100]"},
		{"force-share", blk.OpenFlags{ReadOnly: true, ForceShare: true}, nil, "[100]"},
		{"locking=off", blk.OpenFlags{}, []string{"locking", "off"}, "[]"},
		{"locking=on", blk.OpenFlags{}, []string{"locking", "on"}, "[100 101]"},
		{"unshare write", blk.OpenFlags{UnsharePerms: blk.PermWrite}, nil, "[100 101 201]"},
		{"take resize, unshare all", blk.OpenFlags{TakePerms: blk.PermResize, UnsharePerms: blk.PermAll}, nil, "[100 101 103 200 201 202 203]"},
		{"force-share beats unshare", blk.OpenFlags{ReadOnly: true, ForceShare: true, UnsharePerms: blk.PermWrite}, nil, "[100]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := newImage(t, dir, 1<<20)
			b := mustOpen(t, path, tc.flags, tc.kv...)
			if got := fmt.Sprint(lockedBytes(t, path)); got != tc.want {
				t.Errorf("locked bytes = %s, want %s", got, tc.want)
			}
			b.Close()
			if got := lockedBytes(t, path); len(got) != 0 {
				t.Errorf("after close: locked bytes = %v, want none", got)
			}
		})
	}
}

func TestLockBadOption(t *testing.T) {
	path := newImage(t, t.TempDir(), 4096)
	_, err := openFile(t, path, blk.OpenFlags{}, "locking", "bogus")
	if err == nil || err.Error() != "invalid parameter value: bogus" {
		t.Fatalf("locking=bogus: err = %v", err)
	}
}

// TestLockConflicts opens one image twice in this process: OFD locks
// belong to the descriptor, so the second open meets the first exactly as
// another process would.
func TestLockConflicts(t *testing.T) {
	dir := t.TempDir()
	hint := "\nIs another process using the image [%s]?"
	for _, tc := range []struct {
		name          string
		first, second blk.OpenFlags
		wantErr       string // with %[1]s for the hint
	}{
		{"both share everything", blk.OpenFlags{}, blk.OpenFlags{}, ""},
		{"writer unshares write, second writer", blk.OpenFlags{UnsharePerms: blk.PermWrite}, blk.OpenFlags{},
			`Failed to get "write" lock` + hint},
		{"writer unshares write, reader", blk.OpenFlags{UnsharePerms: blk.PermWrite}, blk.OpenFlags{ReadOnly: true}, ""},
		{"reader unshares write, writer", blk.OpenFlags{ReadOnly: true, UnsharePerms: blk.PermWrite}, blk.OpenFlags{},
			`Failed to get "write" lock` + hint},
		{"writer, second unshares write", blk.OpenFlags{}, blk.OpenFlags{UnsharePerms: blk.PermWrite},
			`Failed to get shared "write" lock` + hint},
		{"reader, second unshares write", blk.OpenFlags{ReadOnly: true}, blk.OpenFlags{ReadOnly: true, UnsharePerms: blk.PermWrite}, ""},
		{"unshare consistent read", blk.OpenFlags{UnsharePerms: blk.PermConsistentRead}, blk.OpenFlags{ReadOnly: true},
			`Failed to get "consistent read" lock` + hint},
		{"force-share reader against unshared consistent read", blk.OpenFlags{UnsharePerms: blk.PermConsistentRead},
			blk.OpenFlags{ReadOnly: true, ForceShare: true}, `Failed to get "consistent read" lock` + hint},
		{"force-share reader against unshared write", blk.OpenFlags{UnsharePerms: blk.PermWrite},
			blk.OpenFlags{ReadOnly: true, ForceShare: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := newImage(t, dir, 1<<20)
			a := mustOpen(t, path, tc.first)
			defer a.Close()
			before := fmt.Sprint(lockedBytes(t, path))
			b, err := openFile(t, path, tc.second)
			want := ""
			if tc.wantErr != "" {
				want = fmt.Sprintf(tc.wantErr, path)
			}
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				b.Close()
			}
			if got != want {
				t.Fatalf("second open: err = %q, want %q", got, want)
			}
			// A failed open leaves no locks behind; a closed one takes
			// its own with it.
			if after := fmt.Sprint(lockedBytes(t, path)); after != before {
				t.Errorf("locks after the second open = %s, want %s (the first open's)", after, before)
			}
		})
	}
}

// TestLockResizeAndReopen: truncate takes the resize permission for good
// (qemu-io's command table), reopen moves the write lock with the mode,
// and both fail with QEMU's message when another user objects.
func TestLockResizeAndReopen(t *testing.T) {
	dir := t.TempDir()
	path := newImage(t, dir, 1<<20)
	b := mustOpen(t, path, blk.OpenFlags{})
	defer b.Close()
	if err := do(t, b, func(co *blk.Co) error { return b.Truncate(co, 2<<20, blk.PreallocOff) }); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(lockedBytes(t, path)); got != "[100 101 103]" {
		t.Errorf("after truncate: locked %s, want [100 101 103]", got)
	}
	if err := b.SetReadOnly(true); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(lockedBytes(t, path)); got != "[100 103]" {
		t.Errorf("after reopen -r: locked %s, want [100 103]", got)
	}

	// Another user that does not share write and resize.
	other := newImage(t, dir, 1<<20)
	o := mustOpen(t, other, blk.OpenFlags{ReadOnly: true, UnsharePerms: blk.PermWrite | blk.PermResize})
	c := mustOpen(t, other, blk.OpenFlags{ReadOnly: true})
	defer c.Close()
	// "reopen -w" does not take write back (qemu-io's doesn't either);
	// the next write command asks for it, and is refused.
	if err := c.SetReadOnly(false); err != nil {
		t.Fatalf("reopen -w: %v", err)
	}
	want := fmt.Sprintf("Failed to get \"write\" lock\nIs another process using the image [%s]?", other)
	if err := c.TakePerm(blk.PermWrite); err == nil || err.Error() != want {
		t.Errorf("TakePerm(write): err = %v, want %q", err, want)
	}
	err := do(t, c, func(co *blk.Co) error { return c.PWrite(co, 0, make([]byte, 512), 0) })
	if err == nil || err.Error() != want {
		t.Errorf("write without the command layer: err = %v, want %q", err, want)
	}
	if got := fmt.Sprint(lockedBytes(t, other)); got != "[100 201 203]" {
		t.Errorf("after the refused write: locked %s, want [100 201 203]", got)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.TakePerm(blk.PermWrite); err != nil {
		t.Errorf("TakePerm(write) once the other user left: %v", err)
	}
	if got := fmt.Sprint(lockedBytes(t, other)); got != "[100 101]" {
		t.Errorf("after taking write: locked %s, want [100 101]", got)
	}

	// A user that shares write but not resize: writes work, truncate
	// does not.
	third := newImage(t, dir, 1<<20)
	h := mustOpen(t, third, blk.OpenFlags{UnsharePerms: blk.PermResize})
	defer h.Close()
	w := mustOpen(t, third, blk.OpenFlags{})
	defer w.Close()
	err = do(t, w, func(co *blk.Co) error { return w.Truncate(co, 2<<20, blk.PreallocOff) })
	want = fmt.Sprintf("Failed to get \"resize\" lock\nIs another process using the image [%s]?", third)
	if err == nil || err.Error() != want {
		t.Errorf("truncate: err = %v, want %q", err, want)
	}
	if got := fmt.Sprint(lockedBytes(t, third)); got != "[100 101 203]" {
		t.Errorf("after the failed truncate: locked %s, want [100 101 203]", got)
	}
}
