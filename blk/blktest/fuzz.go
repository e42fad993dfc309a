package blktest

import (
	"bytes"
	"flag"
	"io"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"gio/blk"
	"gio/blk/qdict"
	"gio/internal/watchdog"

	"golang.org/x/sys/unix"
)

// Bounded is an in-memory image for the format drivers' fuzz targets: it
// records any access outside it (a read past the end rounded up to a
// sector, a write or growth far past it) in Violation, which a driver
// must never cause, whatever its tables say.
type Bounded struct {
	Data      []byte
	Violation string
	// FarFails: a write or truncation far past the end fails with
	// EFBIG, as on a file system that cannot hold the file, and is no
	// violation. For files whose far offsets are legitimate: a vmdk
	// flat extent (the descriptor says where the data goes, and a write
	// past the end grows the file), a qcow2 image while check repairs
	// it (a rebuilt refcount block goes after the end, at offsets taken
	// from the metadata).
	FarFails bool
}

// boundedSlack is how far past the end a write may go (appending
// clusters and tables).
const boundedSlack = 64 << 20

var (
	boundedMu sync.Mutex
	bounded   = map[string]*Bounded{}
)

// BoundedDriver ("bounded") opens the Bounded registered under the "id"
// option (AddBounded); a "filename" option is ignored.
var BoundedDriver = &blk.Driver{Name: "bounded", Open: func(a *blk.OpenArgs) (blk.Impl, error) {
	id, _ := a.Opts.TakeString("id")
	a.Opts.TakeString("filename")
	boundedMu.Lock()
	defer boundedMu.Unlock()
	if f := bounded[id]; f != nil {
		return f, nil
	}
	return nil, unix.ENOENT
}}

// AddBounded registers files under their ids for BoundedDriver until t
// ends.
func AddBounded(t testing.TB, files map[string]*Bounded) {
	boundedMu.Lock()
	maps.Copy(bounded, files)
	boundedMu.Unlock()
	t.Cleanup(func() {
		boundedMu.Lock()
		for id := range files {
			delete(bounded, id)
		}
		boundedMu.Unlock()
	})
}

func (f *Bounded) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	if end := (int64(len(f.Data)) + 511) &^ 511; off < 0 || off+int64(len(buf)) > end {
		f.Violation = "read at " + strconv.FormatInt(off, 10) + "+" + strconv.Itoa(len(buf)) + " past the end " + strconv.Itoa(len(f.Data))
		return unix.EIO
	}
	clear(buf[copy(buf, f.Data[min(off, int64(len(f.Data))):]):])
	return nil
}

func (f *Bounded) PWrite(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	end := off + int64(len(buf))
	if off >= 0 && f.FarFails && end > int64(len(f.Data))+boundedSlack {
		return unix.EFBIG
	}
	if off < 0 || end > int64(len(f.Data))+boundedSlack {
		f.Violation = "write at " + strconv.FormatInt(off, 10) + " far past the end " + strconv.Itoa(len(f.Data))
		return unix.EIO
	}
	f.grow(end)
	copy(f.Data[off:], buf)
	return nil
}

func (f *Bounded) grow(end int64) {
	if end > int64(len(f.Data)) {
		f.Data = append(f.Data, make([]byte, end-int64(len(f.Data)))...)
	}
}

func (f *Bounded) Truncate(co *blk.Co, size int64, exact bool, p blk.Prealloc) error {
	if size > int64(len(f.Data))+boundedSlack {
		if f.FarFails {
			return unix.EFBIG
		}
		f.Violation = "truncate far past the end"
		return unix.EIO
	}
	if size < int64(len(f.Data)) {
		f.Data = f.Data[:size]
	}
	f.grow(size)
	return nil
}

func (f *Bounded) Length(*blk.Co) (int64, error) { return int64(len(f.Data)), nil }
func (f *Bounded) Close() error                  { return nil }

// OpenOptions are what a format needs beyond its image to open: extra
// options of the format node (key-secret=...) and the secrets they name.
// The zero value is none.
type OpenOptions struct {
	Opts    map[string]string
	Secrets blk.Secrets
}

// openBounded opens img with format d over a Bounded file (no backing
// file); the Bounded is unregistered when the test ends.
func openBounded(t testing.TB, d *blk.Driver, img []byte, flags blk.OpenFlags, extra OpenOptions) (*Bounded, *blk.Backend, error) {
	id := t.Name()
	f := &Bounded{Data: append([]byte(nil), img...)}
	AddBounded(t, map[string]*Bounded{id: f})
	reg := blk.NewRegistry(BoundedDriver, d)
	if extra.Secrets != nil {
		reg.SetSecrets(extra.Secrets)
	}
	opts := qdict.New()
	opts.Set("file.driver", "bounded")
	opts.Set("file.id", id)
	for k, v := range extra.Opts {
		opts.Set(k, v)
	}
	if d.SupportsBacking {
		opts.Set("backing", "")
	}
	b, err := reg.Open(blk.Spec{Format: d.Name, Opts: opts, Flags: flags}, blk.NewLoop(blk.NewVirtualClock()))
	return f, b, err
}

