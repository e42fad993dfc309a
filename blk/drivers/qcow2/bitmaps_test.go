package qcow2_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"gio/blk"
	"gio/blk/drivers/qcow2"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// logFile is an in-memory file that logs every write and flush, so a
// test can rebuild the file as a crash at any point would leave it.
type logFile struct {
	data []byte
	log  []logEntry
}

// logEntry is a write, or a flush when flush is set.
type logEntry struct {
	off   int64
	data  []byte
	flush bool
}

var (
	logMu    sync.Mutex
	logFiles = map[string]*logFile{}
)

var logDriver = &blk.Driver{
	Name: "logfile",
	Open: func(a *blk.OpenArgs) (blk.Impl, error) {
		id, _ := a.Opts.TakeString("id")
		logMu.Lock()
		defer logMu.Unlock()
		if f := logFiles[id]; f != nil {
			return f, nil
		}
		return nil, unix.ENOENT
	},
}

func (f *logFile) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	n := copy(buf, f.data[min(off, int64(len(f.data))):])
	clear(buf[n:])
	return nil
}

func (f *logFile) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	f.log = append(f.log, logEntry{off: off, data: append([]byte(nil), buf...)})
	f.data = applyWrite(f.data, off, buf)
	return nil
}

func (f *logFile) FlushToDisk(co *blk.Co) error {
	f.log = append(f.log, logEntry{flush: true})
	return nil
}

func (f *logFile) Length(co *blk.Co) (int64, error) { return int64(len(f.data)), nil }
func (f *logFile) Close() error                     { return nil }

func (f *logFile) Truncate(co *blk.Co, size int64, exact bool, prealloc blk.Prealloc) error {
	f.data = applyWrite(f.data, size, nil)[:size]
	return nil
}

func applyWrite(data []byte, off int64, buf []byte) []byte {
	if end := off + int64(len(buf)); end > int64(len(data)) {
		data = append(data, make([]byte, end-int64(len(data)))...)
	}
	copy(data[off:], buf)
	return data
}

// openLogged opens img through a logFile, read/write.
func openLogged(t *testing.T, id string, f *logFile) *blk.Backend {
	t.Helper()
	logMu.Lock()
	logFiles[id] = f
	logMu.Unlock()
	t.Cleanup(func() {
		logMu.Lock()
		delete(logFiles, id)
		logMu.Unlock()
	})
	opts := qdict.New()
	opts.Set("file.driver", "logfile")
	opts.Set("file.id", id)
	reg := blk.NewRegistry(logDriver, qcow2.Driver)
	b, err := reg.Open(blk.Spec{Format: "qcow2", Opts: opts, Flags: blk.OpenFlags{Unmap: true}}, blk.NewLoop(blk.NewVirtualClock()))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return b
}

// imgBitmaps is what qemu-img info says of an image's bitmaps.
func imgBitmaps(t *testing.T, path string) []map[string]any {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	var info struct {
		Specific struct {
			Data struct {
				Bitmaps []map[string]any `json:"bitmaps"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	return info.Specific.Data.Bitmaps
}

// TestBitmapsCrashSafety rebuilds the image as a crash after every
// write of a session (the open marking the bitmaps in use, guest writes,
// the close storing them) would leave it, in order and with the writes
// since the last flush reordered, and asks qemu-img check whether
// anything worse than leaked clusters is there. Each state must open in
// QEMU, with every bitmap either stored (not in use) or in use
// (inconsistent): never a half-written directory.
func TestBitmapsCrashSafety(t *testing.T) {
	haveQemuImg(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "img.qcow2")
	run(t, dir, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", path, "4M")
	run(t, dir, "qemu-img", "bitmap", "--add", path, "b1")
	run(t, dir, "qemu-img", "bitmap", "--add", "-g", "512", path, "b2")
	run(t, dir, "qemu-img", "bitmap", "--add", "--disable", path, "b3")
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	session := func(f *logFile, fill byte) {
		b := openLogged(t, t.Name()+strconv.Itoa(int(fill)), f)
		if err := do(t, b, func(co *blk.Co) error {
			if err := b.PWrite(co, 1000, bytes.Repeat([]byte{fill}, 70000), 0); err != nil {
				return err
			}
			if err := b.PWriteZeroes(co, 2<<20, 300<<10, 0); err != nil {
				return err
			}
			return b.PDiscard(co, 1<<20, 64<<10)
		}); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A first session leaves stored bitmaps with data; the second
	// replaces them, and is the one crashed.
	first := &logFile{data: img}
	session(first, 1)
	base := append([]byte(nil), first.data...)
	second := &logFile{data: append([]byte(nil), base...)}
	session(second, 2)
	if err := os.WriteFile(path, second.data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "check", path).CombinedOutput(); err != nil {
		t.Fatalf("final image: %v\n%s", err, out)
	}
	for _, bm := range imgBitmaps(t, path) {
		if flags, _ := json.Marshal(bm["flags"]); bytes.Contains(flags, []byte("in-use")) {
			t.Errorf("bitmap %v still in use after close", bm["name"])
		}
	}
	t.Logf("%d writes and flushes logged", len(second.log))
	if len(second.log) < 10 {
		t.Fatalf("only %d writes logged", len(second.log))
	}
	for k := 0; k <= len(second.log); k++ {
		for _, reorder := range []bool{false, true} {
			data := append([]byte(nil), base...)
			seg := 0 // start of the writes since the last flush
			for i, e := range second.log[:k] {
				if e.flush {
					seg = i + 1
				}
			}
			writes := second.log[:k]
			if reorder {
				// The writes since the last flush reach the disk in
				// reverse order, and the crash keeps only the later half.
				tail := second.log[seg:k]
				writes = append(append([]logEntry(nil), second.log[:seg]...), tail[len(tail)/2:]...)
			}
			for _, e := range writes {
				if !e.flush {
					data = applyWrite(data, e.off, e.data)
				}
			}
			p := filepath.Join(dir, "crash.qcow2")
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("qemu-img", "check", p).CombinedOutput()
			var ee *exec.ExitError
			if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
				t.Fatalf("crash after write %d/%d (reordered %v): qemu-img check: %v\n%s", k, len(second.log), reorder, err, out)
			}
			if n := len(imgBitmaps(t, p)); n != 0 && n != 3 {
				t.Fatalf("crash after write %d: %d bitmaps", k, n)
			}
		}
	}
}
