package vmdk_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/vmdk"
	"gio/blk/qdict"
	"gio/internal/watchdog"

	"golang.org/x/sys/unix"
)

// flatExtent finds a flat extent line in a descriptor (its first extent
// is the one the fuzzer gives bytes to; a descriptor naming a flat one
// anywhere is taken as flat, which only loosens the check).
var flatExtent = regexp.MustCompile(`(?m)^\s*(RW|RDONLY|NOACCESS)\s+\d+\s+(FLAT|VMFS)\b`)

func do(t testing.TB, b *blk.Backend, fn func(co *blk.Co) error) error {
	var err error
	co := b.Loop().Spawn("fuzz", func(co *blk.Co) { err = fn(co) })
	if e := b.Loop().RunUntil("fuzz", co.Done); e != nil {
		t.Fatalf("request stuck: %v", e)
	}
	return err
}

// seeds are images made by gio's create, then written to.
func seeds(f *testing.F) [][]byte {
	var out [][]byte
	dir := f.TempDir()
	reg := blk.NewRegistry(file.Driver, vmdk.Driver)
	for i, kv := range [][]string{
		nil,
		{"zeroed_grain", "on"},
		{"subformat", "streamOptimized"},
	} {
		path := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			f.Fatal(err)
		}
		o := qdict.New()
		for j := 0; j+1 < len(kv); j += 2 {
			o.Set(kv[j], kv[j+1])
		}
		if err := reg.Create("vmdk", path, 256<<10, o, blk.NewLoop(blk.NewVirtualClock())); err != nil {
			f.Fatal(err)
		}
		if i < 2 {
			opts := qdict.New()
			opts.Set("file.driver", "file")
			opts.Set("file.filename", path)
			b, err := reg.Open(blk.Spec{Format: "vmdk", Opts: opts}, blk.NewLoop(blk.NewVirtualClock()))
			if err != nil {
				f.Fatal(err)
			}
			if err := do(f, b, func(co *blk.Co) error {
				if err := b.PWrite(co, 1000, bytes.Repeat([]byte{0xaa}, 5000), 0); err != nil {
					return err
				}
				if err := b.PWriteZeroes(co, 128<<10, 64<<10, 0); err != nil && i == 1 {
					return err
				}
				return b.PWrite(co, 200<<10, bytes.Repeat([]byte{0xbb}, 3000), 0)
			}); err != nil {
				f.Fatal(err)
			}
			b.Close()
		}
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
	}
	// The ESX extents, after a descriptor and a NUL (FuzzOpen's
	// convention), and a COWD extent alone with a descriptor at sector 1.
	out = append(out,
		append([]byte(esxDescriptor("vmfsSparse", "VMFSSPARSE")+"\x00"), cowdExtent()...),
		append([]byte(esxDescriptor("seSparse", "SESPARSE")+"\x00"), seSparseExtent()...))
	alone := cowdExtent()
	copy(alone[512:], "CID=1\nparentCID=ffffffff\n")
	return append(out, alone)
}

func esxDescriptor(createType, extentType string) string {
	return "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"" + createType +
		"\"\n\n# Extent description\nRW 2048 " + extentType + " \"x.vmdk\"\n"
}

// cowdExtent is a vmfsSparse (COWD) extent of 1 MiB: 4 KiB grains, the
// grain directory at sector 4, its one table at sector 8, grains 0 and 3
// allocated at sectors 40 and 48.
func cowdExtent() []byte {
	b := make([]byte, 56*512)
	le := binary.LittleEndian
	copy(b, "COWD")
	for i, v := range []uint32{1, 3, 2048, 8, 4, 1, 56} {
		le.PutUint32(b[4+4*i:], v)
	}
	le.PutUint32(b[2048:], 8)
	le.PutUint32(b[4096:], 40)
	le.PutUint32(b[4096+12:], 48)
	copy(b[40*512:], bytes.Repeat([]byte{0x11}, 4096))
	copy(b[48*512:], bytes.Repeat([]byte{0x22}, 4096))
	return b
}

// seSparseExtent is a seSparse extent of 1 MiB: the volatile header at
// sector 1, the grain directory at sector 2, its table 0 at sector 4,
// grains from sector 132: grain 0 allocated, 2 zeroed, 3 unmapped, 5
// allocated.
func seSparseExtent() []byte {
	b := make([]byte, 148*512)
	le := binary.LittleEndian
	for i, v := range map[int]uint64{0: 0xcafebabe, 1: 0x0000000200000001, 2: 2048, 3: 8, 4: 64,
		10: 1, 11: 1, 16: 2, 17: 1, 18: 4, 19: 128, 24: 132, 25: 16} {
		le.PutUint64(b[8*i:], v)
	}
	le.PutUint64(b[512:], 0xcafecafe)
	le.PutUint64(b[1024:], 0x1000000000000000)
	for i, v := range map[int]uint64{0: 0x3000000000000000, 2: 0x2000000000000000, 3: 0x1000000000000000, 5: 0x3001000000000000} {
		le.PutUint64(b[2048+8*i:], v)
	}
	copy(b[132*512:], bytes.Repeat([]byte{0x11}, 4096))
	copy(b[140*512:], bytes.Repeat([]byte{0x22}, 4096))
	return b
}

