// Package dmg is the read-only driver for Apple disk images (UDIF),
// after QEMU's block/dmg.c: a "koly" trailer at the end of the file
// points to the chunk tables ("mish" blocks), either in a resource fork
// or base64-encoded in an XML property list; each chunk of sectors is
// stored raw, zlib- or bzip2-compressed, or not at all (zeroes). Like
// QEMU it cannot write, and refuses a read-write open.
//
// QEMU reads bzip2 chunks only when its dmg-bz2 module is installed, and
// lzfse chunks only with dmg-lzfse; gio reads bzip2 chunks (Go's
// compress/bzip2) and, having no lzfse decoder, treats lzfse chunks as
// QEMU does without the module: a warning at open, I/O errors on access.
package dmg

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"io"
	"strings"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the dmg format driver. QEMU probes it by file name only.
var Driver = &blk.Driver{
	Name:      "dmg",
	Format:    true,
	ProbeName: probeName,
	Open:      open,
	// QEMU has no bdrv_reopen_prepare for it: every reopen fails.
	NoReopen: true,
}

// Chunk types (the "DMG Block Type" of a mish entry).
const (
	typeZeroes  = 0 // UDZE
	typeRaw     = 1 // UDRW
	typeIgnore  = 2 // UDIG
	typeZlib    = 0x80000005
	typeBzip2   = 0x80000006
	typeLzfse   = 0x80000007
	typeComment = 0x7ffffffe
	typeLast    = 0xffffffff
)

const (
	sectorSize = 512
	// lengthsMax bounds a chunk's stored and decompressed size, as QEMU
	// does (DMG_LENGTHS_MAX), so that a corrupt table cannot make gio
	// allocate gigabytes.
	lengthsMax      = 64 << 20
	sectorCountsMax = lengthsMax / sectorSize
	mishMagic       = 0x6d697368 // "mish"
	xmlMax          = 16 << 20
)

func probeName(filename string) int {
	if len(filename) > 4 && strings.HasSuffix(filename, ".dmg") {
		return 2
	}
	return 0
}

type chunk struct {
	typ             uint32
	sector, sectors uint64 // first sector and count, in the disk
	offset, length  uint64 // where it is stored in the file
}

// state is an open image (BDRVDMGState). The chunk table is read at open
// and never changes; the last chunk decompressed is cached, under mu.
type state struct {
	file    *blk.Child
	chunks  []chunk
	size    int64
	current int // index into chunks, or len(chunks): none
	data    []byte
	mu      blk.CoMutex
	warned  map[string]bool
	warn    func(format string, args ...any)
}

var _ blk.LimitsRefresher = (*state)(nil)

func open(a *blk.OpenArgs) (blk.Impl, error) {
	if err := a.ApplyAutoReadOnly(); err != nil {
		return nil, err
	}
	s := &state{warned: map[string]bool{}, warn: a.Warnf}
	var err error
	if s.file, err = a.OpenChild("file", true, true); err != nil {
		return nil, err
	}
	if err := a.RunSync("dmg open", s.load); err != nil {
		if _, ok := err.(unix.Errno); ok {
			// QEMU's open fails without a message of its own here.
			return nil, blk.Errorf(blk.ErrnoOf(err), "Could not open '%s'", s.file.Node.Filename())
		}
		return nil, err
	}
	s.current = len(s.chunks)
	return s, nil
}

func (s *state) readU64(co *blk.Co, off uint64) (uint64, error) {
	var b [8]byte
	if err := s.file.Node.PRead(co, int64(off), b[:], 0); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[:]), nil
}

func (s *state) readU32(co *blk.Co, off uint64) (uint32, error) {
	var b [4]byte
	if err := s.file.Node.PRead(co, int64(off), b[:], 0); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[:]), nil
}

// kolyOffset is dmg_find_koly_offset: the 512-byte UDIF trailer starts
// with "koly" in the last 515 bytes (dmg images may have odd sizes).
func (s *state) kolyOffset(co *blk.Co) (uint64, error) {
	length, err := s.file.Node.Length(co)
	if err != nil {
		return 0, blk.Errorf(blk.ErrnoOf(err), "Failed to get file size while reading UDIF trailer")
	}
	// bdrv_getlength rounds up to whole sectors.
	length = (length + sectorSize - 1) &^ (sectorSize - 1)
	if length < 512 {
		return 0, blk.Msgf(unix.EINVAL, "dmg file must be at least 512 bytes long")
	}
	var off int64
	if length > 511+512 {
		off = length - 511 - 512
	}
	buf := make([]byte, min(length, 515))
	if err := s.file.Node.PRead(co, off, buf, 0); err != nil {
		return 0, blk.Errorf(blk.ErrnoOf(err), "Failed while reading UDIF trailer")
	}
	if i := bytes.Index(buf, []byte("koly")); i >= 0 {
		return uint64(off) + uint64(i), nil
	}
	return 0, blk.Msgf(unix.EINVAL, "Could not locate UDIF trailer in dmg file")
}

