package main

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCheckFormats compares "gio check" with "qemu-img check" (output,
// exit status, the image after a repair) on qed, vdi and vhdx images:
// clean ones made by qemu-img and qemu-io, and copies corrupted on
// purpose the ways their checks look for. The crash tests compare the
// checks on images left by kills too (qcow2_crash_test.go,
// vhdx_crash_test.go).
func TestCheckFormats(t *testing.T) {
	t.Parallel() // subprocesses only
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(tool + " not on PATH")
		}
	}
	dir := t.TempDir()
	mkimg := func(format, size string, opts string, writes ...string) []byte {
		img := filepath.Join(dir, "clean."+format)
		args := []string{"create", "-q", "-f", format}
		if opts != "" {
			args = append(args, "-o", opts)
		}
		mustRun(t, "qemu-img", append(args, img, size)...)
		var io []string
		for _, w := range writes {
			io = append(io, "-c", w)
		}
		mustRun(t, "qemu-io", append(io, img)...)
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	le := binary.LittleEndian
	type variant struct {
		name   string
		change func(b []byte) []byte
	}
	run := func(format string, clean []byte, vs []variant) {
		for _, v := range append([]variant{{"clean", func(b []byte) []byte { return b }}}, vs...) {
			t.Run(format+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				p := filepath.Join(t.TempDir(), v.name+"."+format)
				if err := os.WriteFile(p, v.change(append([]byte(nil), clean...)), 0o644); err != nil {
					t.Fatal(err)
				}
				diffCheck(t, p, checkModes)
			})
		}
	}

	// qed: 64 KiB clusters, L1 table at 64 KiB (4 clusters), the first
	// L2 table after it.
	qed := mkimg("qed", "10M", "", "write 0 100k", "write 5M 64k")
	const cs = 64 << 10
	l1 := le.Uint64(qed[40:])
	l2 := le.Uint64(qed[l1:])
	needCheck := func(b []byte) { le.PutUint64(b[16:], le.Uint64(b[16:])|2) }
	run("qed", qed, []variant{
		{"leak", func(b []byte) []byte { return append(b, make([]byte, 3*cs)...) }},
		{"past-end", func(b []byte) []byte {
			le.PutUint64(b[l2+8*3:], uint64(len(b)+10*cs))
			return b
		}},
		{"past-end-need-check", func(b []byte) []byte {
			le.PutUint64(b[l2+8*3:], uint64(len(b)+10*cs))
			needCheck(b)
			return b
		}},
		{"need-check-leak", func(b []byte) []byte {
			needCheck(b)
			return append(b, make([]byte, cs)...)
		}},
		{"shared-cluster", func(b []byte) []byte {
			copy(b[l2+8*5:], b[l2:l2+8])
			return b
		}},
		{"bad-l1", func(b []byte) []byte {
			le.PutUint64(b[l1+8:], 12345)
			return b
		}},
		{"l2-over-l1", func(b []byte) []byte {
			le.PutUint64(b[l1+8:], l1)
			return b
		}},
	})

	// qed with 4 KiB clusters and a file past 4095 of them, where QEMU's
	// cluster count divides by cluster_size - 1 (checkClusters): one
	// more leak per 4095 clusters, and the clusters after that numbered
	// one further.
	qed4k := mkimg("qed", "64M", "cluster_size=4k", "write 0 17M", "write 40M 4k")
	run("qed-4k", qed4k, []variant{
		{"leak", func(b []byte) []byte { return append(b, make([]byte, 3*4096)...) }},
	})

	// vdi: the block map at 512, 4-byte entries; the header's block
	// count at 0x180, allocated count at 0x184, disk size at 0x170.
	vdi := mkimg("vdi", "5M", "", "write 0 100k", "write 3M 64k")
	bmap := int(le.Uint32(vdi[0x154:]))
	run("vdi", vdi, []variant{
		{"too-large", func(b []byte) []byte { le.PutUint32(b[bmap+4*2:], 1000); return b }},
		{"shared-block", func(b []byte) []byte { le.PutUint32(b[bmap+4*4:], 0); return b }},
		{"count", func(b []byte) []byte { le.PutUint32(b[0x184:], 7); return b }},
		{"map-past-end", func(b []byte) []byte {
			le.PutUint32(b[0x180:], 3000)
			le.PutUint64(b[0x170:], 3000<<20)
			return b[:bmap+1024]
		}},
	})

	// vhdx: a BAT entry past the end of a cut file; a log to replay.
	vhdx := mkimg("vhdx", "50M", "", "write 0 100k", "write 30M 64k")
	run("vhdx", vhdx, []variant{
		{"truncated", func(b []byte) []byte { return b[:len(b)-4096] }},
		{"truncated-more", func(b []byte) []byte { return b[:len(b)-(3<<20)] }},
	})
	if dirty := iotestsSample(t, "iotest-dirtylog-10G-4M.vhdx.bz2"); dirty != nil {
		t.Run("vhdx/dirty-log", func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "dirty-log.vhdx")
			if err := os.WriteFile(p, dirty, 0o644); err != nil {
				t.Fatal(err)
			}
			diffCheck(t, p, checkModes)
		})
	}
}

// iotestsSample is one of QEMU's iotests sample images, unpacked, when
// iotests/run.sh has cached QEMU's sources (else nil).
func iotestsSample(t *testing.T, name string) []byte {
	cache := os.Getenv("GIO_IOTESTS_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		cache = filepath.Join(home, ".cache", "gio-iotests")
	}
	p := filepath.Join(cache, "src", "tests", "qemu-iotests", "sample_images", name)
	if _, err := os.Stat(p); err != nil {
		t.Logf("%s not cached (iotests/run.sh fetches it): skipped", name)
		return nil
	}
	out, err := exec.Command("bzcat", p).Output()
	if err != nil {
		t.Logf("bzcat %s: %v: skipped", name, err)
		return nil
	}
	return out
}
