// Package qcow is the driver for QEMU's original qcow format (version 1),
// after QEMU 7.2's block/qcow.c: a big-endian header, an L1 table and L2
// tables of 2^l2_bits entries, clusters appended at the end of the file,
// compressed clusters (read, and written by write -c), backing files
// (the format is probed: qcow cannot record it), and QEMU's AES
// encryption (encrypt.key-secret; AES-128-CBC keyed by the password,
// sectors numbered by guest offset, compressed clusters left plain).
//
// The driver reaches its image only through its "file" child and reads
// what it does not hold through its "backing" child; the debug events
// (l1_update, l2_load, l2_update, l2_update_compressed, cluster_alloc,
// read_aio, write_aio, read_backing_aio, read_compressed,
// write_compressed) fire where QEMU fires them.
//
// As in QEMU, a write to a new cluster of an image with a backing file
// does not copy the rest of the cluster from the backing file (qcow
// images made with a backing file use 512-byte clusters for that
// reason), metadata updates are written and flushed one entry at a time,
// and new clusters are made by growing the file first, so a crash leaves
// entries pointing at zeroed clusters or past the end of the file (read
// as unallocated L2 tables), never at other metadata.
//
// Not supported: qemu-img's make_empty (commit).
package qcow

import (
	"encoding/binary"

	"gio/blk"
	"gio/blk/qcrypto"

	"golang.org/x/sys/unix"
)

// Driver is the qcow format driver.
var Driver = &blk.Driver{
	Name:            "qcow",
	Format:          true,
	SupportsBacking: true,
	Probe:           probe,
	Open:            open,
	Create:          create,
}

const (
	qcowMagic      = 'Q'<<24 | 'F'<<16 | 'I'<<8 | 0xfb
	qcowVersion    = 1
	headerSize     = 48 // sizeof(QCowHeader)
	cryptNone      = 0
	cryptAES       = 1
	oflagCompress  = uint64(1) << 63
	l2CacheSize    = 16
	maxBackingName = 1023
)

// header is QCowHeader in host order.
type header struct {
	Magic, Version      uint32
	BackingFileOffset   uint64
	BackingFileSize     uint32
	Mtime               uint32
	Size                uint64
	ClusterBits, L2Bits uint8
	CryptMethod         uint32
	L1TableOffset       uint64
}

func decodeHeader(b []byte) header {
	be := binary.BigEndian
	return header{
		Magic: be.Uint32(b), Version: be.Uint32(b[4:]), BackingFileOffset: be.Uint64(b[8:]),
		BackingFileSize: be.Uint32(b[16:]), Mtime: be.Uint32(b[20:]), Size: be.Uint64(b[24:]),
		ClusterBits: b[32], L2Bits: b[33], CryptMethod: be.Uint32(b[36:]), L1TableOffset: be.Uint64(b[40:]),
	}
}

func (h *header) encode(b []byte) {
	be := binary.BigEndian
	be.PutUint32(b, h.Magic)
	be.PutUint32(b[4:], h.Version)
	be.PutUint64(b[8:], h.BackingFileOffset)
	be.PutUint32(b[16:], h.BackingFileSize)
	be.PutUint32(b[20:], h.Mtime)
	be.PutUint64(b[24:], h.Size)
	b[32], b[33] = h.ClusterBits, h.L2Bits
	be.PutUint32(b[36:], h.CryptMethod)
	be.PutUint64(b[40:], h.L1TableOffset)
}

// probe is qcow_probe: magic and version 1.
func probe(head []byte) int {
	if len(head) >= headerSize && binary.BigEndian.Uint32(head) == qcowMagic && binary.BigEndian.Uint32(head[4:]) == qcowVersion {
		return 100
	}
	return 0
}

