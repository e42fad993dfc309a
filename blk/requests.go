package blk

import "strings"

// RequestInfo describes a request in flight on one node, as the
// requests command shows it: QEMU's BdrvTrackedRequest plus where its
// coroutine waits.
type RequestInfo struct {
	Req  int    // request number
	Name string // "#3 aio_write 0 512"
	Op   string // read, write, discard, truncate
	// Off and Bytes are the range as this node sees it (aligned).
	Off, Bytes int64
	// Serialising requests make overlapping ones wait; OverlapOff and
	// OverlapLen are the range checked for conflicts (widened to the
	// alignment once serialising).
	Serialising            bool
	OverlapOff, OverlapLen int64
	// State is "running", "runnable", "in the driver", "waiting for #N",
	// "suspended at 'TAG'" or another yield reason.
	State string
	// WaitsFor is the request this one waits for on this node (0: none),
	// Waiters the requests waiting for this one here, in FIFO order.
	WaitsFor int
	Waiters  []int
	// PadHead and PadTail are the read-modify-write padding of an
	// unaligned write (bytes before and after the caller's range in the
	// aligned blocks); PadMerge says head and tail share one buffer.
	PadHead, PadTail int64
	PadMerge         bool
	// LastEvent is the last debug event the request fired anywhere.
	LastEvent string
}

// Requests lists the requests in flight on n, oldest first. Only the
// loop's driver calls it, between commands.
func (n *Node) Requests() []RequestInfo {
	var out []RequestInfo
	for r := n.tracked; r != nil; r = r.next {
		out = append(out, r.info())
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func (r *trackedReq) info() RequestInfo {
	co := r.co
	ri := RequestInfo{Req: co.id, Name: co.name, Op: r.kind.String(), Off: r.off, Bytes: r.bytes,
		Serialising: r.serialising, OverlapOff: r.overlapOff, OverlapLen: r.overlapLen,
		PadHead: r.padHead, PadTail: r.padTail, PadMerge: r.padMerge}
	if co.lastEvent >= 0 {
		ri.LastEvent = co.lastEvent.String()
	}
	if r.waitingFor != nil {
		ri.WaitsFor = r.waitingFor.co.id
	}
	for _, w := range r.waiters {
		ri.Waiters = append(ri.Waiters, w.id)
	}
	switch why := co.where(); {
	case co.loop.cur == co:
		ri.State = "running"
	case why == "":
		ri.State = "runnable"
	case why == "waits for I/O":
		ri.State = "in the driver"
	case strings.HasPrefix(why, "waits for #"):
		// "waits for #2 aio_write ... [range]": the number says it.
		num, _, _ := strings.Cut(strings.TrimPrefix(why, "waits for "), " ")
		ri.State = "waiting for " + num
	default:
		ri.State = why
	}
	return ri
}
