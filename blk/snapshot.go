package blk

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"

	"gio/blk/qdict"
)

// AppendTempSnapshot puts a temporary qcow2 overlay on top of b's graph
// (QEMU's snapshot mode, bdrv_append_temp_snapshot): the image, which the
// caller opened read-only, becomes the overlay's backing node, so that
// writes land in the overlay and never reach it. The overlay is as large
// as the image, lives in $TMPDIR (else /var/tmp) and is unlinked as soon
// as it is open, so it is thrown away at close, or when the program dies.
// flags are the overlay's (writable unless the user asked for -r). On
// error the whole graph is closed: b must not be used any more.
func (r *Registry) AppendTempSnapshot(b *Backend, flags OpenFlags) error {
	err := r.appendTempSnapshot(b, flags)
	if err != nil {
		if b.Root != nil {
			b.Root.close()
		}
		b.Root = nil
	}
	return err
}

func (r *Registry) appendTempSnapshot(b *Backend, flags OpenFlags) error {
	d := r.Lookup("qcow2")
	if d == nil {
		return fmt.Errorf("Unknown driver 'qcow2'")
	}
	var size int64
	var lerr error
	co := b.loop.Spawn("snapshot size", func(co *Co) { size, lerr = b.Root.Length(co) })
	if err := b.loop.RunUntil("snapshot size", co.Done); err != nil {
		return err
	}
	if lerr != nil {
		return PrefixError("Could not get image size: ", lerr)
	}
	dir := os.Getenv("TMPDIR")
	if dir == "" {
		dir = "/var/tmp"
	}
	f, err := mkstemp(dir + "/vl.")
	if err != nil {
		return Errorf(ErrnoOf(err), "Could not get temporary filename")
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	if err := r.Create("qcow2", name, size, qdict.New(), b.loop); err != nil {
		return PrefixError("Could not create temporary overlay '"+name+"': ", err)
	}
	opts := qdict.New()
	opts.Set("file.driver", "file")
	opts.Set("file.filename", name)
	n, err := r.openWith(d, opts, flags, b.loop, false, map[string]*Node{"backing": b.Root}, nil)
	if err != nil {
		// openWith closed its children, the image among them.
		b.Root = nil
		return err
	}
	b.Root = n
	b.flags.ReadOnly = flags.ReadOnly
	b.probed = false
	return nil
}

// mkstemp creates a new file named prefix and six random letters or
// digits, as glibc's mkstemp does for QEMU's get_tmp_filename
// ("/var/tmp/vl.XXXXXX"): messages that name the file then look the same.
func mkstemp(prefix string) (*os.File, error) {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for range 1000 {
		b := []byte(prefix + "XXXXXX")
		for i := len(prefix); i < len(b); i++ {
			b[i] = chars[rand.IntN(len(chars))]
		}
		f, err := os.OpenFile(string(b), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, os.ErrExist) {
			return f, err
		}
	}
	return nil, os.ErrExist
}
