package qcow2

import (
	"bytes"
	"io"
	"sync"

	"gio/internal/inflate"

	"github.com/klauspost/compress/zstd"
)

// zstd-compressed clusters (compression type 1), after QEMU's
// qcow2_zstd_compress and qcow2_zstd_decompress: a cluster is one zstd
// frame written with the frame's end; reading decodes frame after frame
// until a whole cluster has come out, and ignores what follows (the
// sector padding, or the next cluster's data).
//
// github.com/klauspost/compress/zstd is a pure-Go zstd that libzstd
// reads and that reads libzstd's frames. Its encoder is not libzstd's,
// so a cluster gio compresses has other bytes (and perhaps another
// length) than QEMU's: images written with write -c match QEMU's in
// content, not in layout.

// zstdMaxWindow bounds the window a frame may ask for: a cluster is at
// most 2 MiB, and a hostile header must not make gio allocate more.
const zstdMaxWindow = 8 << 20

var zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
	// Level 3 is ZSTD_CLEVEL_DEFAULT, what QEMU's context uses; one
	// goroutine keeps the encoder's work on the request's thread.
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err) // fixed, valid options
	}
	return e
})

// zstdCompress compresses one cluster into fewer than len(in) bytes.
func zstdCompress(in []byte) ([]byte, error) {
	out := zstdEncoder().EncodeAll(in, nil)
	if len(out) > len(in)-1 {
		return nil, errNotCompressible
	}
	return out, nil
}

// zstdDecompress decodes size bytes from the frames at the start of in.
func zstdDecompress(in []byte, size int64) ([]byte, error) {
	d, err := zstd.NewReader(bytes.NewReader(in), zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(zstdMaxWindow))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	out := make([]byte, size)
	if _, err := io.ReadFull(d, out); err != nil {
		return nil, err
	}
	return out, nil
}

// compressCluster and decompressCluster use the image's compression type.
func (s *state) compressCluster(in []byte) ([]byte, error) {
	if s.compressionType == compressionZstd {
		return zstdCompress(in)
	}
	return deflateCluster(in)
}

func (s *state) decompressCluster(in []byte) ([]byte, error) {
	if s.compressionType == compressionZstd {
		return zstdDecompress(in, s.clusterSize)
	}
	return inflateCluster(in, s.clusterSize)
}

// inflateCluster decompresses one cluster; like QEMU it insists on a full
// cluster of output and ignores what follows it.
func inflateCluster(in []byte, size int64) ([]byte, error) {
	out := make([]byte, size)
	if _, err := inflate.Raw(out, in); err != nil {
		return nil, err
	}
	return out, nil
}