// load is dmg_open after the child.
func (s *state) load(co *blk.Co) error {
	koly, err := s.kolyOffset(co)
	if err != nil {
		return err
	}
	dataFork, err := s.readU64(co, koly+0x18)
	if err != nil {
		return err
	}
	if dataFork > koly {
		return unix.EINVAL
	}
	rsrcOff, err := s.readU64(co, koly+0x28)
	if err != nil {
		return err
	}
	rsrcLen, err := s.readU64(co, koly+0x30)
	if err != nil {
		return err
	}
	if rsrcOff >= koly || rsrcLen > koly-rsrcOff {
		return unix.EINVAL
	}
	xmlOff, err := s.readU64(co, koly+0xd8)
	if err != nil {
		return err
	}
	xmlLen, err := s.readU64(co, koly+0xe0)
	if err != nil {
		return err
	}
	if xmlOff >= koly || xmlLen > koly-xmlOff {
		return unix.EINVAL
	}
	total, err := s.readU64(co, koly+0x1ec)
	if err != nil {
		return err
	}
	if int64(total) < 0 || total > (1<<63-1)/sectorSize {
		return unix.EINVAL
	}
	s.size = int64(total) * sectorSize
	switch {
	case rsrcLen != 0:
		return s.readResourceFork(co, dataFork, rsrcOff, rsrcLen)
	case xmlLen != 0:
		return s.readPlistXML(co, dataFork, xmlOff, xmlLen)
	}
	return unix.EINVAL
}

// readResourceFork is dmg_read_resource_fork: the resources of the
// fork's data, each a mish block.
func (s *state) readResourceFork(co *blk.Co, dataFork, begin, length uint64) error {
	dataOff, err := s.readU32(co, begin)
	if err != nil {
		return err
	}
	if uint64(dataOff) > length {
		return unix.EINVAL
	}
	count, err := s.readU32(co, begin+8)
	if err != nil {
		return err
	}
	if count == 0 || uint64(dataOff)+uint64(count) > length {
		return unix.EINVAL
	}
	off := begin + uint64(dataOff)
	end := off + uint64(count)
	for off < end {
		n, err := s.readU32(co, off)
		if err != nil {
			return err
		}
		if n == 0 || uint64(n) > end-off {
			return unix.EINVAL
		}
		off += 4
		buf := make([]byte, n)
		if err := s.file.Node.PRead(co, int64(off), buf, 0); err != nil {
			return err
		}
		if err := s.readMish(dataFork, buf); err != nil {
			return err
		}
		off += uint64(n)
	}
	return nil
}

// readPlistXML is dmg_read_plist_xml: every <data>...</data> element of
// the property list is a base64-encoded mish block.
func (s *state) readPlistXML(co *blk.Co, dataFork, begin, length uint64) error {
	if length == 0 || length > xmlMax {
		return unix.EINVAL
	}
	buf := make([]byte, length)
	if err := s.file.Node.PRead(co, int64(begin), buf, 0); err != nil {
		return unix.EINVAL
	}
	// strstr stops at the first NUL.
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	for {
		i := bytes.Index(buf, []byte("<data>"))
		if i < 0 {
			return nil
		}
		buf = buf[i+6:]
		j := bytes.Index(buf, []byte("</data>"))
		if j < 0 {
			return unix.EINVAL
		}
		if err := s.readMish(dataFork, decodeBase64(buf[:j])); err != nil {
			return err
		}
		buf = buf[j+1:]
	}
}

// decodeBase64 decodes as GLib's g_base64_decode does: characters
// outside the alphabet (the XML's tabs and line feeds) are skipped, and
// decoding stops at the first padding character.
func decodeBase64(in []byte) []byte {
	clean := make([]byte, 0, len(in))
	for _, c := range in {
		switch {
		case c == '=':
			goto done
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		}
	}
done:
	// A trailing single character carries no whole byte.
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	out, _ := base64.RawStdEncoding.DecodeString(string(clean))
	return out
}

// known is dmg_is_known_block_type, with gio's bzip2 decoder.
func known(t uint32) bool {
	switch t {
	case typeZeroes, typeRaw, typeIgnore, typeZlib, typeBzip2:
		return true
	}
	return false
}

func (s *state) warnOnce(key, format string, args ...any) {
	if !s.warned[key] {
		s.warned[key] = true
		s.warn("warning: "+format, args...)
	}
}

