package blkdebug

import (
	"fmt"
	"testing"

	"gio/blk"
)

// TestRewind: a rewind brings back the rules, the state and the active
// inject-error rules of the mark, whatever the requests and breakpoints
// did since, and refuses while a request is suspended.
func TestRewind(t *testing.T) {
	e := openRules(t, `[set-state]
event = "read_aio"
state = "1"
new_state = "2"

[inject-error]
event = "write_aio"
state = "2"
errno = "5"
`, "", blk.Spec{})
	b := e.img.Root.File().Node.Impl().(*node)
	bp := e.img.Root.Breakpointer()
	must(t, bp.Break("read_aio", "A"))
	look := func() string { return fmt.Sprint(b.state, len(b.active), b.Rules()) }
	marked := look()
	rewind, err := b.Mark()
	must(t, err)
	for run := 0; run < 2; run++ {
		must(t, bp.Break("write_aio", "B"))
		must(t, bp.Break("pwritev", "C"))
		e.aioRead(0, 512) // fires A, then moves to state 2
		e.loop.RunReady()
		if err := rewind(); err == nil {
			t.Fatal("rewind with a request suspended")
		}
		must(t, bp.Resume("A"))
		e.loop.RunReady()
		e.drain()
		must(t, bp.Break("flush_to_disk", "D")) // never fires
		e.aioWrite(0, 512, 1)                   // fires B and the inject-error rule (state 2)
		e.loop.RunReady()
		must(t, bp.Resume("B"))
		e.loop.RunReady()
		must(t, bp.Resume("C"))
		e.loop.RunReady()
		e.drain()
		if look() == marked {
			t.Fatalf("run %d changed nothing to rewind: %s", run, marked)
		}
		must(t, rewind())
		if got := look(); got != marked {
			t.Fatalf("run %d: rewound to %s, marked %s", run, got, marked)
		}
	}
}
