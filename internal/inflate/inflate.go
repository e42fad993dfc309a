// Package inflate decompresses the deflate streams of compressed image
// clusters (qcow2, qcow, vmdk, cloop, dmg) into a caller's buffer.
//
// The formats inflate one cluster or block at a time, thousands of them
// per read of a compressed image. A decompressor made per cluster costs
// about as much as the inflating (its 32 KiB window and Huffman tables
// are allocated each time), so the readers are pooled and reset.
// github.com/klauspost/compress's inflater is the standard library's
// with faster Huffman decoding for in-memory input (about twice as fast
// here). It accepts and rejects the same streams, but on a stream that
// ends early it may have produced fewer bytes when it reports the error;
// vmdk uses that partial output, so on any error the stream is inflated
// again by the standard library and its result returned: callers see
// exactly what compress/flate and compress/zlib give them.
package inflate

import (
	"bytes"
	stdflate "compress/flate"
	stdzlib "compress/zlib"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zlib"
)

// rawReader is a pooled raw-deflate reader with its source.
type rawReader struct {
	src  bytes.Reader
	r    io.ReadCloser
	fast fastState
}

var rawPool = sync.Pool{New: func() any {
	d := &rawReader{}
	d.r = flate.NewReader(&d.src)
	return d
}}

// Raw inflates the raw deflate stream in src into dst, reading exactly
// len(dst) bytes as io.ReadFull does: it returns how many it produced and
// io.ErrUnexpectedEOF (or EOF for none) when the stream ends early, or
// the stream's error. What follows len(dst) bytes is not looked at.
func Raw(dst, src []byte) (int, error) {
	d := rawPool.Get().(*rawReader)
	defer rawPool.Put(d)
	if d.fast.fastRaw(dst, src) {
		return len(dst), nil
	}
	d.src.Reset(src)
	if err := d.r.(flate.Resetter).Reset(&d.src, nil); err == nil {
		if n, err := io.ReadFull(d.r, dst); err == nil {
			return n, nil
		}
	}
	return io.ReadFull(stdflate.NewReader(bytes.NewReader(src)), dst)
}

// zlibReader is a pooled zlib reader with its source; r is nil until a
// stream with a valid header has been seen (zlib.NewReader reads it).
type zlibReader struct {
	src bytes.Reader
	r   io.ReadCloser
}

var zlibPool = sync.Pool{New: func() any { return &zlibReader{} }}

// Zlib is Raw for a zlib stream (header, deflate data, Adler-32
// trailer). A bad header is an error before any output, as from
// zlib.NewReader; the trailer is checked only when reading reaches it.
// Results and errors are those of compress/zlib.
func Zlib(dst, src []byte) (int, error) {
	d := zlibPool.Get().(*zlibReader)
	defer zlibPool.Put(d)
	d.src.Reset(src)
	var err error
	if d.r == nil {
		d.r, err = zlib.NewReader(&d.src)
	} else {
		err = d.r.(zlib.Resetter).Reset(&d.src, nil)
	}
	if err == nil {
		if n, err := io.ReadFull(d.r, dst); err == nil {
			return n, nil
		}
	}
	r, err := stdzlib.NewReader(bytes.NewReader(src))
	if err != nil {
		return 0, err
	}
	return io.ReadFull(r, dst)
}
