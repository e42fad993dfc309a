package qed_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"gio/blk"
	"gio/blk/drivers/file"
	"gio/blk/drivers/qed"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// boundedFile is an in-memory image that records any access outside it
// (reads past the end rounded to a sector, writes far past it): the
// driver must never make one, whatever its tables say.
type boundedFile struct {
	data      []byte
	violation string
}

const growSlack = 64 << 20

var (
	filesMu sync.Mutex
	files   = map[string]*boundedFile{}
)

var boundedDriver = &blk.Driver{Name: "bounded", Open: func(a *blk.OpenArgs) (blk.Impl, error) {
	id, _ := a.Opts.TakeString("id")
	filesMu.Lock()
	defer filesMu.Unlock()
	if f := files[id]; f != nil {
		return f, nil
	}
	return nil, unix.ENOENT
}}

func (f *boundedFile) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	if end := (int64(len(f.data)) + 511) &^ 511; off < 0 || off+int64(len(buf)) > end {
		f.violation = "read at " + strconv.FormatInt(off, 10) + "+" + strconv.Itoa(len(buf)) + " past the end " + strconv.Itoa(len(f.data))
		return unix.EIO
	}
	clear(buf[copy(buf, f.data[min(off, int64(len(f.data))):]):])
	return nil
}

func (f *boundedFile) PWrite(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	end := off + int64(len(buf))
	if off < 0 || end > int64(len(f.data))+growSlack {
		f.violation = "write at " + strconv.FormatInt(off, 10) + " far past the end " + strconv.Itoa(len(f.data))
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

// seedImages makes QED images with the driver's own create and a few
// writes, in several geometries.
func seedImages(f *testing.F) [][]byte {
	var out [][]byte
	dir := f.TempDir()
	for i, o := range []map[string]string{
		{"cluster_size": "4096", "table_size": "2"},
		{"cluster_size": "4096", "table_size": "16"},
		{},
	} {
		path := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			f.Fatal(err)
		}
		reg := blk.NewRegistry(file.Driver, qed.Driver)
		opts := qdict.New()
		for k, v := range o {
			opts.Set(k, v)
		}
		loop := blk.NewLoop(blk.NewVirtualClock())
		if err := reg.Create("qed", path, 4<<20, opts, loop); err != nil {
			f.Fatal(err)
		}
		b, err := reg.Open(blk.Spec{Filename: path, Format: "qed"}, loop)
		if err != nil {
			f.Fatal(err)
		}
		_ = do(f, b, func(co *blk.Co) error {
			if err := b.PWrite(co, 1000, bytes.Repeat([]byte{0xaa}, 5000), 0); err != nil {
				return err
			}
			if err := b.PWriteZeroes(co, 64<<10, 64<<10, 0); err != nil {
				return err
			}
			return b.PWrite(co, 3<<20, bytes.Repeat([]byte{0xbb}, 3000), 0)
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

// FuzzOpen opens corrupted QED images and runs a few requests on them:
// open either fails with an errno or the image serves requests, never a
// panic, a hang or an access outside the file.
func FuzzOpen(f *testing.F) {
	for _, s := range seedImages(f) {
		f.Add(s, []byte{0, 1, 2, 3, 4, 5, 6})
		bad := append([]byte(nil), s...)
		binary.LittleEndian.PutUint64(bad[16:], 2) // need-check: repair on open
		f.Add(bad, []byte{1, 0})
	}
	f.Fuzz(func(t *testing.T, img []byte, ops []byte) {
		if len(img) > 1<<20 {
			return
		}
		watchdog := time.AfterFunc(20*time.Second, func() { panic("qed fuzz: input takes more than 20s") })
		defer watchdog.Stop()
		id := t.Name()
		bf := &boundedFile{data: append([]byte(nil), img...)}
		filesMu.Lock()
		files[id] = bf
		filesMu.Unlock()
		defer func() {
			filesMu.Lock()
			delete(files, id)
			filesMu.Unlock()
		}()
		reg := blk.NewRegistry(boundedDriver, qed.Driver)
		opts := qdict.New()
		opts.Set("file.driver", "bounded")
		opts.Set("file.id", id)
		opts.Set("backing", "")
		b, err := reg.Open(blk.Spec{Format: "qed", Opts: opts}, blk.NewLoop(blk.NewVirtualClock()))
		if bf.violation != "" {
			t.Fatalf("open: %s", bf.violation)
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
			off := (int64(op)<<8 | int64(i)) * 97 % window
			n := min(window-off, int64(op)*131+1)
			_ = do(t, b, func(co *blk.Co) error {
				switch op % 6 {
				case 0:
					return b.PRead(co, off, make([]byte, n))
				case 1:
					return b.PWrite(co, off, bytes.Repeat([]byte{op}, int(n)), 0)
				case 2:
					return b.PWriteZeroes(co, off, n, 0)
				case 3:
					for o := int64(0); o < window; {
						st, err := b.BlockStatus(co, o, window-o)
						if err != nil {
							return err
						}
						if st.Pnum <= 0 {
							bf.violation = "block status made no progress at " + strconv.FormatInt(o, 10)
							return nil
						}
						o += st.Pnum
					}
					return nil
				case 4:
					return b.Flush(co)
				default:
					return b.Truncate(co, (size+int64(op)*512)&^511, blk.PreallocOff)
				}
			})
			if bf.violation != "" {
				t.Fatalf("op %d: %s", op%6, bf.violation)
			}
		}
	})
}

// do runs fn as a request; one that never finishes fails the test.
func do(t testing.TB, b *blk.Backend, fn func(co *blk.Co) error) error {
	var err error
	co := b.Loop().Spawn("fuzz", func(co *blk.Co) { err = fn(co) })
	if e := b.Loop().RunUntil("fuzz", co.Done); e != nil {
		t.Fatalf("request stuck: %v", e)
	}
	return err
}
