package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Committed setups: the files that the LUKS-making setup lines of the
// recorded cases leave (qemu-img create -f luks, encrypt.format=luks,
// qemu-img amend adding a key slot) are kept in testdata/setups, one
// directory per distinct setup, and a plain "go test" lays them out
// instead of running qemu-img. Each such qemu-img costs about 2 s of CPU
// in QEMU's PBKDF2 calibration (see makesLUKS) and draws random keys, so
// the files cannot be made again cheaply, or the same.
//
// An entry is testdata/setups/HASH/key (setupKey: the case's size, files
// and setup lines) and one NAME.gz per file the lines left (see
// writeExtents). "go test -run TestRecorded -update" makes every entry
// it meets afresh with the real qemu-img; TestCommittedSetups checks
// that the entries and the cases agree (an entry no case uses, a case
// with no entry), and TestCommittedSetupFresh that images qemu-img makes
// now still give the recorded answers.
//
// Without qemu-img, the cases with a committed setup run all the same.
var committedSetups = committedStore{dir: "testdata/setups"}

type committedStore struct{ dir string }

// committedKey is the key of c's first n setup lines in the committed
// store, "" for lines it does not hold. It holds the setups of qemu-img
// lines only: LUKS headers and key slots gzip to at most 1.3 MB, while
// guest data that qemu-io writes through an encrypted image does not
// compress at all (4 MB for crypto/chain.txt's backing file, left to
// the user's cache, lastingSetups).
func committedKey(c *recCase, n int) string {
	for _, a := range c.setup[:n] {
		if a[0] != "qemu-img" {
			return ""
		}
	}
	return setupKey(c, n)
}

// entry is the directory of key's entry.
func (cs committedStore) entry(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(cs.dir, hex.EncodeToString(sum[:8]))
}

// restore lays out the files of key's entry in dir and says whether
// there was one.
func (cs committedStore) restore(t *testing.T, key, dir string) bool {
	t.Helper()
	e := cs.entry(key)
	if k, err := os.ReadFile(filepath.Join(e, "key")); err != nil || string(k) != key {
		return false
	}
	names, err := filepath.Glob(filepath.Join(e, "*.gz"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range names {
		name := strings.TrimSuffix(filepath.Base(p), ".gz")
		if err := readExtents(p, filepath.Join(dir, name)); err != nil {
			t.Fatalf("committed setup %s: %v", p, err)
		}
	}
	return true
}

// save replaces key's entry with the regular files of dir.
func (cs committedStore) save(t *testing.T, key, dir string) {
	t.Helper()
	e := cs.entry(key)
	if err := os.RemoveAll(e); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		if d.Type().IsRegular() {
			if err := writeExtents(filepath.Join(dir, d.Name()), filepath.Join(e, d.Name()+".gz")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(e, "key"), []byte(key), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeExtents stores the file at src as a gzip stream of
//
//	gio-extents SIZE MODE
//	OFF LEN
//	(LEN bytes)
//	...
//
// one OFF LEN record per data extent (SEEK_DATA/SEEK_HOLE), so that the
// file comes back with its holes where they were (block status of a raw
// or LUKS image reports them).
func writeExtents(src, dst string) error {
	in, st, err := openStat(src)
	if err != nil {
		return err
	}
	defer in.Close()
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	fmt.Fprintf(z, "gio-extents %d %o\n", st.Size(), st.Mode().Perm())
	err = dataExtents(in, st.Size(), func(data, hole int64) error {
		fmt.Fprintf(z, "%d %d\n", data, hole-data)
		_, err := io.Copy(z, io.NewSectionReader(in, data, hole-data))
		return err
	})
	if err != nil {
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, b.Bytes(), 0o644)
}

// readExtents makes the file dst from writeExtents' stream at src.
func readExtents(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	r := bufio.NewReader(z)
	var size int64
	var mode os.FileMode
	if _, err := fmt.Fscanf(r, "gio-extents %d %o\n", &size, &mode); err != nil {
		return fmt.Errorf("header: %v", err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	defer out.Close()
	for {
		var off, n int64
		if _, err := fmt.Fscanf(r, "%d %d\n", &off, &n); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("extent: %v", err)
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, off), io.LimitReader(r, n)); err != nil {
			return err
		}
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	return out.Close()
}

// TestCommittedSetups: every committed entry is a setup some case makes,
// and every case whose setup the store holds has its entry (after
// adding such a case, run it with -update).
func TestCommittedSetups(t *testing.T) {
	t.Parallel()
	want := map[string]string{}
	for _, rf := range readRecordFiles(t) {
		for _, c := range rf.cases {
			if n := cacheablePrefix(c); n > 0 {
				if k := committedKey(c, n); k != "" {
					want[committedSetups.entry(k)] = c.pos()
				}
			}
		}
	}
	have, err := filepath.Glob(filepath.Join(committedSetups.dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range have {
		if _, ok := want[e]; !ok {
			t.Errorf("%s: no case makes this setup (remove it)", e)
		}
	}
	for e, pos := range want {
		if !slices.Contains(have, e) {
			t.Errorf("%s: its setup is not in %s (go test -run TestRecorded -update)", pos, e)
		}
	}
}

// TestCommittedSetupFresh: a LUKS-encrypted qcow2 image that the
// installed qemu-img makes now, not the committed one, gives the
// recorded answers (one case: each fresh LUKS header costs qemu-img
// 2 s of CPU, and the qcow2 one holds a LUKS header too).
func TestCommittedSetupFresh(t *testing.T) {
	if !haveTool("qemu-img") {
		t.Skip("needs qemu-img")
	}
	t.Parallel()
	cases := map[string]*recCase{}
	for _, rf := range readRecordFiles(t) {
		for _, c := range rf.cases {
			cases[rf.dir+"/"+c.name] = c
		}
	}
	for _, name := range []string{"testdata/crypto/diff/qcow2-luks/data"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, ok := cases[name]
			if !ok {
				t.Fatalf("no case %s", name)
			}
			fresh := *c
			fresh.freshSetup = true
			runRecorded(t, &fresh, false)
		})
	}
}
