// Package vmdk is the VMDK format driver, after QEMU 7.2's block/vmdk.c:
// hosted sparse extents (monolithicSparse) with their grain directory,
// the redundant grain directory, grain tables behind QEMU's 16-entry
// cache, zeroed grains, and compressed grains (streamOptimized: read,
// and written whole, appended in the order they come, as QEMU does).
//
// Metadata order is QEMU's, so that a crash only leaks: a new grain is
// written whole (zeroes around the request, cow_write) before the data,
// and the grain table entries (l2_update, then the redundant table) only
// after it, followed by a flush of the file.
//
// Descriptor files list extents (monolithicFlat, twoGbMaxExtentSparse
// and twoGbMaxExtentFlat, vmfs): each is a child "extents.N" opened from
// the file name the descriptor gives, relative to the descriptor's
// directory. Hosted sparse extents of the older vmfsSparse kind (COWD
// header, sparse.go) are read and written like the others; seSparse
// extents (ESXi's 64-bit grain tables) are read-only, as in QEMU.
package vmdk

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gio/blk"
	"gio/internal/inflate"

	"golang.org/x/sys/unix"
)

// Driver is the vmdk format driver.
var Driver = &blk.Driver{
	Name:            "vmdk",
	Format:          true,
	SupportsBacking: true,
	Probe:           probe,
	Open:            open,
	Create:          create,
}

const (
	vmdk3Magic = 0x434f5744 // "COWD"
	vmdk4Magic = 0x4b444d56 // "KDMV"

	flagRGD       = 1 << 1
	flagZeroGrain = 1 << 2
	flagCompress  = 1 << 16
	flagMarker    = 1 << 17

	compressionDeflate = 1
	markerEndOfStream  = 0
	markerFooter       = 3
	gdAtEnd            = ^uint64(0)
	gteZeroed          = 1
	l2CacheSize        = 16
	// maxExtentSectors is VMDK_EXTENT_MAX_SECTORS: grain numbers are
	// 32-bit sector numbers.
	maxExtentSectors = 1 << 32
	descSize         = 20 * 512
)

// probe is vmdk_probe: the sparse magics, or a text descriptor whose
// first line that is neither a comment nor blank is "version=1|2|3".
func probe(buf []byte) int {
	if len(buf) < 4 {
		return 0
	}
	if m := binary.BigEndian.Uint32(buf); m == vmdk3Magic || m == vmdk4Magic {
		return 100
	}
	p := buf
	for len(p) > 0 {
		switch p[0] {
		case '#':
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				return 0
			}
			p = p[i+1:]
			continue
		case ' ':
			p = bytes.TrimLeft(p, " ")
			if len(p) > 0 && p[0] == '\r' {
				p = p[1:]
			}
			if len(p) == 0 || p[0] != '\n' {
				return 0
			}
			p = p[1:]
			continue
		}
		for _, v := range []string{"version=1\n", "version=2\n", "version=3\n", "version=1\r\n", "version=2\r\n", "version=3\r\n"} {
			if bytes.HasPrefix(p, []byte(v)) {
				return 100
			}
		}
		return 0
	}
	return 0
}

// header is VMDK4Header, the fields after the magic.
type header struct {
	version, flags        uint32
	capacity, granularity uint64
	descOffset, descSize  uint64
	numGTEsPerGT          uint32
	rgdOffset, gdOffset   uint64
	grainOffset           uint64
	compressAlgorithm     uint16
}

func parseHeader(b []byte) header {
	le := binary.LittleEndian
	return header{
		version: le.Uint32(b[4:]), flags: le.Uint32(b[8:]),
		capacity: le.Uint64(b[12:]), granularity: le.Uint64(b[20:]),
		descOffset: le.Uint64(b[28:]), descSize: le.Uint64(b[36:]),
		numGTEsPerGT: le.Uint32(b[44:]),
		rgdOffset:    le.Uint64(b[48:]), gdOffset: le.Uint64(b[56:]),
		grainOffset:       le.Uint64(b[64:]),
		compressAlgorithm: le.Uint16(b[77:]),
	}
}

// extent is one VmdkExtent: flat, hosted sparse (VMDK4 or COWD) or
// seSparse.
type extent struct {
	owner          *state
	file           *blk.Child
	flat           bool
	flatStart      int64 // bytes, for flat extents
	endSector      int64 // first sector after the extent, in the disk
	sectors        int64
	l1Offset       int64
	l1BackupOffset int64
	l1             []uint64 // 32-bit entries but for seSparse
	l1Backup       []uint32
	l2Size         int64 // entries per grain table
	l1EntrySectors int64
	clusterSectors int64
	nextCluster    int64 // sector of the next grain to allocate
	compressed     bool
	hasMarker      bool
	zeroGrain      bool
	typ            string // the descriptor's extent type ("" alone)
	// seSparse extents have 64-bit grain directory and table entries,
	// the tables' and grains' areas given in sectors.
	sesparse           bool
	seTables, seGrains uint64
	cacheOffsets       [l2CacheSize]uint32
	cacheCounts        [l2CacheSize]uint32
	cache              [l2CacheSize][]uint64
}

// entrySize is the size of a grain directory or table entry.
func (e *extent) entrySize() int64 {
	if e.sesparse {
		return 8
	}
	return 4
}

type state struct {
	mu         coMutex
	file       *blk.Child // the descriptor (or the only sparse extent)
	exts       []*extent
	size       int64 // bytes
	descOffset int64
	cid        uint32
	parentCID  uint32
	cidUpdated bool
	cidChecked bool
	backing    *blk.Child
	createType string
	// report prints errors QEMU's driver prints with error_report.
	report func(error)
}

var (
	_ blk.ZeroWriter      = (*state)(nil)
	_ blk.BlockStatuser   = (*state)(nil)
	_ blk.LimitsRefresher = (*state)(nil)
	_ blk.Infoer          = (*state)(nil)
)

