package blkdebug

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// openRules opens top -> blkdebug -> mem with a config file and extra
// blkdebug options.
func openRules(t *testing.T, cfg, opts string, spec blk.Spec) *env {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.cfg")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	o := "driver=top,file.driver=blkdebug,file.image.driver=mem,file.config=" + p
	if opts != "" {
		o += ",file." + strings.ReplaceAll(opts, ",", ",file.")
	}
	return openEnv(t, o, spec)
}

func wantErrno(t *testing.T, what string, err error, want unix.Errno) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Errorf("%s: %v, want success", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, unix.ErrnoName(want))
	}
}

// TestInjectStaysActive is the reference's B.2: the rule activated by the
// first read_aio stays active for every later request.
func TestInjectStaysActive(t *testing.T) {
	e := openRules(t, "[inject-error]\nevent = \"read_aio\"\nerrno = \"28\"\n", "", blk.Spec{})
	wantErrno(t, "write before any read", e.write(0, 512, 1), 0)
	wantErrno(t, "read 0 512", e.read(0, 512), unix.ENOSPC)
	wantErrno(t, "read 0 512", e.read(0, 512), unix.ENOSPC)
	wantErrno(t, "write 0 512", e.write(0, 512, 1), unix.ENOSPC)
}

// TestStateMachine is B.2's second part: set-state 1->2 and a once rule
// in state 2 on the same event; the rule sees the state from before the
// event, so the second write fails, and only that one.
func TestStateMachine(t *testing.T) {
	cfg := `[set-state]
event = "write_aio"
state = "1"
new_state = "2"

[inject-error]
event = "write_aio"
state = "2"
errno = "5"
once = "on"
`
	e := openRules(t, cfg, "", blk.Spec{})
	for i, want := range []unix.Errno{0, unix.EIO, 0, 0} {
		wantErrno(t, "write "+string(rune('1'+i)), e.write(0, 512, 1), want)
	}
	if e.bd.state != 2 {
		t.Errorf("state = %d, want 2", e.bd.state)
	}
}

// TestSectorMatch: a rule's sector must lie inside the request as
// blkdebug sees it (after padding); it is not an overlap test.
func TestSectorMatch(t *testing.T) {
	cfg := "[inject-error]\nevent = \"read_aio\"\nsector = \"2\"\n"
	for _, tc := range []struct {
		align    string
		off, n   int64
		wantFail bool
	}{
		{"", 1500, 100, false},
		{"", 1024, 1, true},
		{"", 0, 2048, true},
		{"", 0, 1024, false},
		{"", 1025, 100, false},
		{"align=4096", 1500, 100, true},
		{"align=4096", 4096, 512, false},
	} {
		e := openRules(t, cfg, tc.align, blk.Spec{})
		err := e.read(tc.off, tc.n)
		if (err != nil) != tc.wantFail {
			t.Errorf("%s read %d %d: %v, want failure %v", tc.align, tc.off, tc.n, err, tc.wantFail)
		}
	}
}

// TestFirstActiveRuleWins: the active list ends up in config order (each
// event's rules are walked newest first and inserted at the head), and
// the first matching rule decides, even with errno 0.
func TestFirstActiveRuleWins(t *testing.T) {
	zeroFirst := "[inject-error]\nevent = \"read_aio\"\nerrno = \"0\"\n\n[inject-error]\nevent = \"read_aio\"\nerrno = \"28\"\n"
	e := openRules(t, zeroFirst, "", blk.Spec{})
	wantErrno(t, "errno 0 first", e.read(0, 512), 0)
	failFirst := "[inject-error]\nevent = \"read_aio\"\nerrno = \"28\"\n\n[inject-error]\nevent = \"read_aio\"\nerrno = \"0\"\n"
	e = openRules(t, failFirst, "", blk.Spec{})
	wantErrno(t, "errno 28 first", e.read(0, 512), unix.ENOSPC)
}

// TestNewEventReplacesActiveSet: an event with matching inject-error
// rules replaces the active set; one without leaves it alone.
func TestNewEventReplacesActiveSet(t *testing.T) {
	cfg := "[inject-error]\nevent = \"read_aio\"\nerrno = \"28\"\n\n" +
		"[inject-error]\nevent = \"pwritev\"\nerrno = \"1\"\niotype = \"read\"\n"
	e := openRules(t, cfg, "", blk.Spec{})
	wantErrno(t, "read", e.read(0, 512), unix.ENOSPC)
	// write_aio has no rules; pwritev activates only its read rule, so
	// the write succeeds where the read_aio rule would have failed it.
	wantErrno(t, "write", e.write(0, 512, 1), 0)
	wantErrno(t, "write again", e.write(0, 512, 1), 0)
}

func TestOnce(t *testing.T) {
	e := openRules(t, "[inject-error]\nevent = \"read_aio\"\nonce = \"on\"\n", "", blk.Spec{})
	wantErrno(t, "first read", e.read(0, 512), unix.EIO)
	wantErrno(t, "second read", e.read(0, 512), 0)
	if got := len(e.bd.Rules()); got != 0 {
		t.Errorf("%d rules left, want the once rule deleted", got)
	}
}

// TestNoneFiresAtOpen: rules on none are active from the start, with
// blkdebug on top too (where no read_aio ever fires).
func TestNoneFiresAtOpen(t *testing.T) {
	e := openEnv(t, "driver=blkdebug,image.driver=mem,inject-error.0.event=none,set-state.0.event=none,set-state.0.new_state=7", blk.Spec{})
	wantErrno(t, "first read", e.read(0, 512), unix.EIO)
	if e.bd.state != 7 {
		t.Errorf("state = %d, want 7 after none", e.bd.state)
	}
}

