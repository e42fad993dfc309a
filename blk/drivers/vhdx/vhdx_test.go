package vhdx

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"

	"golang.org/x/sys/unix"
)

func openFile(t *testing.T, path string, ro bool) (*blk.Backend, error) {
	t.Helper()
	reg := blk.NewRegistry(file.Driver, Driver)
	return reg.Open(blk.Spec{Filename: path, Format: "vhdx", Flags: blk.OpenFlags{ReadOnly: ro}}, blk.NewLoop(blk.NewVirtualClock()))
}

// TestLogReplay: the fuzz seed's pending log entry refuses a read-only
// open with QEMU's message, and a writable open replays it (the BAT
// sector and the zero run land, the log GUID is cleared) so that a
// read-only open then works.
func TestLogReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.vhdx")
	img := expand(compactImage(true))
	copy(img[300*kib:], bytes.Repeat([]byte{0xee}, logSector))
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := openFile(t, path, true); !errors.Is(err, unix.EPERM) || !bytes.Contains([]byte(err.Error()), []byte("contains a log that needs to be replayed")) {
		t.Fatalf("read-only open of a dirty image: %v", err)
	}
	b, err := openFile(t, path, false)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if e := le.Uint64(got[fuzzBAT+16:]); e != blockUndefined {
		t.Errorf("BAT entry 2 after replay: %#x", e)
	}
	if !bytes.Equal(got[300*kib:300*kib+logSector], make([]byte, logSector)) {
		t.Error("zero descriptor not replayed")
	}
	b, err = openFile(t, path, true)
	if err != nil {
		t.Fatalf("read-only open after replay: %v", err)
	}
	b.Close()
}

// TestReadWrite: data written into each block state reads back, also
// after reopening (the BAT entries went through the log).
func TestReadWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rw.vhdx")
	if err := os.WriteFile(path, expand(compactImage(false)), 0o644); err != nil {
		t.Fatal(err)
	}
	pat := bytes.Repeat([]byte{0x5a}, 3*mib)
	for round := 0; round < 2; round++ {
		b, err := openFile(t, path, false)
		if err != nil {
			t.Fatal(err)
		}
		err = blktest.Do(t, b, "rw", func(co *blk.Co) error {
			if round == 0 {
				if err := b.PWrite(co, 512*kib, pat, 0); err != nil {
					return err
				}
			}
			got := make([]byte, 4*mib)
			if err := b.PRead(co, 0, got); err != nil {
				return err
			}
			want := make([]byte, 4*mib)
			copy(want[512*kib:], pat)
			if !bytes.Equal(got, want) {
				t.Errorf("round %d: content differs", round)
			}
			return nil
		})
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestLogEntryAsLongAsTheLog: an entry as long as a 4 GiB log brings
// QEMU's log scan back to where it started, forever (qemu-io hangs on
// this image); gio stops after one pass, past the end of the file
// without reading, and opens the image.
func TestLogEntryAsLongAsTheLog(t *testing.T) {
	img := compactImage(true)
	for _, off := range []int{header1Offset, header2Offset} {
		h := img[off : off+headerCRCSize]
		le.PutUint32(h[hLogLength:], 0xfff00000)
		setChecksum(h, hChecksum)
	}
	e := img[splitAt:]
	le.PutUint32(e[lEntryLen:], 0xfff00000)
	setChecksum(e[:2*logSector], lChecksum)
	path := filepath.Join(t.TempDir(), "long.vhdx")
	if err := os.WriteFile(path, expand(img), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := openFile(t, path, true)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}