func open(a *blk.OpenArgs) (blk.Impl, error) {
	// QEMU's vmdk takes bdrv_default_perms on its file (the descriptor,
	// metadata) and on every extent (a flat one holds data alone): so
	// resize is taken, and a file whose length is not a multiple of a
	// blkdebug align below it can still be written (033).
	file, err := a.OpenStorageChild()
	if err != nil {
		return nil, err
	}
	s := &state{file: file, report: a.ReportFunc()}
	ro := a.Flags.ReadOnly
	var (
		lines []extentLine
		hint  string
	)
	err = a.Loop.RunSync("vmdk open", func(co *blk.Co) error {
		buf, err := readDesc(co, file, 0)
		if err != nil {
			return err
		}
		switch binary.BigEndian.Uint32(buf) {
		case vmdk4Magic, vmdk3Magic:
			s.descOffset = 0x200
			if binary.BigEndian.Uint32(buf) == vmdk4Magic {
				s.createType = "monolithicSparse" // none for COWD
			}
			return s.openSparse(co, file, buf, ro)
		}
		s.descOffset = 0
		lines, err = s.parseDescriptor(buf)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, l := range lines {
		name := fmt.Sprintf("extents.%d", i)
		path, err := extentPath(file.Node, l.fname)
		switch {
		case err == nil:
			if err := a.SetChildFilename(name, path); err != nil {
				return nil, err
			}
		case !a.Opts.HasPrefix(name):
			return nil, err
		default:
			// A descriptor on a node with no directory (gio's in-memory
			// test nodes, nbd) whose extent the options name in full:
			// QEMU refuses the relative name even then; gio opens the
			// extent from its options, which the fuzzer relies on.
		}
		c, err := a.OpenStorageChildNamed(name, false, !l.flat)
		if err != nil {
			return nil, err
		}
		err = a.Loop.RunSync("vmdk open extent", func(co *blk.Co) error {
			if l.flat {
				return s.addExtent(co, &extent{file: c, flat: true, sectors: l.sectors, flatStart: l.flatOffset << 9}, 0)
			}
			if l.sesparse {
				return s.openSeSparse(co, c, ro)
			}
			buf, err := readDesc(co, c, 0)
			if err != nil {
				return err
			}
			return s.openSparse(co, c, buf, ro)
		})
		if err != nil {
			return nil, err
		}
		s.exts[len(s.exts)-1].typ = l.typ
	}
	err = a.Loop.RunSync("vmdk open cid", func(co *blk.Co) error {
		// vmdk_read_cid, which fails the open when the descriptor has no
		// CID.
		cid, err := s.readCID(co, "CID")
		if err != nil {
			return err
		}
		s.cid = cid
		if hint, err = s.parentHint(co); err != nil {
			return err
		}
		s.parentCID, err = s.readCID(co, "parentCID")
		return err
	})
	if errno, ok := err.(unix.Errno); ok {
		// An errno without a message: bdrv_open_driver's words, naming
		// the file as QEMU's node then does.
		return nil, blk.Errorf(errno, "Could not open '%s'", file.Node.Filename())
	}
	if err != nil {
		return nil, err
	}
	base := a.Node().Filename()
	if base == "" {
		base = file.Node.BaseFilename()
	}
	if s.backing, err = a.OpenBacking(hint, "vmdk", base); err != nil {
		return nil, err
	}
	return s, nil
}

// parentHint is vmdk_parent_open: the backing file named by
// parentFileNameHint="..." in the descriptor.
func (s *state) parentHint(co *blk.Co) (string, error) {
	desc := make([]byte, descSize)
	if err := preadPartial(co, s.file, s.descOffset, desc); err != nil {
		return "", err
	}
	if i := bytes.IndexByte(desc, 0); i >= 0 {
		desc = desc[:i]
	}
	const key = "parentFileNameHint"
	i := bytes.Index(desc, []byte(key))
	if i < 0 {
		return "", nil
	}
	p := i + len(key) + 2
	if p > len(desc) {
		return "", unix.EINVAL
	}
	j := bytes.IndexByte(desc[p:], '"')
	if j < 0 || j > 4095 {
		return "", unix.EINVAL
	}
	return string(desc[p : p+j]), nil
}

// cidValid is vmdk_is_cid_valid: the parent CID recorded here must be
// the backing file's CID (a backing file not in vmdk format has none).
func (s *state) cidValid(co *blk.Co) bool {
	if s.cidChecked || s.backing == nil {
		s.cidChecked = true
		return true
	}
	ps, ok := s.backing.Node.Impl().(*state)
	if !ok {
		return false
	}
	cid, err := ps.readCID(co, "CID")
	if err != nil || cid != s.parentCID {
		return false
	}
	s.cidChecked = true
	return true
}

// extentPath is the extent's file name: absolute, or relative to the
// descriptor's directory (bdrv_dirname: the file under any filters, with
// its trailing slash).
func extentPath(desc *blk.Node, fname string) (string, error) {
	if strings.HasPrefix(fname, "/") {
		return fname, nil
	}
	n := desc
	for n.Driver().Name != "file" {
		if n.File() == nil {
			return "", blk.Msgf(unix.EINVAL, "Cannot use relative paths with VMDK descriptor file '%s': Cannot generate a base directory for %s nodes", desc.Filename(), n.Driver().Name)
		}
		n = n.File().Node
	}
	name := n.Filename()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i+1] + fname, nil
	}
	return fname, nil
}

// extentLine is one usable line of a descriptor's extent description.
type extentLine struct {
	typ        string
	flat       bool
	sesparse   bool
	sectors    int64
	fname      string
	flatOffset int64
}

