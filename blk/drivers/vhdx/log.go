package vhdx

import (
	"hash/crc32"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// The log (vhdx-log.c) is a circular buffer of 4 KiB sectors. An entry
// is a 64-byte header and 32-byte descriptors filling whole sectors, then
// one data sector per data descriptor. A sequence of entries with
// consecutive sequence numbers and the log GUID of the current header is
// replayed on open; gio, like QEMU, writes one entry per BAT update and
// replays it at once, so the log is empty between requests.

const (
	logSector    = 4 * kib
	logMin       = 1 * mib
	logEntryHdr  = 64
	logDescSize  = 32
	logSig       = 0x65676f6c // "loge"
	logDescSig   = 0x63736564 // "desc"
	logZeroSig   = 0x6f72657a // "zero"
	logDataSig   = 0x61746164 // "data"
	maxLogGrowth = 32 * mib
)

// Log entry header field offsets (VHDXLogEntryHeader).
const (
	lSig        = 0
	lChecksum   = 4
	lEntryLen   = 8
	lTail       = 12
	lSeq        = 16
	lDescCount  = 24
	lLogGUID    = 32
	lFlushedOff = 48
	lLastOff    = 56
)

// logState is VHDXLogEntries: where the log is, and the read and write
// positions inside it.
type logState struct {
	offset, length uint64
	write, read    uint32
	sequence       uint64
	tail           uint32
}

// logSeq is VHDXLogSequence: a run of valid entries.
type logSeq struct {
	valid bool
	count uint32
	log   logState
	seq   uint64 // the last entry's sequence number
}

// entryHdr is a decoded log entry header.
type entryHdr struct {
	sig, checksum, entryLen, tail uint32
	seq                           uint64
	descCount                     uint32
	logGUID                       guid
	flushedOff, lastOff           uint64
}

func decodeEntryHdr(b []byte) entryHdr {
	h := entryHdr{
		sig: le.Uint32(b[lSig:]), checksum: le.Uint32(b[lChecksum:]), entryLen: le.Uint32(b[lEntryLen:]),
		tail: le.Uint32(b[lTail:]), seq: le.Uint64(b[lSeq:]), descCount: le.Uint32(b[lDescCount:]),
		flushedOff: le.Uint64(b[lFlushedOff:]), lastOff: le.Uint64(b[lLastOff:]),
	}
	copy(h.logGUID[:], b[lLogGUID:])
	return h
}

// pread reads what the file holds at off and zeroes past its end, as
// QEMU's file driver reads.
func (s *state) pread(co *blk.Co, off uint64, buf []byte) error {
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return err
	}
	clear(buf)
	if off >= uint64(flen) {
		return nil
	}
	n := min(uint64(len(buf)), uint64(flen)-off)
	// Whole sectors where the file ends inside one (blk's alignment).
	n2 := min(uint64(len(buf)), (n+511)&^511)
	return s.file.Node.PRead(co, int64(off), buf[:n2], 0)
}

var zeroSector [logSector]byte

// incIdx is vhdx_log_inc_idx.
func incIdx(idx uint32, length uint64) uint32 {
	idx += logSector
	if uint64(idx) >= length {
		return 0
	}
	return idx
}

// peekHdr is vhdx_log_peek_hdr.
func (s *state) peekHdr(co *blk.Co, l *logState) (entryHdr, error) {
	if l.read%logSector != 0 {
		return entryHdr{}, unix.EFAULT
	}
	read := l.read
	if uint64(read)+logEntryHdr > l.length {
		read = 0
	}
	if read == l.write {
		return entryHdr{}, unix.EINVAL
	}
	var b [logEntryHdr]byte
	if err := s.pread(co, l.offset+uint64(read), b[:]); err != nil {
		return entryHdr{}, err
	}
	return decodeEntryHdr(b[:]), nil
}

// readSectors is vhdx_log_read_sectors for one sector; ok is false when
// the log is empty there.
func (s *state) readSector(co *blk.Co, l *logState, buf []byte) (ok bool, err error) {
	if l.read == l.write {
		return false, nil
	}
	if err := s.pread(co, l.offset+uint64(l.read), buf[:logSector]); err != nil {
		return false, err
	}
	l.read = incIdx(l.read, l.length)
	return true, nil
}

// hdrValid is vhdx_log_hdr_is_valid.
func (s *state) hdrValid(l *logState, h entryHdr) bool {
	var cur guid
	copy(cur[:], s.header()[hLogGUID:])
	return h.sig == logSig && l.length >= uint64(h.entryLen) && h.entryLen%logSector == 0 &&
		h.seq != 0 && h.logGUID == cur && uint64(h.descCount)*logDescSize <= uint64(h.entryLen)
}

