package qcow2_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/qcow2"
	"gio/blk/qdict"
	"gio/internal/watchdog"
)

// seeds returns images made by gio's create plus some writes, small
// enough for the fuzzer.
func seeds(f *testing.F) [][]byte {
	var out [][]byte
	dir := f.TempDir()
	for i, kv := range [][]string{
		{"cluster_size", "512"},
		{"cluster_size", "4096"},
		{"cluster_size", "4096", "compat", "0.10"},
		{"cluster_size", "1024", "refcount_bits", "4"},
		{"cluster_size", "65536"},
		{"cluster_size", "4096", "lazy_refcounts", "on"},
		{"cluster_size", "4096", "compression_type", "zstd"},
		{"cluster_size", "2048", "compression_type", "zlib"},
		{"cluster_size", "16384", "extended_l2", "on"},
		{"cluster_size", "16384", "compression_type", "zlib", "extended_l2", "on"},
	} {
		path := filepath.Join(dir, strconv.Itoa(i))
		create(f, path, 256<<10, kv...)
		b := mustOpen(f, path)
		_ = do(f, b, func(co *blk.Co) error {
			if err := b.PWrite(co, 1000, bytes.Repeat([]byte{0xaa}, 5000), 0); err != nil {
				return err
			}
			if err := b.PWriteZeroes(co, 64<<10, 64<<10, 0); err != nil {
				return err
			}
			if err := b.SaveVMState(co, bytes.Repeat([]byte{0xcc}, 1024), 4096); err != nil {
				return err
			}
			if len(kv) > 2 && kv[2] == "compression_type" {
				if err := b.PWriteCompressed(co, 128<<10, bytes.Repeat([]byte("qcow2"), 4096/5+1)[:4096]); err != nil {
					return err
				}
			}
			return b.PWrite(co, 200<<10, bytes.Repeat([]byte{0xbb}, 3000), 0)
		})
		b.Close()
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
		if len(kv) > 2 && kv[2] == "lazy_refcounts" {
			// The same image left dirty: opening it runs the repair.
			dirty := append([]byte(nil), data...)
			dirty[79] |= 1
			out = append(out, dirty)
		}
	}
	return append(out, bitmapSeeds(f)...)
}

