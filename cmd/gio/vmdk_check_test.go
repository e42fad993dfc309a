package main

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCheckVmdk compares gio check with qemu-img check (every mode of
// checkModes) on monolithic vmdk images, sound and corrupted: grain
// table entries past the end of the file, a file cut short, zeroed
// grains, compressed grains. vmdk_co_check stops at the first grain past
// the end ("Check failed"), and has no repair (exit 63 with -r). Skips
// without qemu-img.
func TestCheckVmdk(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
	t.Parallel()
	for _, c := range []struct {
		name, opts string
		writes     []string
		corrupt    func(t *testing.T, img string)
		status     int // qemu-img check's exit status without options
	}{
		{name: "clean", writes: []string{"write -P 1 0 64k", "write -P 2 1M 4k"}},
		{name: "zeroed", opts: "zeroed_grain=on", writes: []string{"write -P 1 0 64k", "write -z 64k 128k"}},
		{name: "stream", opts: "subformat=streamOptimized", writes: []string{"write -c -P 1 0 64k", "write -c -P 2 128k 64k"}},
		{name: "grain-past-eof", writes: []string{"write -P 1 0 64k", "write -P 2 1M 4k"}, status: 1,
			corrupt: func(t *testing.T, img string) { setGrainEntry(t, img, 16, 0x100000) }},
		{name: "grain-inside", writes: []string{"write -P 1 0 64k"},
			corrupt: func(t *testing.T, img string) { setGrainEntry(t, img, 3, 1) }},
		{name: "cut-short", writes: []string{"write -P 1 0 64k", "write -P 2 1M 4k"}, status: 1,
			corrupt: func(t *testing.T, img string) {
				fi, err := os.Stat(img)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(img, fi.Size()-64<<10); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "stream-past-eof", opts: "subformat=streamOptimized", writes: []string{"write -c -P 1 0 64k", "write -c -P 2 128k 64k"}, status: 1,
			corrupt: func(t *testing.T, img string) { setGrainEntry(t, img, 2, 0x10000) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "img.vmdk")
			args := []string{"create", "-q", "-f", "vmdk"}
			if c.opts != "" {
				args = append(args, "-o", c.opts)
			}
			mustRun(t, "qemu-img", append(args, img, "4M")...)
			io := []string{}
			for _, w := range c.writes {
				io = append(io, "-c", w)
			}
			mustRun(t, "qemu-io", append(io, img)...)
			if c.corrupt != nil {
				c.corrupt(t, img)
			}
			if got := diffCheck(t, img, checkModes); got != c.status {
				t.Errorf("qemu-img check exit %d, want %d (the corruption missed?)", got, c.status)
			}
		})
	}
}

// setGrainEntry sets entry i of a monolithic sparse vmdk's first grain
// table (the one the grain directory's first entry names) to sector.
func setGrainEntry(t *testing.T, img string, i int64, sector uint32) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	le := binary.LittleEndian
	var b [8]byte
	if _, err := f.ReadAt(b[:], 56); err != nil {
		t.Fatal(err)
	}
	gd := int64(le.Uint64(b[:]))
	if gd == -1 {
		// streamOptimized: the grain directory is in the footer's copy
		// of the header, the file's last sector but one.
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(b[:], fi.Size()-1024+56); err != nil {
			t.Fatal(err)
		}
		gd = int64(le.Uint64(b[:]))
	}
	if _, err := f.ReadAt(b[:4], gd*512); err != nil {
		t.Fatal(err)
	}
	gt := int64(le.Uint32(b[:4]))
	le.PutUint32(b[:4], sector)
	if _, err := f.WriteAt(b[:4], gt*512+4*i); err != nil {
		t.Fatal(err)
	}
}
