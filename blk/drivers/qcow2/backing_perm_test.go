package qcow2_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// fdFlags returns the open flags of this process's descriptors on path,
// as /proc/self/fdinfo shows them (octal).
func fdFlags(t *testing.T, path string) []int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	var out []int
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err != nil || l != path {
			continue
		}
		f, err := os.Open("/proc/self/fdinfo/" + fd.Name())
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "flags:"); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				if err != nil {
					t.Fatalf("fdinfo %s: %q", fd.Name(), sc.Text())
				}
				out = append(out, int(n))
			}
		}
		f.Close()
	}
	return out
}

// heldBy reports whether anyone holds a lock on byte b of path that a
// write lock would conflict with: how qemu-img finds that another user
// holds a permission (raw_check_lock_bytes). OFD locks of this process
// count, as they belong to another open file description.
func heldBy(t *testing.T, path string, b int64) bool {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: b, Len: 1}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		t.Skipf("F_OFD_GETLK: %v", err)
	}
	return lk.Type != unix.F_UNLCK
}

// TestBackingStaysReadOnly is issue 14 items 2 and 3: after a write on a
// qcow2 overlay, and across reopen -w, -r and a plain reopen, the backing
// file's descriptor stays O_RDONLY (fdinfo flags 02100000, as under
// qemu-io) and nothing holds the write permission's lock byte on it, so
// qemu-img info on the base works while the overlay is open.
func TestBackingStaysReadOnly(t *testing.T) {
	dir := t.TempDir()
	base, top := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "top.qcow2")
	create(t, base, 1<<20)
	create(t, top, 1<<20, "backing_file", "base.qcow2", "backing_fmt", "qcow2")
	b := mustOpen(t, top)
	defer b.Close()
	check := func(when string) {
		t.Helper()
		flags := fdFlags(t, base)
		if len(flags) != 1 || flags[0]&unix.O_ACCMODE != unix.O_RDONLY {
			t.Errorf("%s: base.qcow2 descriptors have flags %s, want one O_RDONLY", when, octal(flags))
		}
		if heldBy(t, base, 100+1) {
			t.Errorf("%s: the write permission's lock byte (101) of base.qcow2 is held", when)
		}
		if bk := b.Root.Backing(); bk == nil || !bk.ReadOnly() {
			t.Errorf("%s: the backing node is missing or writable", when)
		}
		if _, err := exec.LookPath("qemu-img"); err == nil {
			if out, err := exec.Command("qemu-img", "info", base).CombinedOutput(); err != nil {
				t.Errorf("%s: qemu-img info base.qcow2: %v\n%s", when, err, out)
			}
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func() {
		t.Helper()
		must(b.TakePerm(blk.PermWrite))
		must(do(t, b, func(co *blk.Co) error { return b.PWrite(co, 0, make([]byte, 512), 0) }))
	}
	write()
	check("after a write")
	must(b.SetReadOnly(false)) // a plain reopen of a writable image
	check("after reopen")
	must(b.SetReadOnly(true))
	check("after reopen -r")
	must(b.SetReadOnly(false))
	write()
	check("after reopen -w and a write")
	if flags := fdFlags(t, top); len(flags) != 1 || flags[0]&unix.O_ACCMODE != unix.O_RDWR {
		t.Errorf("top.qcow2 descriptors have flags %s, want one O_RDWR", octal(flags))
	}
}

func octal(flags []int) string {
	var s []string
	for _, f := range flags {
		s = append(s, fmt.Sprintf("0%o", f))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// TestProbedLocks: a qcow2 image opened by probing (no format given)
// holds the locks qemu-io holds on it: the format's own needs on its
// file (resize taken, write and resize not shared) are added once the
// format is known, as with an explicit driver=qcow2.
func TestProbedLocks(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img.qcow2")
	create(t, img, 1<<20)
	for _, probed := range []bool{true, false} {
		var kv []string
		if !probed {
			kv = []string{"driver", "qcow2"}
		}
		b := mustOpen(t, img, kv...)
		for _, byt := range []int64{100, 101, 103, 201, 203} {
			if !heldBy(t, img, byt) {
				t.Errorf("probed=%v: lock byte %d of a writable qcow2 image is free", probed, byt)
			}
		}
		b.Close()
	}
}

// TestReopenLocks: a qcow2 node holds write and resize on its file while
// it is writable and gives both back while read-only, so reopen -r frees
// lock bytes 101 and 103 and reopen -w takes them again, as under
// qemu-io (a raw image's user takes write only at its next write).
func TestReopenLocks(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img.qcow2")
	create(t, img, 1<<20)
	b := mustOpen(t, img)
	defer b.Close()
	want := func(when string, held bool) {
		t.Helper()
		for _, byt := range []int64{101, 103} {
			if heldBy(t, img, byt) != held {
				t.Errorf("%s: lock byte %d held %v, want %v", when, byt, !held, held)
			}
		}
	}
	want("after open", true)
	if err := b.SetReadOnly(true); err != nil {
		t.Fatal(err)
	}
	want("after reopen -r", false)
	if err := b.SetReadOnly(false); err != nil {
		t.Fatal(err)
	}
	want("after reopen -w", true)
}
