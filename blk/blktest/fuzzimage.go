package blktest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gio/blk"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// This file is a fuzz harness for format drivers: FuzzImage opens a
// corrupted image held in memory and runs a few requests on it. Errors
// are fine; a panic, a request that never ends, an error without an
// errno, or an access outside the image (a read past its end, which blk
// never hands down for a sane driver, or a write far past it, which
// means an offset taken from corrupt metadata) fail the input.

// fuzzSlack bounds how far past the end of the image one write or resize
// may reach: formats grow their file block by block.
const fuzzSlack = 64 << 20

// boundedFile is the in-memory image; it records the first access
// outside it.
type boundedFile struct {
	data      []byte
	violation string
}

var (
	imageFuzzMu  sync.Mutex
	boundedFiles = map[string]*boundedFile{}
)

// boundedDriver opens the boundedFile registered under option "id".
var boundedDriver = &blk.Driver{Name: "blktest-bounded", Open: func(a *blk.OpenArgs) (blk.Impl, error) {
	id, _ := a.Opts.TakeString("id")
	imageFuzzMu.Lock()
	defer imageFuzzMu.Unlock()
	if f := boundedFiles[id]; f != nil {
		return f, nil
	}
	return nil, unix.ENOENT
}}

func (f *boundedFile) PRead(_ *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	if end := (int64(len(f.data)) + 511) &^ 511; off < 0 || off+int64(len(buf)) > end {
		f.violation = fmt.Sprintf("read at %d+%d past the end %d", off, len(buf), len(f.data))
		return unix.EIO
	}
	clear(buf[copy(buf, f.data[min(off, int64(len(f.data))):]):])
	return nil
}

func (f *boundedFile) PWrite(_ *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	end := off + int64(len(buf))
	if off < 0 || end > int64(len(f.data))+fuzzSlack {
		f.violation = fmt.Sprintf("write at %d+%d far past the end %d", off, len(buf), len(f.data))
		return unix.EIO
	}
	if end > int64(len(f.data)) {
		f.data = append(f.data, make([]byte, end-int64(len(f.data)))...)
	}
	copy(f.data[off:], buf)
	return nil
}

func (f *boundedFile) Length(*blk.Co) (int64, error) { return int64(len(f.data)), nil }
func (f *boundedFile) Close() error                  { return nil }

func (f *boundedFile) Truncate(_ *blk.Co, size int64, _ bool, _ blk.Prealloc) error {
	if size > int64(len(f.data))+fuzzSlack {
		f.violation = fmt.Sprintf("resize to %d far past the end %d", size, len(f.data))
		return unix.EIO
	}
	if size < int64(len(f.data)) {
		f.data = f.data[:size]
	} else {
		f.data = append(f.data, make([]byte, size-int64(len(f.data)))...)
	}
	return nil
}

// FuzzImage opens img with format driver d over an in-memory file and
// runs the requests ops encodes (read, write, zero write, discard, a
// block-status walk, flush, resize) over its first MiB, failing t on a
// violation of the rules above.
func FuzzImage(t *testing.T, d *blk.Driver, img, ops []byte) {
	if len(img) > 1<<20 {
		return
	}
	watchdog := time.AfterFunc(20*time.Second, func() { panic(d.Name + " fuzz: input takes more than 20s") })
	defer watchdog.Stop()
	id := t.Name()
	f := &boundedFile{data: append([]byte(nil), img...)}
	imageFuzzMu.Lock()
	boundedFiles[id] = f
	imageFuzzMu.Unlock()
	defer func() {
		imageFuzzMu.Lock()
		delete(boundedFiles, id)
		imageFuzzMu.Unlock()
	}()
	reg := blk.NewRegistry(boundedDriver, d)
	opts := qdict.New()
	opts.Set("file.driver", boundedDriver.Name)
	opts.Set("file.id", id)
	b, err := reg.Open(blk.Spec{Format: d.Name, Opts: opts, Flags: blk.OpenFlags{Unmap: true}}, blk.NewLoop(blk.NewVirtualClock()))
	if f.violation != "" {
		t.Fatalf("open: %s", f.violation)
	}
	if err != nil {
		if blk.ErrnoOf(err) == 0 {
			t.Errorf("open error without errno: %v", err)
		}
		return
	}
	defer b.Close()
	var size int64
	_ = Do(t, b, "fuzz length", func(co *blk.Co) (err error) { size, err = b.Length(co); return })
	window := min(size, 1<<20)
	for i, op := range ops {
		if i >= 16 || window == 0 {
			break
		}
		off := int64(binary.LittleEndian.Uint16([]byte{op, byte(i)})) * 97 % window
		n := min(window-off, int64(op)*131+1)
		err := Do(t, b, "fuzz op", func(co *blk.Co) error {
			switch op % 7 {
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
						f.violation = fmt.Sprintf("block status made no progress at %d", o)
						return nil
					}
					o += st.Pnum
				}
				return nil
			case 5:
				return b.Flush(co)
			default:
				return b.Truncate(co, (size+int64(op)*512)&^511, blk.PreallocOff)
			}
		})
		if f.violation != "" {
			t.Fatalf("op %d: %s", op%7, f.violation)
		}
		if err != nil && blk.ErrnoOf(err) == 0 {
			t.Errorf("op %d: error without errno: %v", op%7, err)
		}
	}
}

// CreateSeed makes an image with reg's format driver (reg must know the
// file driver) and runs write on it, for a fuzz target's seed corpus.
// Only the first 64 KiB are kept: the fuzzer mutates big inputs slowly,
// and the metadata is at the start (a driver meets the rest as an image
// cut short).
func CreateSeed(f *testing.F, reg *blk.Registry, format string, size int64, opts *qdict.Dict, write func(co *blk.Co, b *blk.Backend) error) []byte {
	path := filepath.Join(f.TempDir(), "seed")
	loop := blk.NewLoop(blk.NewVirtualClock())
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		f.Fatal(err)
	}
	if err := reg.Create(format, path, size, opts, loop); err != nil {
		f.Fatal(err)
	}
	if write != nil {
		b, err := reg.Open(blk.Spec{Filename: path, Format: format}, loop)
		if err != nil {
			f.Fatal(err)
		}
		if err := Do(f, b, "seed", func(co *blk.Co) error { return write(co, b) }); err != nil {
			f.Fatal(err)
		}
		b.Close()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return data[:min(len(data), 64<<10)]
}
