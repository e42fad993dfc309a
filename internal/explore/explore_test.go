package explore

import (
	"fmt"
	"io"
	"testing"

	"gio/blk"
	"gio/blk/drivers/file"
	"gio/blk/drivers/null"
	"gio/blk/drivers/raw"
	"gio/blkdebug"
	"gio/internal/fsx"
	"gio/repl"
)

// testEnv builds sessions as cmd/gio does, with the chooser installed.
var testEnv = Env{NewSession: func(out, errw io.Writer, ch blk.Chooser) fsx.Session {
	s := shell.NewSession(repl.NewStdioWriter(out, false), errw, blk.NewVirtualClock())
	s.Loop.SetChooser(ch)
	return s
}}

var shell = repl.Env{NewRegistry: func(out io.Writer) *blk.Registry {
	return blk.NewRegistry(file.Driver, raw.Driver, null.CoDriver, null.AIODriver,
		blkdebug.NewDriver(func() io.Writer { return out }))
}}

func mustParse(t *testing.T, src string) *Script {
	t.Helper()
	sc, err := ParseScript(src)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

const overlapping = `create img 64k
open -o driver=raw,file.align=4096%s blkdebug::img
aio_write -P 1 0 512
aio_write -P 2 256 512
aio_write -P 3 4096 512
`

func TestSmoke(t *testing.T) {
	for _, opt := range []string{"", ",file.serialise=off"} {
		sc := mustParse(t, fmt.Sprintf(overlapping, opt))
		sum := testEnv.Explore(sc, Config{MaxPreemptions: 2})
		t.Logf("%s: %s", opt, sum)
		if sum.First != nil {
			t.Logf("first: %s: %s", sum.First.Schedule, sum.First.What)
		}
	}
}