// descValid is vhdx_log_desc_is_valid.
func descValid(d []byte, h entryHdr) bool {
	if le.Uint64(d[24:]) != h.seq || le.Uint64(d[16:])%logSector != 0 {
		return false
	}
	switch le.Uint32(d) {
	case logZeroSig:
		return le.Uint64(d[8:])%logSector == 0
	case logDescSig:
		return true
	}
	return false
}

// descSectors is vhdx_compute_desc_sectors.
func descSectors(n uint32) uint32 {
	n += 2
	return (n + 127) / 128
}

// readDesc is vhdx_log_read_desc: the entry's header and descriptor
// sectors, each descriptor checked. The read position moves past them.
func (s *state) readDesc(co *blk.Co, l *logState) (entryHdr, []byte, error) {
	h, err := s.peekHdr(co, l)
	if err != nil {
		return h, nil, err
	}
	if !s.hdrValid(l, h) {
		return h, nil, unix.EINVAL
	}
	n := descSectors(h.descCount)
	if err := s.descInFile(co, l, h.descCount, n); err != nil {
		return h, nil, err
	}
	buf := make([]byte, uint64(n)*logSector)
	for i := uint32(0); i < n; i++ {
		ok, err := s.readSector(co, l, buf[uint64(i)*logSector:])
		if err != nil {
			return h, nil, err
		}
		if !ok {
			return h, nil, unix.EINVAL
		}
	}
	for i := uint32(0); i < h.descCount; i++ {
		if !descValid(buf[logEntryHdr+logDescSize*uint64(i):], h) {
			return h, nil, unix.EINVAL
		}
	}
	return h, buf, nil
}

// descInFile refuses, before the descriptor sectors are read into
// memory, an entry whose descriptors would lie past the end of the file:
// they would read as zeroes there, which no valid descriptor is, so QEMU
// fails the same way after reading them. (Without this, a corrupt count
// could make gio allocate gigabytes.)
func (s *state) descInFile(co *blk.Co, l *logState, count, n uint32) error {
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return err
	}
	end := logEntryHdr + logDescSize*uint64(count)
	pos := l.read
	for k := uint64(0); k < uint64(n) && k*logSector < end; k++ {
		if l.offset+uint64(pos) >= uint64(flen) {
			return unix.EINVAL
		}
		pos = incIdx(pos, l.length)
	}
	return nil
}

// validateEntry is vhdx_validate_log_entry: whether the entry at the read
// position is valid (and follows seq, unless seq is 0), its checksum over
// all its sectors included. An invalid header moves the read position
// one sector on.
func (s *state) validateEntry(co *blk.Co, l *logState, seq uint64) (bool, entryHdr, error) {
	h, err := s.peekHdr(co, l)
	if err != nil || !s.hdrValid(l, h) || (seq > 0 && h.seq != seq+1) {
		l.read = incIdx(l.read, l.length)
		return false, h, err
	}
	total := h.entryLen / logSector
	nd := descSectors(h.descCount)
	h, desc, err := s.readDesc(co, l)
	if err != nil {
		return false, h, err
	}
	le.PutUint32(desc[lChecksum:], 0)
	crc := crcRaw(0xffffffff, desc)
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return false, h, err
	}
	buf := make([]byte, logSector)
	for i := nd; i < total; i++ {
		if l.read != l.write && l.offset+uint64(l.read) >= uint64(flen) {
			// Past the end of the file: a sector of zeroes, without a
			// read (a corrupt entry length can ask for a million).
			crc = crcRaw(crc, zeroSector[:])
			l.read = incIdx(l.read, l.length)
			continue
		}
		ok, err := s.readSector(co, l, buf)
		if err != nil || !ok {
			return false, h, err
		}
		crc = crcRaw(crc, buf)
	}
	return ^crc == h.checksum, h, nil
}

// crcRaw continues a CRC-32C without the final inversion (QEMU's
// crc32c() followed by the "^ 0xffffffff" of its callers).
func crcRaw(crc uint32, b []byte) uint32 { return ^crc32.Update(^crc, castagnoli, b) }

