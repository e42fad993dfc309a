package vdi_test

import (
	"os"
	"path/filepath"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/vdi"
	"gio/blk/qdict"
)

// TestConformance runs blk's driver suite on images made by create.
func TestConformance(t *testing.T) {
	for _, c := range []struct{ name, key, value string }{{"dynamic", "", ""}, {"static", "static", "on"}} {
		t.Run(c.name, func(t *testing.T) {
			blktest.Run(t, func(t *testing.T) *blk.Backend {
				reg := blk.NewRegistry(file.Driver, vdi.Driver)
				path := filepath.Join(t.TempDir(), "img")
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				opts := qdict.New()
				if c.key != "" {
					opts.Set(c.key, c.value)
				}
				loop := blk.NewLoop(blk.NewVirtualClock())
				if err := reg.Create("vdi", path, 5<<20, opts, loop); err != nil {
					t.Fatal(err)
				}
				b, err := reg.Open(blk.Spec{Filename: path, Format: "vdi"}, loop)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}, blktest.SectorSizes())
		})
	}
}