// parseDescriptor is vmdk_open_desc_file and the parsing half of
// vmdk_parse_extents.
func (s *state) parseDescriptor(buf []byte) ([]extentLine, error) {
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	desc := string(buf)
	ct, ok := descValue(desc, "createType")
	if !ok {
		return nil, blk.Msgf(unix.EINVAL, "invalid VMDK image descriptor")
	}
	switch ct {
	case "monolithicFlat", "vmfs", "vmfsSparse", "seSparse", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat":
	default:
		return nil, blk.Msgf(unix.ENOTSUP, "Unsupported image type '%s'", ct)
	}
	s.createType = ct
	var out []extentLine
	for p := desc; p != ""; {
		line := p
		if i := strings.IndexByte(p, '\n'); i >= 0 {
			line, p = p[:i], p[i+1:]
		} else {
			p = ""
		}
		access, sectors, typ, fname, flatOff, matches := scanExtent(line)
		if matches < 4 || access != "RW" {
			continue
		}
		invalid := false
		switch {
		case typ == "FLAT":
			invalid = matches != 5 || flatOff < 0
		case typ == "VMFS":
			invalid = matches != 4
			flatOff = 0
		default:
			invalid = matches != 4
		}
		if invalid {
			return nil, blk.Msgf(unix.EINVAL, "Invalid extent line: %s", line)
		}
		if sectors <= 0 {
			continue
		}
		switch typ {
		case "FLAT", "VMFS":
			out = append(out, extentLine{typ: typ, flat: true, sectors: sectors, fname: fname, flatOffset: flatOff})
		case "SPARSE", "VMFSSPARSE":
			out = append(out, extentLine{typ: typ, sectors: sectors, fname: fname})
		case "SESPARSE":
			out = append(out, extentLine{typ: typ, sesparse: true, sectors: sectors, fname: fname})
		}
	}
	return out, nil
}

// descValue is vmdk_parse_description: the quoted value after the first
// occurrence of name (skipping the two characters `="`).
func descValue(desc, name string) (string, bool) {
	i := strings.Index(desc, name)
	if i < 0 {
		return "", false
	}
	p := i + len(name) + 2
	if p >= len(desc) {
		return "", false
	}
	j := strings.IndexByte(desc[p:], '"')
	if j < 0 || j+1 > 128 {
		return "", false
	}
	return desc[p : p+j], true
}

// scanExtent is the sscanf of vmdk_parse_extents:
// `%10s %ld %10s "%511[^\n\r"]" %ld`, returning how many fields matched.
func scanExtent(line string) (access string, sectors int64, typ, fname string, flatOff int64, n int) {
	p := line
	word := func(max int) (string, bool) {
		p = strings.TrimLeft(p, " \t\r\v\f")
		i := 0
		for i < len(p) && i < max && !strings.ContainsRune(" \t\r\n\v\f", rune(p[i])) {
			i++
		}
		if i == 0 {
			return "", false
		}
		w := p[:i]
		p = p[i:]
		return w, true
	}
	num := func() (int64, bool) {
		p = strings.TrimLeft(p, " \t\r\v\f")
		i := 0
		if i < len(p) && (p[i] == '-' || p[i] == '+') {
			i++
		}
		j := i
		for j < len(p) && p[j] >= '0' && p[j] <= '9' {
			j++
		}
		if j == i {
			return 0, false
		}
		v, err := strconv.ParseInt(p[:j], 10, 64)
		if err != nil {
			if p[0] == '-' {
				v = -1 << 63
			} else {
				v = 1<<63 - 1
			}
		}
		p = p[j:]
		return v, true
	}
	var ok bool
	if access, ok = word(10); !ok {
		return
	}
	n++
	if sectors, ok = num(); !ok {
		return
	}
	n++
	if typ, ok = word(10); !ok {
		return
	}
	n++
	p = strings.TrimLeft(p, " \t\r\v\f")
	if !strings.HasPrefix(p, "\"") {
		return
	}
	p = p[1:]
	i := 0
	for i < len(p) && i < 511 && p[i] != '\n' && p[i] != '\r' && p[i] != '"' {
		i++
	}
	if i == 0 {
		return
	}
	fname = p[:i]
	p = p[i:]
	n++
	if !strings.HasPrefix(p, "\"") {
		return
	}
	p = p[1:]
	if flatOff, ok = num(); ok {
		n++
	}
	return
}

// readDesc is vmdk_read_desc: up to 1 MiB of the file from off.
func readDesc(co *blk.Co, file *blk.Child, off int64) ([]byte, error) {
	size, err := file.Node.Length(co)
	if err != nil {
		return nil, blk.Errorf(blk.ErrnoOf(err), "Could not access file")
	}
	if size < 4 {
		return nil, blk.Msgf(unix.EINVAL, "File is too small, not a valid image")
	}
	size = min(size, 1<<20-1)
	buf := make([]byte, size)
	if err := preadPartial(co, file, off, buf); err != nil {
		return nil, blk.Errorf(blk.ErrnoOf(err), "Could not read from file")
	}
	return buf, nil
}

