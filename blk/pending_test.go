package blk_test

import (
	"testing"

	"gio/blk"
)

// TestRunPendingBoundsCompletedIO is issue 14 item 17: requests whose I/O
// completed wait for a loop point, each on a parked goroutine. Between
// piped commands (RunPending) they stay parked, as qemu-io's completions
// wait while input arrives faster than I/O completes, but never more
// than blk.MaxPendingIO of them: past that they are delivered, so 20000
// piped aio_write commands do not hold 20000 stacks.
func TestRunPendingBoundsCompletedIO(t *testing.T) {
	for _, tc := range []struct {
		n, wantLeft int
	}{
		{blk.MaxPendingIO, blk.MaxPendingIO},
		{blk.MaxPendingIO + 1, 0},
		{3 * blk.MaxPendingIO, 0},
	} {
		loop := blk.NewLoop(blk.NewVirtualClock())
		done := 0
		for i := 0; i < tc.n; i++ {
			loop.Spawn("io", func(co *blk.Co) {
				co.YieldIO()
				done++
			})
			loop.RunReady() // an aio command runs its request until it blocks
		}
		loop.RunPending()
		if got := loop.InFlight(); got != tc.wantLeft || done != tc.n-tc.wantLeft {
			t.Errorf("%d requests waiting for their completion: RunPending left %d in flight (%d done), want %d",
				tc.n, got, done, tc.wantLeft)
		}
	}
}
