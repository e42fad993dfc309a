package commands

import (
	"sync"

	"gio/blk"
)

// maxSyncBuf is the largest buffer a synchronous command reuses; larger
// requests allocate their own (or stream, see stream.go).
const maxSyncBuf = 1 << 20

// syncBuf returns a buffer of n bytes, every byte set to b, for a
// synchronous read or write. qemu-io allocates one per command; gio
// reuses one per session, which takes the allocation and the zeroing
// out of every command (a quarter of the CPU time of 20000 piped "read
// -q" commands went there). Call syncDone after the request.
func (s *Session) syncBuf(n int64, b byte) []byte {
	if n > maxSyncBuf {
		return fill(n, b)
	}
	if int64(cap(s.ioBuf)) < n {
		// Page-aligned, so that an O_DIRECT file needs no bounce buffer.
		s.ioBuf = blk.AlignedBuffer(int(max(n, 4096)), 4096)
	}
	buf := s.ioBuf[:n]
	fillBytes(buf, b)
	return buf
}

// syncDone retires the reusable buffer when the request may still hold
// it: a wait that could never finish, or one cut short by Ctrl-C, leaves
// the request in flight, and its buffer must not be handed to the next
// command.
func (s *Session) syncDone() {
	if s.Loop.InFlight() > 0 {
		s.ioBuf = nil
	}
}

// maxSharedPattern is the largest pattern buffer shared between write
// requests; maxPatterns bounds how many patterns are kept.
const (
	maxSharedPattern = 64 << 10
	maxPatterns      = 8
)

// patternBuf returns n bytes of pattern b for write requests to read
// from. Requests asking for the same pattern share one buffer, which no
// layer modifies (blk.Impl's PWrite contract): 20000 in-flight
// "aio_write -P 0x5a N 4k" commands then hold one 4 KiB buffer instead of
// 20000, where qemu-io allocates one per request. The buffers are the
// process's, not the session's, so that explore, which makes a session
// per schedule, fills each once. Longer requests get a buffer of their
// own.
func (s *Session) patternBuf(n int64, b byte) []byte {
	if n > maxSharedPattern {
		return fill(n, b)
	}
	patterns.mu.Lock()
	defer patterns.mu.Unlock()
	buf := patterns.bufs[b]
	if int64(len(buf)) < n {
		if patterns.bufs == nil || len(patterns.bufs) >= maxPatterns {
			patterns.bufs = map[byte][]byte{}
		}
		// Page-aligned, so that an O_DIRECT file needs no bounce
		// buffer; at least 4 KiB, the common request size.
		buf = blk.AlignedBuffer(int(max(n, 4096)), 4096)
		fillBytes(buf, b)
		patterns.bufs[b] = buf
	}
	return buf[:n:n]
}

// patterns holds the shared read-only pattern buffers (patternBuf).
var patterns struct {
	mu   sync.Mutex
	bufs map[byte][]byte
}
