package blk

import (
	"testing"
	"time"
)

func TestCost(t *testing.T) {
	m := CostModel{Latency: 100 * time.Microsecond, Bandwidth: 1 << 30}
	for _, tc := range []struct {
		n    int64
		want time.Duration
	}{
		{0, 100 * time.Microsecond},
		{4096, 100*time.Microsecond + 3815},           // 4096/2^30 s = 3814.7 ns, rounded up
		{1 << 30, 100*time.Microsecond + time.Second}, // a whole second of data
		{1<<62 + 1, 100*time.Microsecond + (1<<32)*time.Second + 1},
	} {
		if got := m.Cost(tc.n); got != tc.want {
			t.Errorf("Cost(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
	if got := (CostModel{Latency: 5}).Cost(1 << 40); got != 5 {
		t.Errorf("infinite bandwidth: Cost = %v, want 5ns", got)
	}
}

// TestVirtualClockCharges: I/O moves a virtual clock by the cost model
// when the request parks, and nothing else moves it.
func TestVirtualClockCharges(t *testing.T) {
	c := NewVirtualClock()
	l := NewLoop(c)
	co := l.Spawn("io", func(co *Co) {
		co.ChargeIO(4096)
		co.ChargeIO(0)
		co.YieldIO()
	})
	if err := l.RunUntil("io", co.Done); err != nil {
		t.Fatal(err)
	}
	if want := DefaultCost.Cost(4096) + DefaultCost.Cost(0); l.Now() != want {
		t.Errorf("clock at %v, want %v", l.Now(), want)
	}
	time.Sleep(time.Millisecond)
	if l.Now() != DefaultCost.Cost(4096)+DefaultCost.Cost(0) {
		t.Errorf("the virtual clock moved with the wall clock")
	}
	r := NewLoop(NewRealClock())
	co = r.Spawn("io", func(co *Co) { co.ChargeIO(1 << 30); co.YieldIO() })
	r.RunUntil("io", co.Done)
	if r.Now() > time.Second/2 {
		t.Errorf("a real clock was charged: %v", r.Now())
	}
}