// search is vhdx_log_search: the valid sequence with the highest
// sequence number anywhere in the log.
func (s *state) search(co *blk.Co) (logSeq, error) {
	var cand logSeq
	cur := s.log
	cur.write = uint32(cur.length) // as if full
	cur.read = 0
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return cand, err
	}
	for {
		tail := cur.read
		if cur.offset+uint64(cur.read) >= uint64(flen) {
			// Past the end of the file every sector reads as zeroes, so no
			// entry starts there: the scan would only wrap around.
			break
		}
		var curSeq uint64
		var current logSeq
		valid, h, err := s.validateEntry(co, &cur, curSeq)
		if err != nil {
			return cand, err
		}
		if valid {
			current = logSeq{valid: true, log: cur, count: 1, seq: h.seq}
			current.log.read = tail
			current.log.write = cur.read
			for {
				valid, h, err := s.validateEntry(co, &cur, curSeq)
				if err != nil {
					return cand, err
				}
				if !valid {
					break
				}
				current.log.write = cur.read
				current.count++
				curSeq = h.seq
				current.seq = h.seq
			}
		}
		if current.valid && (!cand.valid || current.seq > cand.seq) {
			cand = current
		}
		if cur.read < tail {
			break
		}
		if cur.read == tail {
			// Deliberate divergence: an entry as long as the log brings
			// the scan back where it started, and QEMU scans it again
			// forever; gio stops, the whole log seen.
			break
		}
	}
	if cand.valid {
		s.log.sequence = cand.seq + 1
	}
	return cand, nil
}

// parseLog is vhdx_parse_log: find an active sequence, and replay it
// (refusing a read-only image, as QEMU does).
func (s *state) parseLog(co *blk.Co, readOnly bool) (bool, error) {
	h := s.header()
	s.log.offset = le.Uint64(h[hLogOffset:])
	s.log.length = uint64(le.Uint32(h[hLogLength:]))
	if s.log.offset < logMin || s.log.offset%logMin != 0 || le.Uint16(h[hLogVer:]) != 0 {
		return false, unix.EINVAL
	}
	var lg guid
	copy(lg[:], h[hLogGUID:])
	if lg == zeroGUID || s.log.length == 0 {
		return false, nil
	}
	if s.log.length%logMin != 0 {
		return false, unix.EINVAL
	}
	logs, err := s.search(co)
	if err != nil || !logs.valid {
		return false, err
	}
	if readOnly {
		name := s.file.Node.Filename()
		return false, blk.Msgf(unix.EPERM, "VHDX image file '%s' opened read-only, but contains a log that needs to be replayed\n"+
			"To replay the log, run:\nqemu-img check -r all '%s'", name, name)
	}
	if err := s.flushLog(co, &logs); err != nil {
		return false, err
	}
	return true, nil
}

// flushDesc is vhdx_log_flush_desc: a data sector (its first 8 and last
// 4 bytes from the descriptor) or a run of zeroes, each 4 KiB written and
// flushed.
func (s *state) flushDesc(co *blk.Co, d, data []byte, limit uint64, budget *uint64) error {
	buf := make([]byte, logSector)
	count := uint64(1)
	switch le.Uint32(d) {
	case logDescSig:
		seq := uint64(le.Uint32(data[4:]))<<32 | uint64(le.Uint32(data[4092:]))
		if seq != le.Uint64(d[24:]) {
			return unix.EINVAL
		}
		copy(buf, d[8:16])
		copy(buf[8:], data[8:4092])
		copy(buf[4092:], d[4:8])
	case logZeroSig:
		count = le.Uint64(d[8:]) / logSector
	default:
		return unix.EINVAL
	}
	off := le.Uint64(d[16:])
	if off > limit || count > (limit-off)/logSector || count > *budget {
		return unix.EINVAL
	}
	*budget -= count
	for i := uint64(0); i < count; i++ {
		if err := s.writeSync(co, int64(off), buf); err != nil {
			return err
		}
		off += logSector
	}
	return nil
}

// flushLog is vhdx_log_flush: replay every entry of logs into the file,
// flush, and mark the log empty in the headers.
func (s *state) flushLog(co *blk.Co, logs *logSeq) error {
	data := make([]byte, logSector)
	if err := s.userVisibleWrite(co); err != nil {
		return err
	}
	// Deliberate divergence, with the limit below: a replay writes at most
	// twice the file plus maxLogGrowth (a corrupt log could repeat its
	// zero runs without end).
	flen0, err := s.file.Node.Length(co)
	if err != nil {
		return err
	}
	budget := 2 * (uint64(flen0) + maxLogGrowth) / logSector
	for cnt := logs.count; cnt > 0; cnt-- {
		hp, err := s.peekHdr(co, &logs.log)
		if err != nil {
			return err
		}
		flen, err := s.file.Node.Length(co)
		if err != nil {
			return err
		}
		if hp.flushedOff > uint64(flen) {
			return unix.EINVAL
		}
		h, desc, err := s.readDesc(co, &logs.log)
		if err != nil {
			return err
		}
		// Deliberate divergence: QEMU writes wherever a corrupt entry
		// says; gio refuses one that would grow the file by more than
		// maxLogGrowth.
		limit := uint64(flen) + maxLogGrowth
		if h.lastOff > limit {
			return unix.EINVAL
		}
		for i := uint32(0); i < h.descCount; i++ {
			d := desc[logEntryHdr+logDescSize*uint64(i):]
			if le.Uint32(d) == logDescSig {
				ok, err := s.readSector(co, &logs.log, data)
				if err != nil {
					return err
				}
				if !ok {
					return unix.EINVAL
				}
			}
			if err := s.flushDesc(co, d, data, limit, &budget); err != nil {
				return err
			}
		}
		if uint64(flen) < h.lastOff && h.lastOff%mib != 0 {
			// QEMU grows the file only when last_file_offset is not a
			// multiple of 1 MiB (rounding it up).
			size := (h.lastOff + mib - 1) &^ (mib - 1)
			if err := s.file.Node.Truncate(co, int64(size), false, blk.PreallocOff); err != nil {
				return err
			}
		}
	}
	if err := s.flush(co); err != nil {
		return err
	}
	// vhdx_log_reset: an empty log, and a zero log GUID in the headers
	// (whose update errors QEMU ignores).
	s.log.read, s.log.write = 0, 0
	_ = s.updateHeaders(co, false, &zeroGUID)
	return nil
}

