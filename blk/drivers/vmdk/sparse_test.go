package vmdk_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/vmdk"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// TestESXExtents opens the fuzzer's hand-built vmfsSparse and seSparse
// seeds behind their descriptors (in memory) and reads them: grain data,
// zeroed and unallocated grains; seSparse refuses a writable open, and
// COWD takes a write in a new grain. (cmd/gio/testdata/formats/
// vmdk-esx.txt compares such images with qemu-io.)
func TestESXExtents(t *testing.T) {
	for _, c := range []struct {
		name, createType, extentType string
		ext                          []byte
		writable                     bool
	}{
		{"vmfsSparse", "vmfsSparse", "VMFSSPARSE", cowdExtent(), true},
		{"seSparse", "seSparse", "SESPARSE", seSparseExtent(), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := t.Name()
			ef := &blktest.Bounded{Data: c.ext}
			blktest.AddBounded(t, map[string]*blktest.Bounded{id: {Data: []byte(esxDescriptor(c.createType, c.extentType))}, id + "/ext": ef})
			reg := blk.NewRegistry(blktest.BoundedDriver, vmdk.Driver)
			open := func(ro bool) (*blk.Backend, error) {
				o := qdict.New()
				o.Set("file.driver", "bounded")
				o.Set("file.id", id)
				o.Set("extents.0.driver", "bounded")
				o.Set("extents.0.id", id+"/ext")
				return reg.Open(blk.Spec{Format: "vmdk", Opts: o, Flags: blk.OpenFlags{ReadOnly: ro}}, blk.NewLoop(blk.NewVirtualClock()))
			}
			b, err := open(false)
			if !c.writable {
				if blk.ErrnoOf(err) != unix.EACCES {
					t.Fatalf("writable open: %v, want EACCES", err)
				}
				b, err = open(true)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			buf := make([]byte, 24<<10)
			if err := do(t, b, func(co *blk.Co) error { return b.PRead(co, 0, buf) }); err != nil {
				t.Fatal(err)
			}
			want := map[int]byte{0: 0x11}
			if c.writable {
				want[3] = 0x22
			} else {
				want[5] = 0x22
			}
			for g := 0; g < 6; g++ {
				if !bytes.Equal(buf[g<<12:(g+1)<<12], bytes.Repeat([]byte{want[g]}, 4096)) {
					t.Errorf("grain %d: not all %#x", g, want[g])
				}
			}
			if c.writable {
				n := len(ef.Data)
				if err := do(t, b, func(co *blk.Co) error { return b.PWrite(co, 8192, []byte{1, 2, 3}, 0) }); err != nil {
					t.Fatal(err)
				}
				if len(ef.Data) != n+4096 || ef.Data[n] != 1 {
					t.Errorf("the write did not allocate grain 2 at the end: extent %d bytes, was %d", len(ef.Data), n)
				}
			}
		})
	}
}

// TestGrainPastEOF: a grain table entry pointing past the end of the
// file reads as zeroes (QEMU's file driver) and refuses writes (QEMU
// would write there, outside the file; the fuzzer found it).
func TestGrainPastEOF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img.vmdk")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := blk.NewRegistry(file.Driver, vmdk.Driver).Create("vmdk", path, 1<<20, qdict.New(), blk.NewLoop(blk.NewVirtualClock())); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	gd := le.Uint64(img[56:])
	gt := le.Uint32(img[gd*512:])
	le.PutUint32(img[gt*512+4:], 0x80000001) // grain 1 at 1 TiB
	id := t.Name()
	mf := &blktest.Bounded{Data: img}
	blktest.AddBounded(t, map[string]*blktest.Bounded{id: mf})
	o := qdict.New()
	o.Set("file.driver", "bounded")
	o.Set("file.id", id)
	b, err := blk.NewRegistry(blktest.BoundedDriver, vmdk.Driver).Open(blk.Spec{Format: "vmdk", Opts: o}, blk.NewLoop(blk.NewVirtualClock()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	buf := []byte{1}
	if err := do(t, b, func(co *blk.Co) error { return b.PRead(co, 64<<10, buf) }); err != nil || buf[0] != 0 {
		t.Errorf("read: %v, %v; want zeroes", err, buf)
	}
	if err := do(t, b, func(co *blk.Co) error { return b.PWrite(co, 64<<10, []byte{1}, 0) }); blk.ErrnoOf(err) != unix.EIO {
		t.Errorf("write: %v, want EIO", err)
	}
	if mf.Violation != "" {
		t.Error(mf.Violation)
	}
}
