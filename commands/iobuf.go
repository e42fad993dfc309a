package commands

import "gio/blk"

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