// logWrite is vhdx_log_write for the one case QEMU uses: data (a BAT
// entry) inside one 4 KiB sector at offset, merged with the sector's
// other bytes from the file.
func (s *state) logWrite(co *blk.Co, data []byte, offset uint64) error {
	h := s.header()
	if uint64(len(data)) > uint64(le.Uint32(h[hLogLength:])) {
		return unix.EINVAL
	}
	var cur guid
	copy(cur[:], h[hLogGUID:])
	if cur != zeroGUID {
		// QEMU requires the log to be flushed after every write.
		return unix.ENOTSUP
	}
	g := s.newGUID()
	_ = s.updateHeaders(co, false, &g) // QEMU ignores its errors
	if s.log.sequence == 0 {
		s.log.sequence = 1
	}
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return err
	}
	secOff := offset % logSector
	fileOff := offset - secOff
	// The merged sector: the file's bytes around data.
	merged := make([]byte, logSector)
	if err := s.pread(co, fileOff, merged); err != nil {
		return err
	}
	copy(merged[secOff:], data)

	const nd = 1 // descSectors(1)
	buf := make([]byte, (nd+1)*logSector)
	le.PutUint32(buf[lSig:], logSig)
	le.PutUint32(buf[lEntryLen:], uint32(len(buf)))
	le.PutUint32(buf[lTail:], s.log.tail)
	le.PutUint64(buf[lSeq:], s.log.sequence)
	le.PutUint32(buf[lDescCount:], 1)
	copy(buf[lLogGUID:], s.header()[hLogGUID:hLogGUID+16])
	le.PutUint64(buf[lFlushedOff:], uint64(flen))
	le.PutUint64(buf[lLastOff:], uint64(flen))
	d := buf[logEntryHdr:]
	le.PutUint32(d, logDescSig)
	copy(d[4:8], merged[4092:])
	copy(d[8:16], merged[:8])
	le.PutUint64(d[16:], fileOff)
	le.PutUint64(d[24:], s.log.sequence)
	ds := buf[nd*logSector:]
	le.PutUint32(ds, logDataSig)
	le.PutUint32(ds[4:], uint32(s.log.sequence>>32))
	copy(ds[8:4092], merged[8:4092])
	le.PutUint32(ds[4092:], uint32(s.log.sequence))
	setChecksum(buf, lChecksum)

	// vhdx_log_write_sectors.
	if err := s.userVisibleWrite(co); err != nil {
		return err
	}
	written := 0
	for i := 0; i < nd+1; i++ {
		off := s.log.offset + uint64(s.log.write)
		w := incIdx(s.log.write, s.log.length)
		if w == s.log.read {
			break // full
		}
		if err := s.file.Node.PWrite(co, int64(off), buf[i*logSector:(i+1)*logSector], 0); err != nil {
			return err
		}
		s.log.write = w
		written++
	}
	if written != nd+1 {
		return unix.EINVAL
	}
	s.log.sequence++
	s.log.tail = s.log.write
	return nil
}

// logWriteAndFlush is vhdx_log_write_and_flush: the data made stable,
// the log entry written and made stable, then replayed.
func (s *state) logWriteAndFlush(co *blk.Co, data []byte, offset uint64) error {
	if err := s.flush(co); err != nil {
		return err
	}
	if err := s.logWrite(co, data, offset); err != nil {
		return err
	}
	logs := logSeq{valid: true, count: 1, log: s.log}
	if err := s.flush(co); err != nil {
		return err
	}
	if err := s.flushLog(co, &logs); err != nil {
		return err
	}
	s.log = logs.log
	return nil
}