// OpenImage opens the image bytes img with format d, in memory,
// read-only or not; the test fails if it does not open.
func OpenImage(t testing.TB, d *blk.Driver, img []byte, readOnly bool) *blk.Backend {
	t.Helper()
	_, b, err := openBounded(t, d, img, blk.OpenFlags{ReadOnly: readOnly}, OpenOptions{})
	if err != nil {
		t.Fatalf("open %s image: %v", d.Name, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// inputTimeLimit is how much CPU time one input may take before the
// watchdog (internal/watchdog: CPU time, so that a busy machine does
// not count) calls it a hang. While fuzzing, 20 s flags an input that makes a driver
// loop or crawl. A plain go test only replays the committed corpus, often
// with -race on a loaded machine (an input that takes 1 s on a quiet one
// took over 20 s at a load of 36 on 2 cores), so the replay's bound is
// generous: a verdict must not depend on the machine's load, and a real
// hang still ends long before go test's own -timeout.
func inputTimeLimit() time.Duration {
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return 20 * time.Second
	}
	return 5 * time.Minute
}

// FuzzFormat is the body of a format driver's fuzz target: it opens img
// (a corrupted image, at most 2 MiB: vhdx's log starts at 1 MiB) with
// format d over a Bounded file, without a backing file, and runs up to
// 16 requests chosen by ops on its first MiB (read, write, zero write,
// discard, a block-status walk, flush, compressed write, resize). Opening either fails with an errno or
// the image serves requests; a panic, a request that never ends, one
// input taking more than 20 s of CPU time while fuzzing (5 min in a replay), an error without an errno or an access
// outside the file fails the test.
func FuzzFormat(t *testing.T, d *blk.Driver, img, ops []byte) {
	fuzzFormat(t, d, img, ops, blk.OpenFlags{Unmap: true}, OpenOptions{})
}

// FuzzFormatWith is FuzzFormat for a format that needs more than its
// image to open (luks: a key-secret and the secret).
func FuzzFormatWith(t *testing.T, d *blk.Driver, img, ops []byte, extra OpenOptions) {
	fuzzFormat(t, d, img, ops, blk.OpenFlags{Unmap: true}, extra)
}

// FuzzFormatReadOnly is FuzzFormat for the formats QEMU only reads
// (bochs, cloop, dmg): the image is opened read-only, so the write
// requests among ops must fail cleanly.
func FuzzFormatReadOnly(t *testing.T, d *blk.Driver, img, ops []byte) {
	fuzzFormat(t, d, img, ops, blk.OpenFlags{ReadOnly: true}, OpenOptions{})
}

func fuzzFormat(t *testing.T, d *blk.Driver, img, ops []byte, flags blk.OpenFlags, extra OpenOptions) {
	if len(img) > 2<<20 {
		return
	}
	defer watchdog.Start(d.Name+" fuzz", inputTimeLimit())()
	fuzzCheckOpen(t, d, img, ops, flags, extra)
	f, b, err := openBounded(t, d, img, flags, extra)
	if f.Violation != "" {
		t.Fatalf("open: %s", f.Violation)
	}
	if err != nil {
		if blk.ErrnoOf(err) == 0 {
			t.Errorf("open error without errno: %v", err)
		}
		return
	}
	defer b.Close()
	var size int64
	_ = Do(t, b, "length", func(co *blk.Co) (err error) { size, err = b.Length(co); return })
	window := min(size, 1<<20)
	for i, op := range ops {
		if i >= 16 || window == 0 {
			break
		}
		off := (int64(op)<<8 | int64(i)) * 97 % window
		n := min(window-off, int64(op)*131+1)
		err := Do(t, b, "fuzz", func(co *blk.Co) error {
			switch op % 8 {
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
						f.Violation = "block status made no progress at " + strconv.FormatInt(o, 10)
						return nil
					}
					o += st.Pnum
				}
				return nil
			case 5:
				return b.Flush(co)
			case 6:
				return b.PWriteCompressed(co, off&^4095, make([]byte, 4096))
			default:
				return b.Truncate(co, (size+int64(op)*512)&^511, blk.PreallocOff)
			}
		})
		if f.Violation != "" {
			t.Fatalf("op %d: %s", op%8, f.Violation)
		}
		if err != nil && blk.ErrnoOf(err) == 0 {
			t.Errorf("op %d: error without errno: %v", op%8, err)
		}
	}
	// The check of the image the requests left, repairing as the last
	// op says.
	var fix blk.CheckMode
	if len(ops) > 0 && !b.ReadOnly() {
		fix = blk.CheckMode(ops[len(ops)-1] & 3)
	}
	fuzzChecks(t, f, b, fix)
}

// fuzzCheckOpen opens img as qemu-img check does (blk.OpenFlags.Check:
// the drivers leave their open-time repairs and checks to the check;
// read/write when the first op asks for a repair) and checks it.
func fuzzCheckOpen(t *testing.T, d *blk.Driver, img, ops []byte, flags blk.OpenFlags, extra OpenOptions) {
	var fix blk.CheckMode
	if len(ops) > 0 && !flags.ReadOnly {
		fix = blk.CheckMode(ops[0] & 3)
	}
	flags.Check = true
	flags.ReadOnly = fix == 0
	f, b, err := openBounded(t, d, img, flags, extra)
	if f.Violation != "" {
		t.Fatalf("check open: %s", f.Violation)
	}
	if err != nil {
		if blk.ErrnoOf(err) == 0 {
			t.Errorf("check open: error without errno: %v", err)
		}
		return
	}
	defer b.Close()
	fuzzChecks(t, f, b, fix)
}

// fuzzChecks runs the format's consistency check (if it has one) on b,
// repairing as fix says, then again without repairing, as qemu-img
// check -r does: whatever the image holds, the check reports, stays
// inside the file and never panics; an error carries an errno.
func fuzzChecks(t *testing.T, f *Bounded, b *blk.Backend, fix blk.CheckMode) {
	for _, mode := range []blk.CheckMode{fix, 0} {
		err := Do(t, b, "check", func(co *blk.Co) error {
			_, err := b.Check(co, mode, io.Discard)
			return err
		})
		if f.Violation != "" {
			t.Fatalf("check %d: %s", mode, f.Violation)
		}
		if err != nil && blk.ErrnoOf(err) == 0 {
			t.Errorf("check %d: error without errno: %v", mode, err)
		}
	}
}
