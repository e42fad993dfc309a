package fsx

import (
	"io"

	"gio/blk"
	"gio/blk/drivers/file"
	"gio/blk/drivers/null"
	"gio/blk/drivers/raw"
	"gio/blkdebug"
	"gio/commands"
)

// testEnv builds sessions like cmd/gio does (the same drivers, a virtual
// clock).
var testEnv = Env{NewSession: func(out, errw io.Writer) *commands.Session {
	reg := blk.NewRegistry(file.Driver, raw.Driver, null.CoDriver, null.AIODriver,
		blkdebug.NewDriver(func() io.Writer { return out }))
	return commands.NewSession(out, errw, reg, blk.NewLoop(blk.NewVirtualClock()))
}}