// state is an open qcow image (BDRVQcowState), touched only with the
// token, metadata only under mu.
type state struct {
	file    *blk.Child
	backing *blk.Child
	loop    *blk.Loop
	mu      coMutex

	size          int64 // total_sectors * 512
	clusterBits   uint
	clusterSize   int64
	l2Bits        uint
	l2Size        int64
	l1Size        int64
	offsetMask    uint64 // cluster_offset_mask
	l1TableOffset int64
	l1            []uint64

	// The L2 cache: QEMU's 16 tables with hit counts, the least used
	// replaced first (its l2_load events depend on it).
	l2Tables  [l2CacheSize][]uint64
	l2Offsets [l2CacheSize]int64
	l2Counts  [l2CacheSize]uint32

	// The last decompressed cluster (cluster_cache), by its offset.
	clusterCache       []byte
	clusterCacheOffset int64

	backingFile string

	// The encrypt.* options, checked against the header at open: the
	// format, the key secret's id, and the first other key.
	encryptFormat, keySecret string
	hasFormat, hasKeySecret  bool
	encryptUnexpected        string
	password                 func(id string) ([]byte, error)
	// cipher is the AES cipher of an encrypted image, else nil.
	cipher *qcrypto.Cipher
}

var (
	_ blk.BlockStatuser    = (*state)(nil)
	_ blk.LimitsRefresher  = (*state)(nil)
	_ blk.Infoer           = (*state)(nil)
	_ blk.CompressedWriter = (*state)(nil)
)

func open(a *blk.OpenArgs) (blk.Impl, error) {
	s := &state{loop: a.Loop, clusterCacheOffset: -1}
	if s.loop == nil {
		s.loop = blk.NewLoop(blk.NewVirtualClock())
	}
	s.encryptFormat, s.hasFormat = a.Opts.TakeString("encrypt.format")
	s.keySecret, s.hasKeySecret = a.Opts.TakeString("encrypt.key-secret")
	if rest := a.Opts.ExtractPrefix("encrypt"); rest.Len() > 0 {
		s.encryptUnexpected = rest.Keys()[0]
	}
	s.password = a.Password
	var err error
	if s.file, err = a.OpenStorageChild(); err != nil {
		return nil, err
	}
	if err := s.loop.RunSync("qcow open", s.doOpen); err != nil {
		return nil, err
	}
	base := a.Node().Filename()
	if base == "" {
		base = s.file.Node.BaseFilename()
	}
	if s.backing, err = a.OpenBacking(s.backingFile, "", base); err != nil {
		return nil, err
	}
	return s, nil
}

// doOpen is qcow_open's checks, with QEMU's messages.
func (s *state) doOpen(co *blk.Co) error {
	buf := make([]byte, headerSize)
	if err := s.file.Node.PRead(co, 0, buf, 0); err != nil {
		return err
	}
	h := decodeHeader(buf)
	if h.Magic != qcowMagic {
		return blk.Msgf(unix.EINVAL, "Image not in qcow format")
	}
	if h.Version != qcowVersion {
		msg := "qcow (v1) does not support qcow version %d"
		if h.Version == 2 || h.Version == 3 {
			msg += "\nTry the 'qcow2' driver instead."
		}
		return blk.Msgf(unix.ENOTSUP, msg, h.Version)
	}
	if h.Size <= 1 {
		return blk.Msgf(unix.EINVAL, "Image size is too small (must be at least 2 bytes)")
	}
	if h.ClusterBits < 9 || h.ClusterBits > 16 {
		return blk.Msgf(unix.EINVAL, "Cluster size must be between 512 and 64k")
	}
	if h.L2Bits < 9-3 || h.L2Bits > 16-3 {
		return blk.Msgf(unix.EINVAL, "L2 table size must be between 512 and 64k")
	}
	if err := s.openCrypt(h.CryptMethod); err != nil {
		return err
	}
	s.clusterBits = uint(h.ClusterBits)
	s.clusterSize = 1 << s.clusterBits
	s.l2Bits = uint(h.L2Bits)
	s.l2Size = 1 << s.l2Bits
	s.size = int64(h.Size/512) * 512
	if h.Size > 1<<63-1 {
		s.size = (1<<63 - 1) &^ 511
	}
	s.offsetMask = (1 << (63 - s.clusterBits)) - 1
	shift := s.clusterBits + s.l2Bits
	if h.Size > ^uint64(0)-(uint64(1)<<shift) {
		return blk.Msgf(unix.EINVAL, "Image too large")
	}
	l1Size := (h.Size + (1 << shift) - 1) >> shift
	if l1Size > (1<<31-1)/8 {
		return blk.Msgf(unix.EINVAL, "Image too large")
	}
	s.l1Size = int64(l1Size)
	s.l1TableOffset = int64(h.L1TableOffset)
	if h.L1TableOffset > 1<<62 {
		return blk.Msgf(unix.EINVAL, "Could not read L1 table")
	}
	// The L1 table is read whole; one past the end of the file reads as
	// zeroes, as QEMU's short read does.
	l1 := make([]byte, s.l1Size*8)
	if err := s.readClipped(co, s.l1TableOffset, l1); err != nil {
		return err
	}
	s.l1 = make([]uint64, s.l1Size)
	for i := range s.l1 {
		s.l1[i] = binary.BigEndian.Uint64(l1[8*i:])
	}
	for i := range s.l2Tables {
		s.l2Tables[i] = make([]uint64, s.l2Size)
	}
	s.clusterCache = make([]byte, s.clusterSize)
	if h.BackingFileOffset != 0 {
		n := h.BackingFileSize
		if n > maxBackingName {
			return blk.Msgf(unix.EINVAL, "Backing file name too long")
		}
		name := make([]byte, n)
		if err := s.readClipped(co, int64(min(h.BackingFileOffset, 1<<62)), name); err != nil {
			return err
		}
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		s.backingFile = string(name)
	}
	return nil
}