// bitmapSeeds are images with persistent bitmaps, made by qemu-img
// (gio cannot add bitmaps) and written by gio so that their tables
// point at data clusters; none without qemu-img (the committed corpus
// holds some).
func bitmapSeeds(f *testing.F) [][]byte {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		return nil
	}
	var out [][]byte
	dir := f.TempDir()
	for i, cs := range []string{"512", "4096", "65536"} {
		path := filepath.Join(dir, "bm"+strconv.Itoa(i))
		for _, argv := range [][]string{
			{"create", "-q", "-f", "qcow2", "-o", "cluster_size=" + cs, path, "256k"},
			{"bitmap", "--add", "-g", "512", path, "a"},
			{"bitmap", "--add", "--disable", path, "b"},
		} {
			if o, err := exec.Command("qemu-img", argv...).CombinedOutput(); err != nil {
				f.Fatalf("qemu-img %v: %v\n%s", argv, err, o)
			}
		}
		b := mustOpen(f, path)
		_ = do(f, b, func(co *blk.Co) error {
			return b.PWrite(co, 1000, bytes.Repeat([]byte{0xaa}, 70000), 0)
		})
		b.Close()
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// fuzzOptions are runtime option sets the fuzzer opens images with (the
// first op byte picks one): lazy refcounts, every overlap check (which
// reads the snapshot table), tiny caches.
var fuzzOptions = [][]string{
	nil,
	{"lazy-refcounts", "on"},
	{"overlap-check", "all"},
	{"cache-size", "0", "lazy-refcounts", "on"},
}

// FuzzOpen feeds corrupted images (headers, L1/L2 tables, refcount
// structures) to the driver and runs a few requests: errors are fine,
// panics and accesses outside the file are not.
func FuzzOpen(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s, []byte{0, 1, 2, 3, 4, 5, 6})
	}
	f.Fuzz(func(t *testing.T, img []byte, ops []byte) {
		if len(img) > 1<<20 {
			return
		}
		// A request that loops forever must fail the input, not stall
		// the fuzzer: the watchdog crashes the worker and the input is kept.
		defer watchdog.Start("qcow2 fuzz", 20*time.Second)()
		id := t.Name()
		mf := &blktest.Bounded{Data: append([]byte(nil), img...)}
		blktest.AddBounded(t, map[string]*blktest.Bounded{id: mf})
		reg := blk.NewRegistry(blktest.BoundedDriver, qcow2.Driver)
		opts := qdict.New()
		opts.Set("file.driver", "bounded")
		opts.Set("file.id", id)
		opts.Set("backing", "")
		if len(ops) > 0 {
			kv := fuzzOptions[int(ops[0])%len(fuzzOptions)]
			for i := 0; i+1 < len(kv); i += 2 {
				opts.Set(kv[i], kv[i+1])
			}
			if ops[0]&0x80 != 0 {
				// An external data file, for images with the data file bit.
				blktest.AddBounded(t, map[string]*blktest.Bounded{id + "-data": {}})
				opts.Set("data-file.driver", "bounded")
				opts.Set("data-file.id", id+"-data")
			}
		}
		// Bit 6 of the first op byte opens read-only (bitmaps load
		// read-only; op 9 reopens read/write and back); bit 5 opens as
		// qemu-img check does.
		ro := len(ops) > 0 && ops[0]&0x40 != 0
		check := len(ops) > 0 && ops[0]&0x20 != 0
		b, err := reg.Open(blk.Spec{Format: "qcow2", Opts: opts, Flags: blk.OpenFlags{Unmap: true, ReadOnly: ro, Check: check}}, blk.NewLoop(blk.NewVirtualClock()))
		if mf.Violation != "" {
			t.Fatalf("open: %s", mf.Violation)
		}
		if err != nil {
			if blk.ErrnoOf(err) == 0 {
				t.Errorf("open error without errno: %v", err)
			}
			return
		}
		closed := false
		defer func() {
			if !closed {
				b.Close()
			}
		}()
		var size int64
		_ = blktest_do(t, b, func(co *blk.Co) (err error) { size, err = b.Length(co); return })
		window := min(size, 1<<20)
		for i, op := range ops {
			if i >= 16 || window == 0 {
				break
			}
			off := int64(binary.LittleEndian.Uint16(append([]byte{op, byte(i)}, 0)[:2])) * 97 % window
			n := min(window-off, int64(op)*131+1)
			_ = blktest_do(t, b, func(co *blk.Co) error {
				switch op % 10 {
				case 0:
					return b.PRead(co, off, make([]byte, n))
				case 1:
					return b.PWrite(co, off, bytes.Repeat([]byte{op}, int(n)), 0)
				case 2:
					return b.PWriteZeroes(co, off, n, blk.MayUnmap)
				case 3:
					return b.PDiscard(co, off, n)
				case 4:
					for o := int64(0); o < window; {
						st, err := b.BlockStatus(co, o, window-o)
						if err != nil {
							return err
						}
						if st.Pnum <= 0 {
							mf.Violation = "block status made no progress at " + strconv.FormatInt(o, 10)
							return nil
						}
						o += st.Pnum
					}
					return nil
				case 5:
					return b.Flush(co)
				case 6:
					return b.Truncate(co, (size+int64(op)*512)&^511, blk.PreallocOff)
				case 7:
					return b.LoadVMState(co, make([]byte, n), off)
				case 9:
					return nil // between requests, below
				default:
					return b.SaveVMState(co, bytes.Repeat([]byte{op}, int(n)), off)
				}
			})
			if op%10 == 9 {
				// Reopen read-only (storing the bitmaps) or read/write
				// (marking them in use).
				ro = !ro
				_ = b.SetReadOnly(ro)
			}
			if mf.Violation != "" {
				t.Fatalf("op %d: %s", op%10, mf.Violation)
			}
		}
		// The consistency check, repairing as the last op says, then
		// again without repairing: it reports, it never panics.
		var fix blk.CheckMode
		if len(ops) > 0 && !b.ReadOnly() {
			fix = blk.CheckMode(ops[len(ops)-1] & 3)
		}
		mf.FarFails = true // a check repairs refcount blocks past the end
		for _, mode := range []blk.CheckMode{fix, 0} {
			_ = blktest_do(t, b, func(co *blk.Co) error {
				_, err := b.Check(co, mode, io.Discard)
				return err
			})
			if mf.Violation != "" {
				t.Fatalf("check %d: %s", mode, mf.Violation)
			}
		}
		// Close stores the bitmaps: it must stay inside the file too.
		closed = true
		_ = b.Close()
		if mf.Violation != "" {
			t.Fatalf("close: %s", mf.Violation)
		}
	})
}

// blktest_do runs fn as a request; a request that never finishes fails.
func blktest_do(t *testing.T, b *blk.Backend, fn func(co *blk.Co) error) error {
	var err error
	co := b.Loop().Spawn("fuzz", func(co *blk.Co) { err = fn(co) })
	if e := b.Loop().RunUntil("fuzz", co.Done); e != nil {
		t.Fatalf("request stuck: %v", e)
	}
	return err
}
