package blk

import "time"

// CostModel is the virtual device behind a virtual clock: every I/O a
// protocol driver does (a read, a write, a zero write, a discard, a flush,
// a resize) costs Latency plus its bytes at Bandwidth, in virtual time.
// Report lines, traces and timers then take their time from the virtual
// clock alone, so a script prints the same bytes on every run, and the
// figures still read like a device's: read-modify-write shows as three
// I/Os where an aligned write is one.
type CostModel struct {
	Latency   time.Duration // per request
	Bandwidth int64         // bytes per second; 0 means infinite
}

// DefaultCost is a plain SATA-SSD-like device at queue depth 1: 100 µs
// per request and 1 GiB/s. A 4 KiB write reports about 9600 ops/sec, a
// 1 MiB read about 930 MiB/sec.
var DefaultCost = CostModel{Latency: 100 * time.Microsecond, Bandwidth: 1 << 30}

// Cost returns the virtual time an I/O of n bytes takes.
func (m CostModel) Cost(n int64) time.Duration {
	d := m.Latency
	if m.Bandwidth > 0 && n > 0 {
		// Whole nanoseconds, rounded up, computed without overflow for
		// any request length.
		sec, rem := n/m.Bandwidth, n%m.Bandwidth
		d += time.Duration(sec)*time.Second + time.Duration((rem*int64(time.Second)+m.Bandwidth-1)/m.Bandwidth)
	}
	return d
}

// ChargeIO accounts an I/O of n bytes that a protocol driver has just
// done, before it yields for the completion (YieldIO): on a virtual clock
// the clock moves on by the clock's cost model when the request parks, so
// that in a trace the time shows as the request waiting for its I/O. On a
// real clock the time has really passed and nothing happens. Only the
// token holder calls it.
func (co *Co) ChargeIO(n int64) {
	if c, ok := co.loop.clock.(*VirtualClock); ok {
		co.cost += c.Cost.Cost(n)
	}
}

// payCost moves the virtual clock on by what the request's I/O cost.
func (co *Co) payCost() {
	if c, ok := co.loop.clock.(*VirtualClock); ok {
		c.offset += co.cost
	}
	co.cost = 0
}
