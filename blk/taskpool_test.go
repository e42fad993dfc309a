package blk_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"gio/blk"
)

// TestTaskPoolOrder checks the order QEMU's AioTaskPool gives: each task
// runs at once until it first yields, the request starts the next only
// then, a full pool makes the request wait for one task to end, the
// request goes on as soon as a task ends (before a request that became
// runnable earlier), and the first error is the pool's.
func TestTaskPoolOrder(t *testing.T) {
	errTask := errors.New("task 2 failed")
	for _, tc := range []struct {
		name  string
		max   int
		tasks int
		want  string
	}{
		// t1' t3: the request starts t3 as soon as t1 ends, before
		// t2, runnable since the same loop point, goes on.
		{"fits", 8, 3, "t1 t2 t3 other t1' t2' t3' req err=task 2 failed"},
		{"full", 2, 4, "t1 t2 other t1' t3 t2' t4 t3' t4' req err=task 2 failed"},
		{"one slot", 1, 3, "t1 other t1' t2 t2' t3 t3' req err=task 2 failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loop := blk.NewLoop(blk.NewVirtualClock())
			var log []string
			note := func(s string) { log = append(log, s) }
			loop.Spawn("req", func(co *blk.Co) {
				p := blk.NewTaskPool(co, tc.max)
				for i := 1; i <= tc.tasks; i++ {
					p.Start(func(co *blk.Co) error {
						note(fmt.Sprintf("t%d", i))
						co.YieldIO()
						note(fmt.Sprintf("t%d'", i))
						if i == 2 {
							return errTask
						}
						return nil
					})
				}
				p.WaitAll()
				note(fmt.Sprintf("req err=%v", p.Err()))
			})
			loop.Spawn("other", func(co *blk.Co) { note("other") })
			if err := loop.Drain("drain"); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(log, " "); got != tc.want {
				t.Errorf("order:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestTaskPoolBlocked checks that a request waiting for its tasks is
// reported where its tasks wait, and that tasks are not requests of
// their own.
func TestTaskPoolBlocked(t *testing.T) {
	loop := blk.NewLoop(blk.NewVirtualClock())
	loop.Spawn("req", func(co *blk.Co) {
		p := blk.NewTaskPool(co, 8)
		p.Start(func(co *blk.Co) error { co.Park("suspended at 'A'"); return nil })
		p.Start(func(co *blk.Co) error { co.Park("suspended at 'A'"); return nil })
		p.Start(func(co *blk.Co) error { co.Park("suspended at 'B'"); return nil })
		p.WaitAll()
	})
	err := loop.Drain("drain")
	var stuck *blk.ErrStuck
	if !errors.As(err, &stuck) {
		t.Fatalf("Drain: %v, want ErrStuck", err)
	}
	want := []string{"#1 req suspended at 'A', suspended at 'B'"}
	if fmt.Sprint(stuck.Waiters) != fmt.Sprint(want) {
		t.Errorf("waiters %q, want %q", stuck.Waiters, want)
	}
	if n := loop.InFlight(); n != 1 {
		t.Errorf("%d requests in flight, want 1 (tasks are part of their request)", n)
	}
}