// openSparse is vmdk_open_sparse and vmdk_open_vmdk4: a hosted sparse
// extent whose first bytes (up to 1 MiB) are buf.
func (s *state) openSparse(co *blk.Co, file *blk.Child, buf []byte, readOnly bool) error {
	switch binary.BigEndian.Uint32(buf) {
	case vmdk4Magic:
	case vmdk3Magic:
		return s.openVmfsSparse(co, file, buf)
	default:
		return blk.Msgf(unix.EINVAL, "Image not in VMDK format")
	}
	if len(buf) < 512 {
		return blk.Msgf(unix.EINVAL, "Could not read header from file '%s': %s", file.Node.Filename(), unix.EIO.Error())
	}
	h := parseHeader(buf)
	if h.capacity == 0 && h.descOffset != 0 {
		return blk.Msgf(unix.ENOTSUP, "vmdk: descriptor files are not supported by gio yet")
	}
	if h.gdOffset == gdAtEnd {
		// The footer (a footer marker, the header again, an
		// end-of-stream marker: the last three sectors) takes
		// precedence over the header.
		flen, err := file.Node.Length(co)
		if err != nil {
			return err
		}
		ft := make([]byte, 1536)
		off := (flen+511)/512*512 - 1536
		if off < 0 {
			return blk.Errorf(unix.EIO, "Failed to read footer")
		}
		if err := preadPartial(co, file, off, ft); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to read footer")
		}
		le := binary.LittleEndian
		if binary.BigEndian.Uint32(ft[512:]) != vmdk4Magic || le.Uint32(ft[8:]) != 0 || le.Uint32(ft[12:]) != markerFooter ||
			le.Uint64(ft[1024:]) != 0 || le.Uint32(ft[1032:]) != 0 || le.Uint32(ft[1036:]) != markerEndOfStream {
			return blk.Msgf(unix.EINVAL, "Invalid footer")
		}
		h = parseHeader(ft[512:1024])
	}
	compressed := h.compressAlgorithm == compressionDeflate
	if h.version > 3 {
		return blk.Msgf(unix.ENOTSUP, "Unsupported VMDK version %d", h.version)
	}
	if h.version == 3 && !readOnly && !compressed {
		return blk.Msgf(unix.EINVAL, "VMDK version 3 must be read only")
	}
	if h.numGTEsPerGT > 512 {
		return blk.Msgf(unix.EINVAL, "L2 table size too big")
	}
	l1EntrySectors := uint32(uint64(h.numGTEsPerGT) * h.granularity) // QEMU's uint32_t
	if l1EntrySectors == 0 {
		return blk.Msgf(unix.EINVAL, "L1 entry size is invalid")
	}
	l1Size := uint32((h.capacity + uint64(l1EntrySectors) - 1) / uint64(l1EntrySectors))
	var l1Backup int64
	if h.flags&flagRGD != 0 {
		l1Backup = int64(h.rgdOffset << 9)
	}
	flen, err := file.Node.Length(co)
	if err != nil {
		return err
	}
	if uint64(flen/512) < h.grainOffset {
		return blk.Msgf(unix.EINVAL, "File truncated, expecting at least %d bytes", int64(h.grainOffset*512))
	}
	cs := int64(h.granularity)
	e := &extent{
		file: file, sectors: int64(h.capacity),
		l1Offset: int64(h.gdOffset << 9), l1BackupOffset: l1Backup,
		l2Size: int64(h.numGTEsPerGT), l1EntrySectors: int64(l1EntrySectors),
		clusterSectors: cs,
		compressed:     compressed,
		hasMarker:      h.flags&flagMarker != 0,
		zeroGrain:      h.flags&flagZeroGrain != 0,
	}
	if h.granularity > 0x200000 {
		return blk.Msgf(unix.EFBIG, "Invalid granularity, image may be corrupt")
	}
	if l1Size > 32*1024*1024 {
		return blk.Msgf(unix.EFBIG, "L1 size too big")
	}
	if h.capacity > 1<<54 {
		return blk.Msgf(unix.EFBIG, "vmdk: capacity too large")
	}
	if err := s.addExtent(co, e, l1Size); err != nil {
		return err
	}
	if compressed {
		s.createType = "streamOptimized"
	}
	return e.initTables(co, l1Size)
}

// initTables is vmdk_init_tables: the grain directory (and its
// redundant copy) read whole, and the grain table cache.
func (e *extent) initTables(co *blk.Co, l1Size uint32) error {
	var err error
	if e.l1, err = readTable(co, e.file, e.l1Offset, l1Size, e.entrySize()); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not read l1 table from extent '%s'", e.file.Node.Filename())
	}
	if e.l1BackupOffset != 0 {
		t, err := readTable(co, e.file, e.l1BackupOffset, l1Size, 4)
		if err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not read l1 backup table from extent '%s'", e.file.Node.Filename())
		}
		e.l1Backup = make([]uint32, len(t))
		for i, v := range t {
			e.l1Backup[i] = uint32(v)
		}
	}
	for i := range e.cache {
		e.cache[i] = make([]uint64, e.l2Size)
	}
	return nil
}

// addExtent is vmdk_add_extent: its checks, the allocation point, and
// the extent's place in the disk.
func (s *state) addExtent(co *blk.Co, e *extent, l1Size uint32) error {
	if e.clusterSectors > 0x200000 {
		return blk.Msgf(unix.EFBIG, "Invalid granularity, image may be corrupt")
	}
	if l1Size > 32*1024*1024 {
		return blk.Msgf(unix.EFBIG, "L1 size too big")
	}
	flen, err := e.file.Node.Length(co)
	if err != nil {
		return err
	}
	nb := flen / 512
	if e.flat {
		e.clusterSectors = e.sectors
	} else {
		// QEMU's ROUND_UP, a mask (0 for a zero grain size).
		e.nextCluster = (nb + e.clusterSectors - 1) & -e.clusterSectors
	}
	if !e.flat && e.l1EntrySectors == 0 {
		// QEMU divides by it on the first lookup (a COWD extent's grain
		// size of 0 or a multiple of 2^20), and crashes; gio refuses.
		return blk.Msgf(unix.EINVAL, "L1 entry size is invalid")
	}
	prev := int64(0)
	if len(s.exts) > 0 {
		prev = s.exts[len(s.exts)-1].endSector
	}
	if e.sectors < 0 || e.sectors > 1<<54-prev {
		return blk.Msgf(unix.EFBIG, "vmdk: disk too large")
	}
	e.endSector = prev + e.sectors
	e.owner = s
	s.exts = append(s.exts, e)
	s.size = e.endSector * 512
	return nil
}

// readTable reads n little-endian entries of size bytes (4 or 8) at
// off; bytes past the end of the file read as zeroes, as QEMU's file
// driver gives them.
func readTable(co *blk.Co, file *blk.Child, off int64, n uint32, size int64) ([]uint64, error) {
	raw := make([]byte, int64(n)*size)
	if err := preadPartial(co, file, off, raw); err != nil {
		return nil, err
	}
	t := make([]uint64, n)
	decodeEntries(t, raw, size)
	return t, nil
}