// TestNegativeErrno: the request "succeeds" without reaching the image.
func TestNegativeErrno(t *testing.T) {
	e := openEnv(t, "driver=top,file.driver=blkdebug,file.image.driver=mem,file.inject-error.event=read_aio,file.inject-error.errno=-5", blk.Spec{})
	e.mem.Data[0] = 0x11
	buf := bytes.Repeat([]byte{0xab}, 16)
	must(t, e.run("read", func(co *blk.Co) error { return e.img.PRead(co, 0, buf) }))
	if !allBytes(buf, 0xab) {
		t.Errorf("read buffer %x, want it untouched", buf)
	}
	must(t, e.write(0, 512, 0x22))
	if e.mem.Data[0] != 0x11 {
		t.Errorf("the write reached the image")
	}
}

func TestUnknownErrno(t *testing.T) {
	e := openRules(t, "[inject-error]\nevent = \"read_aio\"\nerrno = \"999\"\n", "", blk.Spec{})
	err := e.read(0, 512)
	var en unix.Errno
	if !errors.As(err, &en) || en != 999 {
		t.Errorf("read: %v, want errno 999", err)
	}
}

// TestIOTypes: each I/O type is checked at its own entry point; block
// status only when a rule names it; a flush never matches a sector.
func TestIOTypes(t *testing.T) {
	isAllocated := func(e *env) error {
		return e.run("map", func(co *blk.Co) error { _, _, err := e.img.IsAllocated(co, 0, 4096); return err })
	}
	flush := func(e *env) error { return e.run("flush", func(co *blk.Co) error { return e.img.Flush(co) }) }
	zero := func(e *env) error {
		return e.run("write -z", func(co *blk.Co) error { return e.img.PWriteZeroes(co, 0, 4096, 0) })
	}
	discard := func(e *env) error {
		return e.run("discard", func(co *blk.Co) error { return e.img.PDiscard(co, 0, 4096) })
	}
	read := func(e *env) error { return e.read(0, 512) }
	write := func(e *env) error { return e.write(0, 512, 1) }
	wb, wt := blk.Spec{Flags: blk.OpenFlags{Unmap: true}}, blk.Spec{WriteThrough: true, Flags: blk.OpenFlags{Unmap: true}}
	for _, tc := range []struct {
		name  string
		rule  string // keys added to an inject-error rule on none
		spec  blk.Spec
		op    func(e *env) error
		errno unix.Errno
	}{
		{"default fails reads", "", wb, read, unix.EIO},
		{"default spares block status", "", wb, isAllocated, 0},
		{"block-status", "iotype=block-status", wb, isAllocated, unix.EIO},
		{"block-status spares reads", "iotype=block-status", wb, read, 0},
		{"write", "iotype=write", wb, write, unix.EIO},
		{"write spares reads", "iotype=write", wb, read, 0},
		{"write-zeroes", "iotype=write-zeroes", wb, zero, unix.EIO},
		{"write-zeroes spares writes", "iotype=write-zeroes", wb, write, 0},
		{"discard", "iotype=discard", wb, discard, unix.EIO},
		{"flush fails writethrough writes", "iotype=flush", wt, write, unix.EIO},
		{"flush spares writeback writes", "iotype=flush", wb, write, 0},
		{"flush of nothing written is not checked", "iotype=flush", wb, flush, 0},
		{"flush with a sector never matches", "iotype=flush,sector=0", wt, write, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := "driver=top,file.driver=blkdebug,file.image.driver=mem,file.inject-error.event=none"
			for _, kv := range strings.Split(tc.rule, ",") {
				if kv != "" {
					opts += ",file.inject-error." + kv
				}
			}
			e := openEnv(t, opts, tc.spec)
			wantErrno(t, tc.name, tc.op(e), tc.errno)
		})
	}
}

// TestInjectionCompletionOrder replays two qemu-io 7.2 runs: a request
// failing without "immediately" completes from the bottom half that
// reschedules it, so its completion comes before those of bottom halves
// queued earlier and after those queued later.
func TestInjectionCompletionOrder(t *testing.T) {
	cfg := `[inject-error]
event = "read_aio"
sector = "0"
errno = "5"

[inject-error]
event = "read_aio"
sector = "1"
errno = "28"
immediately = "on"
`
	for _, tc := range []struct {
		first, second int64
		want          string
	}{
		{0, 512, "aio_read 512 512: ENOSPC\naio_read 0 512: EIO\n"},
		{512, 0, "aio_read 0 512: EIO\naio_read 512 512: ENOSPC\n"},
	} {
		e := openRules(t, cfg, "", blk.Spec{})
		e.aioRead(tc.first, 512)
		e.aioRead(tc.second, 512)
		e.drain()
		if got := e.out.String(); got != tc.want {
			t.Errorf("aio_read %d, aio_read %d:\n%s\nwant\n%s", tc.first, tc.second, got, tc.want)
		}
	}
}

// TestNonImmediateYields: the failing request parks until a loop point.
func TestNonImmediateYields(t *testing.T) {
	e := openRules(t, "[inject-error]\nevent = \"read_aio\"\n", "", blk.Spec{})
	co := e.aioRead(0, 512)
	if co.Done() {
		t.Fatal("the request finished without yielding")
	}
	e.drain()
	if got := e.out.String(); got != "aio_read 0 512: EIO\n" {
		t.Errorf("transcript %q", got)
	}
	e = openRules(t, "[inject-error]\nevent = \"read_aio\"\nimmediately = \"on\"\n", "", blk.Spec{})
	if co := e.aioRead(0, 512); !co.Done() || co.Yielded() {
		t.Errorf("an immediate error yielded")
	}
}
