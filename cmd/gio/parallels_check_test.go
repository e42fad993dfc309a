package main

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCheckParallels compares "gio check" with "qemu-img check" on
// parallels images: clean, not closed correctly with space leaked at the
// end, and a BAT entry outside the image (repairs included; QEMU grows
// the file at close to the corrupt data end, which gio never does, so
// that image is compared without repair).
func TestCheckParallels(t *testing.T) {
	t.Parallel() // subprocesses only
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(tool + " not on PATH")
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "clean.parallels")
	for _, argv := range [][]string{
		{"qemu-img", "create", "-q", "-f", "parallels", "-o", "cluster_size=4k", img, "1M"},
		{"qemu-io", "-c", "write -P 1 0 8k", "-c", "write -P 2 64k 4k", img},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
	}
	clean, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name string, change func(b []byte) []byte) string {
		b := change(append([]byte(nil), clean...))
		p := filepath.Join(dir, name+".parallels")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unclean := variant("unclean", func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[44:], 0x746F6E59)
		return append(b, make([]byte, 10000)...)
	})
	outside := variant("outside", func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[64+4*5:], 0x100000)
		return b
	})
	for _, c := range []struct {
		img   string
		modes [][]string
	}{{img, checkModes}, {unclean, checkModes}, {outside, [][]string{nil, {"--output=json"}}}} {
		t.Run(filepath.Base(c.img), func(t *testing.T) {
			t.Parallel()
			diffCheck(t, c.img, c.modes)
		})
	}
}