// tooBig tells whether an extent's header asks for tables or grains so
// large that the fuzzer would spend its time allocating them (QEMU
// allocates them too): more than 1M directory entries, grains over 2 MiB
// (up to 1 GiB is valid, and every allocation writes that much).
func tooBig(img []byte) bool {
	le := binary.LittleEndian
	switch {
	case len(img) >= 512 && binary.BigEndian.Uint32(img) == 0x4b444d56:
		c, g, n := le.Uint64(img[12:]), le.Uint64(img[20:]), uint64(le.Uint32(img[44:]))
		if s := uint64(uint32(g * n)); s != 0 && c/s > 1<<20 {
			return true
		}
		return g > 4096 && g <= 0x200000
	case len(img) >= 28 && binary.BigEndian.Uint32(img) == 0x434f5744:
		return le.Uint32(img[24:]) > 1<<20 || le.Uint32(img[16:]) > 4096
	case len(img) >= 512 && le.Uint64(img) == 0xcafebabe:
		return le.Uint64(img[136:]) > 1<<14
	}
	return false
}

// FuzzOpen feeds corrupted images (header, descriptor, grain directories
// and tables) to the driver and runs a few requests: errors are fine,
// panics and accesses outside the file are not.
func FuzzOpen(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s, []byte{0, 1, 2, 3, 4, 5})
	}
	f.Add([]byte("# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n"), []byte{0})
	f.Fuzz(func(t *testing.T, img []byte, ops []byte) {
		if len(img) > 1<<20 {
			return
		}
		// A descriptor (no sparse magic) may be followed by a NUL and
		// the bytes of its first extent, which opens as "extents.0".
		var ext []byte
		if len(img) >= 4 && !bytes.HasPrefix(img, []byte("KDMV")) && !bytes.HasPrefix(img, []byte("COWD")) {
			if i := bytes.IndexByte(img, 0); i >= 0 {
				img, ext = img[:i], img[i+1:]
			}
		}
		if tooBig(img) || tooBig(ext) {
			return
		}
		defer watchdog.Start("vmdk fuzz", 20*time.Second)()
		id := t.Name()
		mf := &blktest.Bounded{Data: append([]byte(nil), img...)}
		// A flat extent: QEMU writes anywhere in it (its offset comes
		// from the descriptor, and a write past the end grows the
		// file).
		ef := &blktest.Bounded{Data: append([]byte(nil), ext...), FarFails: flatExtent.Match(img)}
		blktest.AddBounded(t, map[string]*blktest.Bounded{id: mf, id + "/ext": ef})
		violation := func() string { return mf.Violation + ef.Violation }
		reg := blk.NewRegistry(blktest.BoundedDriver, vmdk.Driver)
		open := func(ro bool) (*blk.Backend, error) {
			opts := qdict.New()
			opts.Set("file.driver", "bounded")
			opts.Set("file.id", id)
			if ext != nil {
				opts.Set("extents.0.driver", "bounded")
				opts.Set("extents.0.id", id+"/ext")
			}
			return reg.Open(blk.Spec{Format: "vmdk", Opts: opts, Flags: blk.OpenFlags{Unmap: true, ReadOnly: ro}}, blk.NewLoop(blk.NewVirtualClock()))
		}
		b, err := open(false)
		if blk.ErrnoOf(err) == unix.EACCES {
			// seSparse: read-only.
			b, err = open(true)
		}
		if v := violation(); v != "" {
			t.Fatalf("open: %s", v)
		}
		if err != nil {
			if blk.ErrnoOf(err) == 0 {
				t.Errorf("open error without errno: %v", err)
			}
			return
		}
		defer b.Close()
		var size int64
		_ = do(t, b, func(co *blk.Co) (err error) { size, err = b.Length(co); return })
		window := min(size, 1<<20)
		for i, op := range ops {
			if i >= 16 || window == 0 {
				break
			}
			off := int64(op) * int64(i+1) * 977 % window
			n := min(window-off, int64(op)*131+1)
			_ = do(t, b, func(co *blk.Co) error {
				switch op % 6 {
				case 0:
					return b.PRead(co, off, make([]byte, n))
				case 1:
					return b.PWrite(co, off, bytes.Repeat([]byte{op}, int(n)), 0)
				case 2:
					return b.PWriteZeroes(co, off&^0xffff, 64<<10, 0)
				case 3:
					return b.PWriteCompressed(co, off&^0xffff, make([]byte, min(64<<10, window-off&^0xffff)))
				case 4:
					for o := int64(0); o < window; {
						st, err := b.BlockStatus(co, o, window-o)
						if err != nil {
							return err
						}
						if st.Pnum <= 0 {
							ef.Violation = "block status made no progress at " + strconv.FormatInt(o, 10)
							return nil
						}
						o += st.Pnum
					}
					return nil
				default:
					return b.Flush(co)
				}
			})
			if v := violation(); v != "" {
				t.Fatalf("op %d: %s", op%6, v)
			}
		}
	})
}