// decodeEntries decodes the little-endian entries of raw into t.
func decodeEntries(t []uint64, raw []byte, size int64) {
	for i := range t {
		if size == 8 {
			t[i] = binary.LittleEndian.Uint64(raw[8*i:])
		} else {
			t[i] = uint64(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
}

// preadPartial reads buf at off, zero-filling what lies past the end of
// the file (the file driver's short reads).
func preadPartial(co *blk.Co, file *blk.Child, off int64, buf []byte) error {
	if off < 0 {
		return unix.EIO // bdrv_check_request's answer
	}
	l, err := file.Node.Length(co)
	if err != nil {
		return err
	}
	n := int64(len(buf))
	if off >= l {
		clear(buf)
		return nil
	}
	if off+n > l {
		clear(buf[l-off:])
		n = l - off
	}
	if n == 0 {
		return nil
	}
	return file.Node.PRead(co, off, buf[:n], 0)
}

// readCID is vmdk_read_cid: the hex number after the first "CID" (or
// "parentCID") in the descriptor's first 20 sectors.
func (s *state) readCID(co *blk.Co, name string) (uint32, error) {
	desc := make([]byte, descSize)
	if err := preadPartial(co, s.file, s.descOffset, desc); err != nil {
		return 0, err
	}
	desc = desc[:descSize-1]
	if i := bytes.IndexByte(desc, 0); i >= 0 {
		desc = desc[:i]
	}
	i := bytes.Index(desc, []byte(name))
	if i < 0 {
		return 0, unix.EINVAL
	}
	p := desc[i+len(name):]
	if len(p) > 0 {
		p = p[1:] // sizeof("CID") skips the '=' (or whatever is there)
	}
	p = bytes.TrimLeft(p, " \t\n\r\v\f")
	if len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') {
		p = p[2:]
	}
	var v uint64
	digits := 0
	for _, c := range p {
		d := hexDigit(c)
		if d < 0 {
			break
		}
		v = v*16 + uint64(d)
		digits++
		if v > 0xffffffff {
			v = 0xffffffff
		}
	}
	if digits == 0 {
		return 0, unix.EINVAL
	}
	return uint32(v), nil
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// writeCID is vmdk_write_cid: the descriptor with "CID=" rewritten,
// written back synchronously.
func (s *state) writeCID(co *blk.Co, cid uint32) error {
	size := int64(descSize)
	if s.descOffset == 0 {
		// A descriptor file is rewritten whole (its last byte turned
		// into a NUL, as QEMU does).
		l, err := s.file.Node.Length(co)
		if err != nil {
			return err
		}
		if l > 16<<20 {
			return unix.EFBIG
		}
		size = l
	}
	if size == 0 {
		return unix.EINVAL
	}
	desc := make([]byte, size)
	if err := preadPartial(co, s.file, s.descOffset, desc); err != nil {
		return err
	}
	desc[size-1] = 0
	str := cString(desc)
	pi := bytes.Index(str, []byte("parentCID"))
	if pi < 0 {
		return unix.EINVAL
	}
	tail := append([]byte(nil), str[pi:]...)
	if ci := bytes.Index(str, []byte("CID")); ci >= 0 {
		// QEMU's snprintf of the new CID after "CID=", then pstrcat of
		// the old text from "parentCID" on: the bytes after the new
		// string's NUL stay as they were (a COWD extent's tables may
		// lie there).
		cstrcpy(desc[ci+4:], []byte(hex32(cid)+"\n"))
		l := len(cString(desc))
		cstrcpy(desc[l:], tail)
	}
	if err := s.file.Node.PWrite(co, s.descOffset, desc, 0); err != nil {
		return err
	}
	return s.file.Node.Flush(co)
}

// cString is b up to its first NUL.
func cString(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// cstrcpy is QEMU's pstrcpy: as much of src as fits in dst with a NUL
// after it (nothing when dst is empty).
func cstrcpy(dst, src []byte) {
	if len(dst) == 0 {
		return
	}
	n := copy(dst[:len(dst)-1], src)
	dst[n] = 0
}

func hex32(v uint32) string {
	const digits = "0123456789abcdef"
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v >>= 4 {
		b = append([]byte{digits[v&15]}, b...)
	}
	return string(b)
}

// nextCID replaces QEMU's g_random_int for the CID written on the first
// write: gio is deterministic, so the new CID derives from the old one
// (an xorshift step), which still changes it as VMware expects.
func nextCID(c uint32) uint32 {
	c ^= c << 13
	c ^= c >> 17
	c ^= c << 5
	if c == 0 {
		c = 0x2545f491
	}
	return c
}

func (s *state) Length(co *blk.Co) (int64, error) { return s.size, nil }
func (s *state) Close() error                     { return nil }

// RefreshLimits is vmdk_refresh_limits: zero writes in whole grains.
func (s *state) RefreshLimits(l *blk.Limits) {
	for _, e := range s.exts {
		if !e.flat {
			l.PwriteZeroesAlignment = max(l.PwriteZeroesAlignment, e.clusterSectors*512)
		}
	}
}

// Info is vmdk_get_info: the first extent's grain size (none for flat
// extents); extents of different kinds have no common answer.
func (s *state) Info() (blk.Info, error) {
	if len(s.exts) == 0 {
		return blk.Info{}, nil
	}
	e0 := s.exts[0]
	for _, e := range s.exts[1:] {
		if e.flat != e0.flat || e.compressed != e0.compressed || (!e0.flat && e.clusterSectors != e0.clusterSectors) {
			return blk.Info{}, unix.ENOTSUP
		}
	}
	info := blk.Info{Specific: s.specificInfo()}
	if !e0.flat {
		info.ClusterSize = e0.clusterSectors * 512
	}
	return info, nil
}

// specificInfo is vmdk_get_specific_info, in the order qemu-io prints
// its members.
func (s *state) specificInfo() []string {
	lines := []string{
		fmt.Sprintf("cid: %d", s.cid),
		fmt.Sprintf("parent cid: %d", s.parentCID),
		"create type: " + s.createType,
		"extents:",
	}
	for i, e := range s.exts {
		lines = append(lines, fmt.Sprintf("    [%d]:", i))
		if e.compressed {
			lines = append(lines, "        compressed: true")
		}
		lines = append(lines, fmt.Sprintf("        virtual size: %d", e.sectors*512),
			"        filename: "+e.file.Node.Filename())
		if !e.flat {
			lines = append(lines, fmt.Sprintf("        cluster size: %d", e.clusterSectors*512))
		}
		lines = append(lines, "        format: "+e.typ)
	}
	return lines
}

// findExtent is find_extent: the extent holding byte off of the disk.
func (s *state) findExtent(off int64) *extent {
	sector := off >> 9
	for _, e := range s.exts {
		if sector < e.endSector {
			return e
		}
	}
	return nil
}

// offsetInCluster is vmdk_find_offset_in_cluster.
func (e *extent) offsetInCluster(off int64) int64 {
	return (off - (e.endSector-e.sectors)*512) % (e.clusterSectors * 512)
}

// Result of a grain lookup (QEMU's VMDK_OK, VMDK_UNALLOC, VMDK_ZEROED).
const (
	grainOK = iota
	grainUnalloc
	grainZeroed
)

// lookupMeta records where a grain's entry lives, for l2Update.
type lookupMeta struct {
	l1Index, l2Index int64
	l2Offset         uint32
	cacheSlot        int
	newAlloc         bool
}

// l2Table returns the cached grain table at sector l2Off, loading it into
// the least used slot on a miss (QEMU's cache, event l2_load).
func (e *extent) l2Table(co *blk.Co, l2Off uint32) (int, error) {
	for i := range e.cacheOffsets {
		if e.cacheOffsets[i] == l2Off {
			e.cacheCounts[i]++
			if e.cacheCounts[i] == 0xffffffff {
				for j := range e.cacheCounts {
					e.cacheCounts[j] >>= 1
				}
			}
			return i, nil
		}
	}
	minIdx, minCount := 0, uint32(0xffffffff)
	for i, c := range e.cacheCounts {
		if c < minCount {
			minIdx, minCount = i, c
		}
	}
	e.file.Event(co, blk.EvL2Load)
	raw := make([]byte, e.l2Size*e.entrySize())
	if err := preadPartial(co, e.file, int64(l2Off)*512, raw); err != nil {
		return 0, err
	}
	decodeEntries(e.cache[minIdx], raw, e.entrySize())
	e.cacheOffsets[minIdx] = l2Off
	e.cacheCounts[minIdx] = 1
	return minIdx, nil
}

// clusterOffset is get_cluster_offset for a hosted sparse extent.
func (e *extent) clusterOffset(co *blk.Co, off int64, m *lookupMeta, allocate bool, skipStart, skipEnd int64) (int, int64, error) {
	if m != nil {
		m.newAlloc = false
	}
	if e.flat {
		return grainOK, e.flatStart, nil
	}
	off -= (e.endSector - e.sectors) * 512
	l1Index := (off >> 9) / e.l1EntrySectors
	if l1Index >= int64(len(e.l1)) {
		return 0, 0, unix.EIO
	}
	l2Off, ok := e.tableSector(l1Index)
	if !ok {
		return 0, 0, unix.EIO
	}
	if l2Off == 0 {
		return grainUnalloc, 0, nil
	}
	// A grain table outside the file is corruption: QEMU reads zeroes
	// there (so does gio) but would write entries past the end, which
	// gio refuses.
	if flen, err := e.file.Node.Length(co); err != nil || allocate && int64(l2Off)*512+e.l2Size*4 > flen {
		return 0, 0, unix.EIO
	}
	slot, err := e.l2Table(co, l2Off)
	if err != nil {
		return 0, 0, unix.EIO
	}
	l2Index := ((off >> 9) / e.clusterSectors) % e.l2Size
	if m != nil {
		*m = lookupMeta{l1Index: l1Index, l2Index: l2Index, l2Offset: l2Off, cacheSlot: slot}
	}
	sector, zeroed, ok := e.grainSector(e.cache[slot][l2Index])
	if !ok {
		return 0, 0, unix.EIO
	}
	if sector == 0 || zeroed {
		if !allocate {
			if zeroed {
				return grainZeroed, 0, nil
			}
			return grainUnalloc, 0, nil
		}
		if e.sesparse {
			return 0, 0, unix.EIO // read-only: never allocates
		}
		if e.nextCluster >= maxExtentSectors {
			return 0, 0, unix.EIO
		}
		sector = e.nextCluster
		e.nextCluster += e.clusterSectors
		if err := e.wholeCluster(co, sector*512, off, skipStart, skipEnd, zeroed); err != nil {
			return 0, 0, unix.EIO
		}
		if m != nil {
			m.newAlloc = true
		}
	}
	return grainOK, int64(uint64(sector) << 9), nil
}

// tableSector is the sector of grain table l1Index (0: none); ok is
// false for a seSparse directory entry QEMU calls corrupt.
func (e *extent) tableSector(l1Index int64) (sector uint32, ok bool) {
	v := e.l1[l1Index]
	if !e.sesparse {
		return uint32(v), true
	}
	switch {
	case v == 0:
		return 0, true
	case v&0xffffffff00000000 != 0x1000000000000000:
		// The top nibble 1 marks an allocated table; QEMU also wants
		// the rest of the top half 0 (at most 64 TB of disk).
		return 0, false
	}
	t := e.seTables + (v&0xffffffff)*uint64(e.l2Size*8)/512
	if t > 0xffffffff {
		return 0, false
	}
	return uint32(t), true
}

// grainSector decodes a grain table entry: the grain's sector in the
// file (0: unallocated) and whether it reads as zeroes; ok is false for
// an entry QEMU calls corrupt.
func (e *extent) grainSector(v uint64) (sector int64, zeroed, ok bool) {
	if !e.sesparse {
		return int64(v), e.zeroGrain && v == gteZeroed, true
	}
	switch v >> 60 {
	case 0: // unallocated
		return 0, false, v == 0
	case 1, 2: // unmapped, zeroed
		return 0, true, true
	case 3: // allocated: a grain number, its 12 high bits first
		g := (v&0x0fff000000000000)>>48 | (v&0x0000ffffffffffff)<<12
		return int64(e.seGrains + g*uint64(e.clusterSectors)), false, true
	}
	return 0, false, false
}

// wholeCluster is get_whole_cluster: the backing file's data (zeroes
// without one, or over a zeroed grain) around the part the request will
// write (events cow_read, cow_write). off is the offset in the extent,
// which QEMU also reads the backing file at.
func (e *extent) wholeCluster(co *blk.Co, clusterOff, off, skipStart, skipEnd int64, zeroed bool) error {
	cb := e.clusterSectors * 512
	off -= off % cb
	backing := e.owner.backing
	fromBacking := backing != nil && !zeroed
	if backing != nil && !e.owner.cidValid(co) {
		return unix.EIO
	}
	part := func(start, n int64) error {
		if !fromBacking {
			e.file.Event(co, blk.EvCowWrite)
			return e.writeZeroes(co, clusterOff+start, n)
		}
		buf := make([]byte, n)
		e.file.Event(co, blk.EvCowRead)
		if err := backing.Node.PRead(co, off+start, buf, 0); err != nil {
			return err
		}
		e.file.Event(co, blk.EvCowWrite)
		return e.file.Node.PWrite(co, clusterOff+start, buf, 0)
	}
	if skipStart > 0 {
		if err := part(0, skipStart); err != nil {
			return err
		}
	}
	if skipEnd < cb {
		if err := part(skipEnd, cb-skipEnd); err != nil {
			return err
		}
	}
	return nil
}

// writeZeroes writes n zero bytes at off as a data write, as QEMU does;
// grains of corrupt images can be up to 1 GiB, which go through the
// child's zero write instead of a buffer that size.
func (e *extent) writeZeroes(co *blk.Co, off, n int64) error {
	if n > 2<<20 {
		return e.file.Node.PWriteZeroes(co, off, n, 0)
	}
	return e.file.Node.PWrite(co, off, make([]byte, n), 0)
}

// l2Update is vmdk_L2update: the entry, then its redundant copy, then a
// flush, and only then the cache.
func (e *extent) l2Update(co *blk.Co, m *lookupMeta, v uint32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	// A grain table (or its redundant copy) outside the file is
	// corruption that QEMU would write past the end for; gio refuses,
	// before either entry changes.
	flen, err := e.file.Node.Length(co)
	if err != nil || int64(m.l2Offset)*512+e.l2Size*4 > flen {
		return unix.EIO
	}
	if e.l1BackupOffset != 0 && int64(e.l1Backup[m.l1Index])*512+e.l2Size*4 > flen {
		return unix.EIO
	}
	e.file.Event(co, blk.EvL2Update)
	if err := e.file.Node.PWrite(co, int64(m.l2Offset)*512+m.l2Index*4, b[:], 0); err != nil {
		return unix.EIO
	}
	if e.l1BackupOffset != 0 {
		bo := e.l1Backup[m.l1Index]
		if err := e.file.Node.PWrite(co, int64(bo)*512+m.l2Index*4, b[:], 0); err != nil {
			return unix.EIO
		}
	}
	if err := e.file.Node.Flush(co); err != nil {
		return unix.EIO
	}
	e.cache[m.cacheSlot][m.l2Index] = uint64(v)
	return nil
}

func (s *state) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	s.mu.lock(co)
	defer s.mu.unlock()
	for len(buf) > 0 {
		e := s.findExtent(off)
		if e == nil {
			return unix.EIO
		}
		// A grain that cannot be looked up (a corrupt table entry, a
		// table that cannot be read) reads as unallocated, as in QEMU.
		res, coff, err := e.clusterOffset(co, off, nil, false, 0, 0)
		if err != nil {
			res = grainUnalloc
		}
		oic := e.offsetInCluster(off)
		n := min(int64(len(buf)), e.clusterSectors*512-oic)
		if res != grainOK {
			if s.backing != nil && res != grainZeroed {
				if !s.cidValid(co) {
					return unix.EINVAL
				}
				s.file.Event(co, blk.EvReadBackingAIO)
				if err := s.backing.Node.PRead(co, off, buf[:n], 0); err != nil {
					return err
				}
			} else {
				clear(buf[:n])
			}
		} else if err := e.readGrain(co, coff, oic, buf[:n]); err != nil {
			return err
		}
		buf = buf[n:]
		off += n
	}
	return nil
}

// readGrain is vmdk_read_extent.
func (e *extent) readGrain(co *blk.Co, coff, oic int64, buf []byte) error {
	if !e.compressed {
		e.file.Event(co, blk.EvReadAIO)
		return e.file.Node.PRead(co, coff+oic, buf, 0)
	}
	cb := e.clusterSectors * 512
	if cb > 16<<20 {
		// QEMU allocates two grains of a corrupt image's size (up to
		// 2 GiB) here; gio refuses grains over 16 MiB.
		return unix.EINVAL
	}
	raw := make([]byte, 2*cb)
	e.file.Event(co, blk.EvReadCompressed)
	if err := preadPartial(co, e.file, coff, raw); err != nil {
		return err
	}
	data := raw
	dataLen := cb
	if e.hasMarker {
		dataLen = int64(binary.LittleEndian.Uint32(raw[8:]))
		data = raw[12:]
	}
	if dataLen == 0 || dataLen > 2*cb || dataLen > int64(len(data)) {
		return unix.EINVAL
	}
	out := make([]byte, cb)
	// A stream whose header is bad produces nothing, which the range
	// check below refuses.
	got, err := inflate.Zlib(out, data[:dataLen])
	if err != nil && err != io.ErrUnexpectedEOF {
		return unix.EINVAL
	}
	if oic+int64(len(buf)) > int64(got) {
		return unix.EINVAL
	}
	copy(buf, out[oic:])
	return nil
}

func (s *state) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	s.mu.lock(co)
	defer s.mu.unlock()
	return s.write(co, off, int64(len(buf)), buf, false, false)
}

// PWriteZeroes is vmdk_co_pwrite_zeroes: zeroed grain entries for whole
// grains only, tried dry first so that a refused request changes nothing.
func (s *state) PWriteZeroes(co *blk.Co, off, n int64, flags blk.ReqFlags) error {
	s.mu.lock(co)
	defer s.mu.unlock()
	if err := s.write(co, off, n, nil, true, true); err != nil {
		return err
	}
	return s.write(co, off, n, nil, true, false)
}

// write is vmdk_pwritev.
func (s *state) write(co *blk.Co, off, n int64, buf []byte, zeroed, dryRun bool) error {
	if (off+511)/512 > s.size/512 {
		return unix.EIO
	}
	done := int64(0)
	for n > 0 {
		e := s.findExtent(off)
		if e == nil {
			return unix.EIO
		}
		if e.sesparse {
			return unix.ENOTSUP
		}
		oic := e.offsetInCluster(off)
		nb := min(n, e.clusterSectors*512-oic)
		var m lookupMeta
		res, coff, err := e.clusterOffset(co, off, &m, !(e.compressed || zeroed), oic, oic+nb)
		if e.compressed {
			if err == nil && res == grainOK {
				s.report(errors.New("Could not write to allocated cluster for streamOptimized"))
				return unix.EIO
			}
			if !zeroed {
				// A compressed grain goes at the allocation point, which
				// first gets a whole grain of zeroes (or backing data)
				// like any new grain; the compressed data then moves the
				// point to its own end.
				res, coff, err = e.clusterOffset(co, off, &m, true, 0, 0)
				if err == nil && res != grainOK {
					// No grain table for the grain: QEMU writes at a
					// stale offset here; gio refuses.
					return unix.EIO
				}
			}
		}
		if err != nil {
			return unix.EINVAL
		}
		if zeroed {
			if !e.zeroGrain || oic != 0 || nb < e.clusterSectors*512 {
				return unix.ENOTSUP
			}
			if res == grainUnalloc && m.l2Offset == 0 {
				// No grain table to record the zero in: QEMU writes
				// through a stale m_data here; refuse instead.
				return unix.ENOTSUP
			}
			if !dryRun && res != grainZeroed {
				if err := e.l2Update(co, &m, gteZeroed); err != nil {
					return err
				}
			}
		} else {
			if !m.newAlloc && !e.compressed && !e.flat {
				// A grain that starts past the end of its file is what
				// check calls corrupt: QEMU would write there, gio
				// refuses rather than write outside the file. A flat
				// extent's file may be short (qemu-img leaves a 16 TiB
				// one empty where the file system cannot make it that
				// long): writes grow it, as QEMU's do (105).
				flen, err := e.file.Node.Length(co)
				if err != nil || uint64(coff+oic) > uint64(flen) {
					return unix.EIO
				}
			}
			if err := e.writeGrain(co, coff, oic, off, buf[done:done+nb]); err != nil {
				return err
			}
			if m.newAlloc {
				if err := e.l2Update(co, &m, uint32(coff>>9)); err != nil {
					return err
				}
			}
		}
		n -= nb
		off += nb
		done += nb
		if !s.cidUpdated && !dryRun {
			// The file gets a new CID; QEMU's s->cid (what info
			// shows) stays the one read at open.
			if err := s.writeCID(co, nextCID(s.cid)); err != nil {
				return err
			}
			s.cidUpdated = true
		}
	}
	return nil
}

// writeGrain is vmdk_write_extent: data at coff+oic, or for a compressed
// extent a whole grain (or the disk's last, partial one) deflated behind
// a grain marker (the grain's first sector in the disk, the data's
// length), after which the next grain goes.
func (e *extent) writeGrain(co *blk.Co, coff, oic, off int64, data []byte) error {
	n := int64(len(data))
	if !e.compressed {
		e.file.Event(co, blk.EvWriteAIO)
		err := e.file.Node.PWrite(co, coff+oic, data, 0)
		e.nextCluster = max(e.nextCluster, (coff+oic+n+511)/512)
		return err
	}
	cb := e.clusterSectors * 512
	if oic != 0 || n > cb || n < cb && off+n != e.endSector*512 || !e.hasMarker {
		return unix.EINVAL
	}
	var z bytes.Buffer
	z.Write(make([]byte, 12))
	w := zlib.NewWriter(&z)
	w.Write(data)
	w.Close()
	if z.Len()-12 > int(2*cb) {
		// zlib's compress() into QEMU's two-grain buffer fails.
		return unix.EINVAL
	}
	out := z.Bytes()
	binary.LittleEndian.PutUint64(out, uint64(off>>9))
	binary.LittleEndian.PutUint32(out[8:], uint32(len(out)-12))
	e.file.Event(co, blk.EvWriteCompressed)
	err := e.file.Node.PWrite(co, coff+oic, out, 0)
	e.nextCluster = (coff + oic + int64(len(out)) + 511) / 512
	return err
}

// BlockStatus is vmdk_co_block_status.
func (s *state) BlockStatus(co *blk.Co, wantZero bool, off, n int64) (blk.Status, error) {
	e := s.findExtent(off)
	if e == nil {
		return blk.Status{}, unix.EIO
	}
	s.mu.lock(co)
	res, coff, err := e.clusterOffset(co, off, nil, false, 0, 0)
	s.mu.unlock()
	if err != nil {
		return blk.Status{}, unix.EIO
	}
	oic := e.offsetInCluster(off)
	st := blk.Status{Pnum: min(e.clusterSectors*512-oic, n)}
	switch res {
	case grainZeroed:
		st.Flags = blk.StatusZero
	case grainOK:
		st.Flags = blk.StatusData
		if !e.compressed {
			st.Flags |= blk.StatusOffsetValid
			st.Map = coff + oic
			if e.flat {
				st.Flags |= blk.StatusRecurse
			}
		}
		st.File = e.file.Node
	}
	return st, nil
}

// coMutex is QEMU's CoMutex (s->lock): one request at a time in the
// metadata paths.
type coMutex struct{ blk.CoMutex }

func (m *coMutex) lock(co *blk.Co) { m.Lock(co, "waits for the vmdk lock") }
func (m *coMutex) unlock()         { m.Unlock() }

// PWriteCompressed is vmdk_co_pwritev_compressed: a plain write (which
// compresses only on a compressed extent: qemu-io write -c succeeds on
// monolithicSparse, uncompressed). A write of 0 bytes marks the end of
// the stream: each extent file grows to a whole sector.
func (s *state) PWriteCompressed(co *blk.Co, off int64, buf []byte) error {
	if len(buf) > 0 {
		return s.PWrite(co, off, buf, 0)
	}
	for _, e := range s.exts {
		n, err := e.file.Node.Length(co)
		if err != nil {
			return err
		}
		if err := e.file.Node.Truncate(co, (n+511)&^511, false, blk.PreallocOff); err != nil {
			return err
		}
	}
	return nil
}