// readMish is dmg_read_mish_block: a block that is not a mish block is
// skipped; its chunk entries of unknown type are left out (with a
// warning), the others appended.
func (s *state) readMish(dataFork uint64, b []byte) error {
	if len(b) < 244 || binary.BigEndian.Uint32(b) != mishMagic {
		return nil
	}
	u64 := func(off int) uint64 { return binary.BigEndian.Uint64(b[off:]) }
	outOffset := u64(8)
	inOffset := dataFork + u64(0x18)
	n := (len(b) - 204) / 40
	for k := range n {
		e := 204 + 40*k
		t := binary.BigEndian.Uint32(b[e:])
		if !known(t) {
			switch t {
			case typeLzfse:
				s.warnOnce("lzfse", "dmg-lzfse module is missing, accessing lzfse compressed blocks will result in I/O errors")
			case typeComment, typeLast:
			default:
				s.warnOnce("unknown", "Image contains chunks of unknown type %x, accessing them will result in I/O errors", t)
			}
			continue
		}
		c := chunk{typ: t, sector: u64(e+8) + outOffset, sectors: u64(e + 0x10), offset: u64(e+0x18) + inOffset, length: u64(e + 0x20)}
		idx := len(s.chunks)
		if t != typeZeroes && t != typeIgnore && c.sectors > sectorCountsMax {
			s.warn("sector count %d for chunk %d is larger than max (%d)", c.sectors, idx, sectorCountsMax)
			return unix.EINVAL
		}
		if c.length > lengthsMax {
			s.warn("length %d for chunk %d is larger than max (%d)", c.length, idx, lengthsMax)
			return unix.EINVAL
		}
		s.chunks = append(s.chunks, c)
	}
	return nil
}

// RefreshLimits: no sub-sector I/O.
func (s *state) RefreshLimits(l *blk.Limits) {
	l.RequestAlignment = max(l.RequestAlignment, sectorSize)
}

func (s *state) inChunk(i int, sector uint64) bool {
	if i >= len(s.chunks) {
		return false
	}
	c := &s.chunks[i]
	return c.sector <= sector && sector-c.sector < c.sectors
}

// search is search_chunk: a binary search that assumes the chunks are in
// sector order, as QEMU's does (a table out of order finds what QEMU
// finds). QEMU reads one entry past the table when the sector lies past
// the last chunk; gio answers "not found" there.
func (s *state) search(sector uint64) int {
	n := uint32(len(s.chunks))
	lo, hi := uint32(0), n
	for lo <= hi {
		mid := (lo + hi) / 2
		if mid >= n {
			break
		}
		c := &s.chunks[mid]
		switch {
		case c.sector > sector:
			if mid == 0 {
				return len(s.chunks)
			}
			hi = mid - 1
		case c.sector+c.sectors > sector:
			return int(mid)
		default:
			lo = mid + 1
		}
	}
	return len(s.chunks)
}

// readChunk is dmg_read_chunk: make the chunk holding sector current,
// decompressing it unless it is zeroes.
func (s *state) readChunk(co *blk.Co, sector uint64) error {
	if s.inChunk(s.current, sector) {
		return nil
	}
	i := s.search(sector)
	if i >= len(s.chunks) {
		return unix.EIO
	}
	s.current = len(s.chunks)
	c := &s.chunks[i]
	want := int(c.sectors) * sectorSize
	switch c.typ {
	case typeZlib, typeBzip2:
		stored := make([]byte, c.length)
		if err := s.file.Node.PRead(co, int64(c.offset), stored, 0); err != nil {
			return unix.EIO
		}
		var r io.Reader
		if c.typ == typeZlib {
			zr, err := zlib.NewReader(bytes.NewReader(stored))
			if err != nil {
				return unix.EIO
			}
			r = zr
		} else {
			r = bzip2.NewReader(bytes.NewReader(stored))
		}
		s.data = grow(s.data, want)
		if _, err := io.ReadFull(r, s.data); err != nil {
			return unix.EIO
		}
		if c.typ == typeZlib {
			// Z_FINISH must end the stream right at the chunk's end.
			var extra [1]byte
			if k, err := r.Read(extra[:]); k != 0 || err != io.EOF {
				return unix.EIO
			}
		}
	case typeRaw:
		// QEMU reads the stored length into a buffer of the chunk's
		// sectors (rounded up from the length).
		n := max(int(c.length), want)
		s.data = grow(s.data, n)
		if err := s.file.Node.PRead(co, int64(c.offset), s.data[:c.length], 0); err != nil {
			return unix.EIO
		}
		clear(s.data[c.length:])
	}
	s.current = i
	return nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// PRead is dmg_co_preadv: sector by sector, under the lock that guards
// the cached chunk.
func (s *state) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	s.mu.Lock(co, "waits for the dmg lock")
	defer s.mu.Unlock()
	for i := 0; i < len(buf); i += sectorSize {
		sector := uint64(off+int64(i)) / sectorSize
		if err := s.readChunk(co, sector); err != nil {
			return err
		}
		c := &s.chunks[s.current]
		out := buf[i : i+sectorSize]
		if c.typ == typeZeroes || c.typ == typeIgnore {
			clear(out)
			continue
		}
		at := int(sector-c.sector) * sectorSize
		if at+sectorSize > len(s.data) {
			// A raw chunk whose length covers fewer sectors than its
			// count: QEMU reads stale buffer bytes here; gio zeroes.
			clear(out)
			copy(out, s.data[min(at, len(s.data)):])
			continue
		}
		copy(out, s.data[at:])
	}
	return nil
}

// PWrite never runs: the node is always read-only.
func (s *state) PWrite(*blk.Co, int64, []byte, blk.ReqFlags) error {
	return blk.ErrReadOnly
}

// Length is the trailer's sector count.
func (s *state) Length(*blk.Co) (int64, error) { return s.size, nil }

// Close has nothing to release.
func (s *state) Close() error { return nil }
