package vdi_test

import (
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
				opts := qdict.New()
				if c.key != "" {
					opts.Set(c.key, c.value)
				}
				return blktest.Created(t, blk.NewRegistry(file.Driver, vdi.Driver), "vdi", 5<<20, opts)
			}, blktest.SectorSizes())
		})
	}
}
