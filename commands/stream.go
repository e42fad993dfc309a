package commands

import (
	"fmt"
	"time"

	"gio/blk"
)

// Streaming read and write. qemu-io's read and write allocate a buffer
// the size of the request; for a large pattern write or a read that
// dumps nothing (no -v), gio moves the request through a buffer of
// streamChunk bytes instead, so that "write -P 0xab 0 1G" needs a few MiB
// rather than 1 GiB. The output is the same; blk.Backend.Splittable
// (SplittableWrites for writes) says when the pieces cannot be told from
// one request.

const (
	// streamChunk is the piece size: large enough that the syscalls
	// per piece cost nothing next to the copying, small enough to keep
	// the resident size low. A multiple of every alignment.
	streamChunk = 8 << 20
	// streamMin is the smallest request streamed; smaller ones keep
	// qemu-io's single buffer.
	streamMin = 32 << 20
)

// canStream reports whether a read of count bytes should stream.
func (s *Session) canStream(count int64) bool {
	return count >= streamMin && s.Img.Splittable()
}

// canStreamWrite reports whether a write of count bytes should stream.
func (s *Session) canStreamWrite(count int64) bool {
	return count >= streamMin && s.Img.SplittableWrites()
}

// readStream is the rest of readCmd for a streamed read: the same
// checks and messages, on pieces.
func (s *Session) readStream(off, count int64, pflag bool, pat byte, patOff, patCount int64, qflag, cflag bool) error {
	chunk := s.Img.BlockAlign(streamChunk)
	// qemu-io's buffer starts as 0xab, and a driver may leave bytes
	// alone (null-co): when the contents are checked, each piece starts
	// from that again.
	fillBytes(chunk, 0xab)
	vstart, vend := off+patOff, off+patOff+patCount
	bad := false
	return s.timedIO("read", off, count, func(co *blk.Co) error {
		return s.Img.PReadPieces(co, off, count, chunk, func(pos int64, data []byte) {
			if !pflag || bad {
				return
			}
			lo, hi := max(pos, vstart), min(pos+int64(len(data)), vend)
			if lo < hi && mismatch(data[lo-pos:hi-pos], pat) {
				bad = true
			}
			fillBytes(data, 0xab)
		})
	}, func(elapsed time.Duration) error {
		var result error
		if pflag && bad {
			fmt.Fprintf(s.Out, "Pattern verification failed at offset %d, %d bytes\n", off+patOff, patCount)
			result = errFailed
		}
		if qflag {
			return result
		}
		s.report("read", count, off, elapsed, cflag)
		return result
	})
}

// writeStream is the rest of writeCmd for a streamed pattern write.
func (s *Session) writeStream(off, count int64, pat byte, flags blk.ReqFlags, qflag, cflag bool) error {
	chunk := s.Img.BlockAlign(streamChunk)
	fillBytes(chunk, pat)
	return s.timedIO("write", off, count, func(co *blk.Co) error {
		return s.Img.PWriteRepeat(co, off, count, chunk, flags)
	}, s.wrote(count, off, qflag, cflag))
}

// fillBytes sets every byte of buf to b.
func fillBytes(buf []byte, b byte) {
	if len(buf) == 0 {
		return
	}
	buf[0] = b
	for i := 1; i < len(buf); i *= 2 {
		copy(buf[i:], buf[:i])
	}
}