// openCrypt is the encryption part of qcow_open: the options must match
// the header, and an AES image needs its key secret (qcrypto_block_qcow_open).
func (s *state) openCrypt(method uint32) error {
	switch method {
	case cryptNone:
		if s.hasFormat {
			return blk.Msgf(unix.EINVAL, "No encryption in image header, but options specified format '%s'", s.encryptFormat)
		}
		return nil
	case cryptAES:
	default:
		return blk.Msgf(unix.EINVAL, "invalid encryption method in qcow header")
	}
	if s.hasFormat && s.encryptFormat != "aes" {
		return blk.Msgf(unix.EINVAL, "Header reported 'aes' encryption format but options specify '%s'", s.encryptFormat)
	}
	if s.encryptUnexpected != "" {
		return blk.Msgf(unix.EINVAL, "Parameter '%s' is unexpected", s.encryptUnexpected)
	}
	if !s.hasKeySecret {
		return blk.Msgf(unix.EINVAL, "Parameter 'encrypt.key-secret' is required for cipher")
	}
	p, err := s.password(s.keySecret)
	if err != nil {
		return blk.Msgf(unix.EINVAL, "%v", err)
	}
	s.cipher = qcrypto.NewQcowAES(p)
	return nil
}

// readClipped reads from the file, zeroes for what lies past its end:
// the child never sees a read outside the file.
func (s *state) readClipped(co *blk.Co, off int64, buf []byte) error {
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return err
	}
	n := min(int64(len(buf)), max(0, flen-off))
	if n > 0 {
		if err := s.file.Node.PRead(co, off, buf[:n], 0); err != nil {
			return err
		}
	}
	clear(buf[max(n, 0):])
	return nil
}

func (s *state) Length(co *blk.Co) (int64, error) { return s.size, nil }
func (s *state) Close() error                     { return nil }

// RefreshLimits is qcow_refresh_limits: 512-byte requests.
func (s *state) RefreshLimits(l *blk.Limits) { l.RequestAlignment = max(l.RequestAlignment, 512) }

// Info is qcow_get_info.
func (s *state) Info() (blk.Info, error) { return blk.Info{ClusterSize: s.clusterSize}, nil }

// coMutex is QEMU's CoMutex (s->lock).
type coMutex struct{ blk.CoMutex }

func (m *coMutex) lock(co *blk.Co) { m.Lock(co, "waits for the qcow lock") }
func (m *coMutex) unlock()         { m.Unlock() }
