package preallocate_test

import (
	"os"
	"path/filepath"
	"testing"

	"gio/blk"
	"gio/blk/drivers/file"
	"gio/blk/drivers/preallocate"
	"gio/blk/drivers/qcow2"
	"gio/blk/qdict"
)

func registry() *blk.Registry {
	return blk.NewRegistry(file.Driver, qcow2.Driver, preallocate.Driver)
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestPreallocateUnderQcow2 is iotest 298's qemu-io case: under a
// writable qcow2 node the filter extends the file by prealloc-size on a
// write past its end, going read-only cuts that off again, and so does
// closing.
func TestPreallocateUnderQcow2(t *testing.T) {
	const mib = 1 << 20
	img := filepath.Join(t.TempDir(), "img.qcow2")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	reg := registry()
	if err := reg.Create("qcow2", img, 10*mib, qdict.New(), blk.NewLoop(blk.NewVirtualClock())); err != nil {
		t.Fatal(err)
	}
	created := fileSize(t, img)
	opts := qdict.FromPairs("driver", "qcow2", "file.driver", "preallocate", "file.prealloc-size", "20M",
		"file.prealloc-align", "5M", "file.file.filename", img)
	b, err := reg.Open(blk.Spec{Opts: opts}, blk.NewLoop(blk.NewVirtualClock()))
	if err != nil {
		t.Fatal(err)
	}
	run := func(fn func(co *blk.Co) error) {
		t.Helper()
		if err := b.Loop().RunSync("test", fn); err != nil {
			t.Fatal(err)
		}
	}
	run(func(co *blk.Co) error { return b.PWrite(co, 0, make([]byte, mib), 0) })
	run(func(co *blk.Co) error { return b.Flush(co) })
	// The write ended past the file's end: the file grew to the data's
	// end plus 20 MiB, rounded up to 5 MiB.
	if got := fileSize(t, img); got != 25*mib {
		t.Errorf("after a write past the end: file size %d, want %d", got, 25*mib)
	}
	if err := b.SetReadOnly(true); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, img); got >= 2*mib || got <= created {
		t.Errorf("after reopen -r: file size %d, want the data's end", got)
	}
	if err := b.SetReadOnly(false); err != nil {
		t.Fatal(err)
	}
	run(func(co *blk.Co) error { return b.PWrite(co, 3*mib, make([]byte, mib), 0) })
	if got := fileSize(t, img); got < 25*mib {
		t.Errorf("after a write past the end again: file size %d, want preallocation", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, img); got >= 10*mib {
		t.Errorf("after close: file size %d, want the data's end", got)
	}
}

// TestOptionErrors: QEMU's messages for bad options.
func TestOptionErrors(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ k, v, want string }{
		{"prealloc-align", "100", "prealloc-align parameter of preallocate filter is not aligned to 512"},
		{"prealloc-size", "x", "Parameter 'prealloc-size' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively."},
		{"bogus", "1", "Block format 'preallocate' does not support the option 'bogus'"},
	} {
		opts := qdict.FromPairs("driver", "preallocate", "file.filename", img, tc.k, tc.v)
		_, err := registry().Open(blk.Spec{Opts: opts}, blk.NewLoop(blk.NewVirtualClock()))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s=%s: got %v, want %q", tc.k, tc.v, err, tc.want)
		}
	}
}
