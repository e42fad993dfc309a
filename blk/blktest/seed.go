package blktest

import (
	"os"
	"path/filepath"
	"testing"

	"gio/blk"
	"gio/blk/qdict"
)

// CreateSeed makes an image with reg's format driver (reg must know the
// file driver) and runs write on it, for a fuzz target's seed corpus.
// Only the first 64 KiB are kept: the fuzzer mutates big inputs slowly,
// and the metadata is at the start (a driver meets the rest as an image
// cut short).
func CreateSeed(f *testing.F, reg *blk.Registry, format string, size int64, opts *qdict.Dict, write func(co *blk.Co, b *blk.Backend) error) []byte {
	path, loop := create(f, reg, format, size, opts)
	if write != nil {
		spec := blk.Spec{Filename: path, Format: format}
		if d := reg.Lookup(format); d != nil && d.SupportsBacking {
			// The seed's backing file, if it names one, is not opened.
			spec.Opts = qdict.New()
			spec.Opts.Set("backing", "")
		}
		b, err := reg.Open(spec, loop)
		if err != nil {
			f.Fatal(err)
		}
		if err := Do(f, b, "seed", func(co *blk.Co) error { return write(co, b) }); err != nil {
			f.Fatal(err)
		}
		b.Close()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return data[:min(len(data), 64<<10)]
}

// Created makes an image with reg's format driver (reg must know the
// file driver) in a temporary directory and opens it: a conformance
// test's image.
func Created(t testing.TB, reg *blk.Registry, format string, size int64, opts *qdict.Dict) *blk.Backend {
	t.Helper()
	path, loop := create(t, reg, format, size, opts)
	b, err := reg.Open(blk.Spec{Filename: path, Format: format}, loop)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// create makes an image file of format, on a new loop.
func create(t testing.TB, reg *blk.Registry, format string, size int64, opts *qdict.Dict) (string, *blk.Loop) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "img")
	loop := blk.NewLoop(blk.NewVirtualClock())
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := reg.Create(format, path, size, opts, loop); err != nil {
		t.Fatal(err)
	}
	return path, loop
}
