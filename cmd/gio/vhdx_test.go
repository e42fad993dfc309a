package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCreateVhdx compares create -f vhdx with qemu-img create, byte for
// byte but for what QEMU draws at random: the headers' sequence number,
// GUIDs and checksums, and the page 83 GUID. Refused options must be
// refused by both, with QEMU's message.
func TestCreateVhdx(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	for _, c := range []struct{ opts, size, err string }{
		{"", "100M", ""}, {"", "0", ""}, {"", "1000", ""}, {"", "2G", ""}, {"", "200G", ""}, {"", "64T", ""},
		{"subformat=fixed", "10M", ""}, {"subformat=fixed,block_state_zero=off,block_size=1M", "10M", ""},
		{"block_state_zero=off", "64M", ""}, {"log_size=3M,block_size=2M", "64M", ""}, {"log_size=100k", "5M", ""},
		{"block_size=300M", "1G", ""}, {"block_size=0", "1G", ""},
		{"block_size=3M", "64M", "Block size must be a power of two"},
		{"", "65537G", "Image size too large; max of 64TB"},
		{"subformat=foo", "1M", "Parameter 'subformat' does not accept value 'foo'"},
	} {
		t.Run(c.opts+"-"+c.size, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			q := []string{"create", "-q", "-f", "vhdx"}
			g := "create -f vhdx"
			if c.opts != "" {
				q = append(q, "-o", c.opts)
				g += " -o " + c.opts
			}
			qout, qerr := exec.Command("qemu-img", append(q, filepath.Join(dir, "q"), c.size)...).CombinedOutput()
			r := runIn(t, gioBin, dir, cmds(g+" ./g "+c.size), nil)
			if c.err != "" {
				if qerr == nil || !strings.Contains(string(qout), c.err) {
					t.Fatalf("qemu-img: %v\n%s", qerr, qout)
				}
				if r.rc == 0 || !strings.Contains(r.out, c.err) {
					t.Fatalf("gio create: rc %d\n%s", r.rc, r.out)
				}
				return
			}
			if qerr != nil {
				t.Fatalf("qemu-img: %v\n%s", qerr, qout)
			}
			if r.rc != 0 || r.out != "" {
				t.Fatalf("gio create: rc %d\n%s", r.rc, r.out)
			}
			qm, err1 := mapFile(filepath.Join(dir, "q"))
			gm, err2 := mapFile(filepath.Join(dir, "g"))
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			defer qm.unmap()
			defer gm.unmap()
			qb, gb := qm.b, gm.b // gb's copy-on-write pages take qb's random fields
			if len(qb) != len(gb) {
				t.Fatalf("lengths differ: qemu-img %d, gio %d", len(qb), len(gb))
			}
			meta := int(binary.LittleEndian.Uint64(qb[0x30040:]))
			for _, r := range [][2]int{{0x10004, 0x10030}, {0x20004, 0x20030}, {meta + 0x10010, meta + 0x10020}} {
				copy(gb[r[0]:r[1]], qb[r[0]:r[1]])
			}
			if i := firstMismatch(qb, gb); i >= 0 {
				t.Fatalf("images differ at byte %#x: qemu-img %#x, gio %#x", i, qb[i], gb[i])
			}
			if b, err := exec.Command("qemu-img", "check", "-f", "vhdx", filepath.Join(dir, "g")).CombinedOutput(); err != nil {
				t.Errorf("qemu-img check: %v\n%s", err, b)
			}
		})
	}
}

// TestVhdxSamples opens the vhdx sample images of QEMU's iotests (from
// iotests/run.sh's cached sources; skipped without them) as qemu-io
// does: read-only (the dirty-log one refused with QEMU's hint), then
// writable (its log replayed), with the same output and guest content.
func TestVhdxSamples(t *testing.T) {
	t.Parallel()
	home, _ := os.UserHomeDir()
	dir := filepath.Join(home, ".cache/gio-iotests/src/tests/qemu-iotests/sample_images")
	samples, _ := filepath.Glob(filepath.Join(dir, "*.vhdx.bz2"))
	if len(samples) == 0 {
		t.Skip("no iotests sample images (iotests/run.sh fetches them)")
	}
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not installed")
	}
	for _, s := range samples {
		name := strings.TrimSuffix(filepath.Base(s), ".bz2")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := map[string]string{}
			sample := filepath.Join(t.TempDir(), name)
			bunzipSparse(t, s, sample)
			for _, tool := range []string{"qemu-io", gioBin} {
				d := t.TempDir()
				img := filepath.Join(d, name)
				if err := copySparse(sample, img); err != nil {
					t.Fatal(err)
				}
				args := cmds("info", "read -P 0 0 512", "read 0 18M", "map")
				r1 := runIn(t, tool, d, append([]string{"-r"}, append(args, name)...), nil)
				r2 := runIn(t, tool, d, append(args, name), nil)
				content, err := exec.Command("qemu-img", "convert", "-O", "raw", img, img+".raw").CombinedOutput()
				if err != nil {
					t.Fatalf("qemu-img convert: %v\n%s", err, content)
				}
				_, sum, err := zeroHash(img + ".raw")
				if err != nil {
					t.Fatal(err)
				}
				out[tool] = fmt.Sprintf("%d\n%s%d\n%s%s", r1.rc, filterQemuIO(r1.out), r2.rc, filterQemuIO(r2.out), sum)
			}
			if out["qemu-io"] != out[gioBin] {
				t.Errorf("differs\n--- qemu-io\n%s\n--- gio\n%s", out["qemu-io"], out[gioBin])
			}
		})
	}
}

// bunzipSparse decompresses the bzip2 file src into dst, leaving holes
// where the content has 4 KiB blocks of zeroes (test-disk2vhd.vhdx is
// 260 MiB, nearly all zeroes: read into memory and written whole it cost
// seconds and gigabytes under -race).
func bunzipSparse(t *testing.T, src, dst string) {
	t.Helper()
	cmd := exec.Command("bzcat", src)
	r, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const blk = 4096
	buf, zero := make([]byte, 1<<20), make([]byte, blk)
	var off int64
	for {
		n, rerr := io.ReadFull(r, buf)
		for i := 0; i < n; i += blk {
			b := buf[i:min(n, i+blk)]
			if !bytes.Equal(b, zero[:len(b)]) {
				if _, err := f.WriteAt(b, off+int64(i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		off += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			t.Fatal(rerr)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bzcat %s: %v", src, err)
	}
	if err := f.Truncate(off); err != nil {
		t.Fatal(err)
	}
}
