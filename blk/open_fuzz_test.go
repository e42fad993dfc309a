package blk_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gio/blk"
	"gio/blk/drivers/file"
	"gio/blk/drivers/null"
	"gio/blk/drivers/raw"
	"gio/blk/qdict"
	"gio/blkdebug"
	"gio/internal/watchdog"
)

// specReg is the driver set of the gio program (no test drivers: the
// memory driver would allocate whatever size a fuzzed option asks for).
var specReg = blk.NewRegistry(file.Driver, raw.Driver, null.CoDriver, null.AIODriver,
	blkdebug.NewDriver(func() io.Writer { return io.Discard }))

// safeSpec reports whether a fuzzed image spelling stays inside the
// current directory: no path separators (but null-co://), no "..", and no
// backslash, through which JSON could spell a slash.
func safeSpec(s string) bool {
	s = strings.ReplaceAll(s, "null-co://", "")
	s = strings.ReplaceAll(s, "null-aio://", "")
	return !strings.ContainsAny(s, "/\\") && !strings.Contains(s, "..")
}

// FuzzImageSpec feeds the image option and filename parser end to end:
// plain and prefixed filenames (json:, blkdebug:CFG:IMG, null-co://),
// --image-opts strings, open -o options with a filename, -f formats and
// the read-only flag, through blk.Registry.Open. Opening must not panic,
// a failure must be a short message (QEMU's are one line; the size
// parser's hint makes three), and an image that opens must answer a
// read and close without getting stuck.
func FuzzImageSpec(f *testing.F) {
	// Only the fuzz function runs in the scratch directory: the fuzzing
	// coordinator writes failing inputs relative to the working directory.
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "img"), make([]byte, 64<<10), 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.cfg"), []byte("[inject-error]\nevent = \"read_aio\"\nerrno = \"28\"\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct {
		mode       byte
		spec, opts string
	}{
		{0, "img", ""},
		{1, "img", ""},
		{0, "null-co://", ""},
		{0, "null-aio://", ""},
		{0, "blkdebug::img", ""},
		{0, "blkdebug:rules.cfg:img", ""},
		{0, "blkdebug:img", ""},
		{0, "blkdebug::", ""},
		{2, "driver=raw,file.driver=blkdebug,file.image.filename=img,file.align=4096", ""},
		{2, "driver=raw,file.driver=blkdebug,file.image.filename=img,file.align=3", ""},
		{2, "driver=raw,file.driver=blkdebug,file.image.filename=img,file.align=-1", ""},
		{2, "driver=blkdebug,image.filename=img,max-transfer=8192,align=4k,opt-discard=8k,max-discard=16k", ""},
		{2, "driver=raw,file.driver=blkdebug,file.image.filename=img,file.inject-error.0.event=read_aio,file.inject-error.0.errno=5,file.set-state.event=none,file.set-state.new_state=2", ""},
		{2, "driver=null-co,size=1E", ""},
		{2, "driver=null-co,size=-1", ""},
		{2, "driver=null-co,size=0x1k,read-zeroes=on,latency-ns=1000", ""},
		{2, "driver=raw,offset=512,size=1024,file.filename=img", ""},
		{2, "img", ""},
		{2, "driver=raw,file.driver=blkdebug,file.image=img", ""},
		{3, "img", "driver=raw,file.align=4k"},
		{3, "blkdebug::img", "driver=raw,file.align=4k,file.max-transfer=4k"},
		{3, "img", "driver=raw,read-only=on"},
		{4, `{"driver":"raw","file":{"driver":"blkdebug","image":{"driver":"file","filename":"img"},"inject-error":[{"event":"read_aio","errno":"28"}]}}`, ""},
		{4, `{"driver":"null-co","size":"1M"}`, ""},
		{4, `{bad`, ""},
		{4, `{"driver":"raw","file":{"driver":"file","filename":"img"},"file.align":1}`, ""},
		{0, "json:{\"driver\":\"blkdebug\",\"image\":{\"driver\":\"null-co\"},\"align\":65536}", ""},
		{5, "img", ""},
	} {
		f.Add(s.mode, s.spec, s.opts)
	}
	f.Fuzz(func(t *testing.T, mode byte, spec, opts string) {
		if !safeSpec(spec) || !safeSpec(opts) || len(spec)+len(opts) > 4096 {
			t.Skip()
		}
		defer watchdog.Start("image spec fuzz", 20*time.Second)()
		t.Chdir(dir)
		var sp blk.Spec
		sp.Flags.ReadOnly = mode&0x10 != 0
		sp.Flags.Unmap = mode&0x20 != 0
		sp.WriteThrough = mode&0x40 != 0
		switch mode & 7 {
		case 0:
			sp.Filename = spec
		case 1:
			sp.Filename, sp.Format = spec, "raw"
		case 2, 3:
			s := spec
			if mode&7 == 3 {
				sp.Filename, s = spec, opts
			}
			d, _, err := qdict.ParseKeyValue(s)
			if err != nil {
				checkMessage(t, s, err)
				return
			}
			sp.Opts = d
		case 4:
			sp.Filename = "json:" + spec
		case 5:
			sp.Filename, sp.Format = spec, opts
		default:
			sp.Filename, sp.Format = spec, "blkdebug"
		}
		loop := blk.NewLoop(blk.NewVirtualClock())
		b, err := specReg.Open(sp, loop)
		if err != nil {
			checkMessage(t, spec+" "+opts, err)
			return
		}
		var l int64
		var rerr error
		co := loop.Spawn("read", func(co *blk.Co) {
			if l, rerr = b.Length(co); rerr != nil {
				return
			}
			rerr = b.PRead(co, 0, make([]byte, min(l, 4096)))
		})
		if err := loop.RunUntil("read", co.Done); err != nil {
			t.Fatalf("%q: read after open got stuck: %v", spec, err)
		}
		if rerr != nil {
			checkMessage(t, spec, rerr)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("%q: close: %v", spec, err)
		}
	})
}

// checkMessage asserts that err reads as a QEMU message: not empty, at
// most three lines (the size parser's two-line hint) besides the input's
// own, and free of Go's
// formatting accidents.
func checkMessage(t *testing.T, input string, err error) {
	t.Helper()
	msg := err.Error()
	if strings.TrimSpace(msg) == "" {
		t.Fatalf("%q: empty error message (%T)", input, err)
	}
	// Newlines of the input may be echoed (a file name with one).
	if n := strings.Count(msg, "\n"); n > 2+strings.Count(input, "\n") {
		t.Fatalf("%q: error of %d lines: %q", input, n+1, msg)
	}
	for _, bad := range []string{"%!", "(MISSING)", "<nil>", "panic", "goroutine", "runtime error"} {
		if strings.Contains(msg, bad) && !strings.Contains(input, bad) {
			t.Fatalf("%q: error message contains %q: %q", input, bad, msg)
		}
	}
}
