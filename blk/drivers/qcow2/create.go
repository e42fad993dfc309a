package qcow2

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// create formats an empty file as a qcow2 image the way qcow2_co_create
// does, so that the result is byte for byte what qemu-img create writes:
// a minimal header with a one-cluster refcount table and one refcount
// block, then the image opened, its first three clusters allocated, the
// full header written, the L1 table grown to the size, and the backing
// file recorded.
//
// Options (qemu-img's -o names): cluster_size, compat (0.10/v2, 1.1/v3),
// refcount_bits, backing_file, backing_fmt (probed when absent), and
// lazy_refcounts, compression_type (zlib, zstd), extended_l2,
// preallocation (off, metadata, falloc, full), data_file, data_file_raw
// and encryption.
func create(co *blk.Co, a *blk.CreateArgs) error {
	o := a.Opts
	size := (a.Size + 511) &^ 511
	if size < 0 {
		return blk.Msgf(unix.EINVAL, "Image size must be non-negative")
	}
	// qcow2_co_create_opts makes the data file first, empty, before it
	// looks at any other option.
	dataFile, hasDataFile := o.TakeString("data_file")
	var dataNode *blk.Node
	if hasDataFile {
		var err error
		if dataNode, err = a.CreateFile(co, dataFile); err != nil {
			return err
		}
	}
	prealloc := blk.PreallocOff
	if v, ok := o.TakeString("preallocation"); ok {
		p, ok := blk.ParsePrealloc(v)
		if !ok {
			return blk.Msgf(unix.EINVAL, "Parameter 'preallocation' does not accept value '%s'", v)
		}
		prealloc = p
	}
	dataRaw, err := o.TakeBool("data_file_raw", false)
	if err != nil {
		return err
	}
	cs, _, err := o.TakeSize("cluster_size", 65536)
	if err != nil {
		return err
	}
	version := 3
	if v, ok := o.TakeString("compat"); ok {
		switch v {
		case "0.10", "v2":
			version = 2
		case "1.1", "v3":
		default:
			return blk.Msgf(unix.EINVAL, "Parameter 'version' does not accept value '%s'", v)
		}
	}
	extL2, err := o.TakeBool("extended_l2", false)
	if err != nil {
		return err
	}
	if extL2 && version < 3 {
		return blk.Msgf(unix.EINVAL, "Extended L2 entries are only supported with compatibility level 1.1 and above (use version=v3 or greater)")
	}
	if cs < 1<<minClusterBits || cs > 1<<maxClusterBits || cs&(cs-1) != 0 {
		return blk.Msgf(unix.EINVAL, "Cluster size must be a power of two between %d and %dk", 1<<minClusterBits, 1<<(maxClusterBits-10))
	}
	if minCS := uint64(1<<minClusterBits) * subclustersPerCluster; extL2 && cs < minCS {
		return blk.Msgf(unix.EINVAL, "Extended L2 entries are only supported with cluster sizes of at least %d bytes", minCS)
	}
	rb, err := o.TakeUint("refcount_bits", 16)
	if err != nil {
		return err
	}
	if rb == 0 || rb > 64 || rb&(rb-1) != 0 {
		return blk.Msgf(unix.EINVAL, "Refcount width must be a power of two and may not exceed 64 bits")
	}
	if version < 3 && rb != 16 {
		return blk.Msgf(unix.EINVAL, "Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)")
	}
	backingFile, hasBacking := o.TakeString("backing_file")
	backingFmt, hasFmt := o.TakeString("backing_fmt")
	if hasBacking && prealloc != blk.PreallocOff && !extL2 {
		return blk.Msgf(unix.EINVAL, "Backing file and preallocation can only be used at the same time if extended_l2 is on")
	}
	if hasFmt && !hasBacking {
		return blk.Msgf(unix.EINVAL, "Backing format cannot be used without backing file")
	}
	if dataRaw && !hasDataFile {
		return blk.Msgf(unix.EINVAL, "data-file-raw requires data-file")
	}
	if dataRaw && hasBacking {
		return blk.Msgf(unix.EINVAL, "Backing file and data-file-raw cannot be used at the same time")
	}
	if dataRaw && prealloc == blk.PreallocOff {
		// The L1/L2 tables must map the raw data file one to one.
		prealloc = blk.PreallocMetadata
	}
	if hasDataFile && version < 3 {
		return blk.Msgf(unix.EINVAL, "External data files are only supported with compatibility level 1.1 and above (use version=v3 or greater)")
	}
	lazy, err := o.TakeBool("lazy_refcounts", false)
	if err != nil {
		return err
	}
	if lazy && version < 3 {
		return blk.Msgf(unix.EINVAL, "Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)")
	}
	compression := uint8(compressionZlib)
	if v, ok := o.TakeString("compression_type"); ok {
		switch v {
		case "zlib":
		case "zstd":
			if version < 3 {
				return blk.Msgf(unix.EINVAL, "Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)")
			}
			compression = compressionZstd
		default:
			return blk.Msgf(unix.EINVAL, "Parameter 'compression-type' does not accept value '%s'", v)
		}
	}
	cryptMethod, cryptOpts, keySecret, err := createCryptOptions(o)
	if err != nil {
		return err
	}
	var password []byte
	if cryptMethod != cryptNone {
		if password, err = a.Password(keySecret); err != nil {
			return blk.Msgf(unix.EINVAL, "%v", err)
		}
	}
	if hasBacking {
		path := blk.CombinePath(a.File.Filename(), backingFile)
		probed, err := a.ProbeFormat(co, path)
		if err != nil {
			return blk.PrefixError("Could not open backing file: ", err)
		}
		if !hasFmt {
			backingFmt = probed
		}
	}

	clusterBits := uint(bits.TrailingZeros64(cs))
	order := uint(bits.TrailingZeros64(rb))
	h := header{
		Magic:                 qcowMagic,
		Version:               uint32(version),
		ClusterBits:           uint32(clusterBits),
		RefcountTableOffset:   cs,
		RefcountTableClusters: 1,
		RefcountOrder:         uint32(order),
		HeaderLength:          headerStruct,
		CompressionType:       compression,
	}
	if lazy {
		h.CompatibleFeatures |= compatLazyRefcounts
	}
	if compression != compressionZlib {
		h.IncompatibleFeatures |= incompatCompression
	}
	if extL2 {
		h.IncompatibleFeatures |= incompatExtL2
	}
	if hasDataFile {
		h.IncompatibleFeatures |= incompatDataFile
	}
	if dataRaw {
		h.AutoclearFeatures |= autoclearDataFileRaw
	}
	hdr := make([]byte, cs)
	raw, _ := binary.Append(nil, binary.BigEndian, &h)
	copy(hdr, raw)
	if err := a.File.PWrite(co, 0, hdr, 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not write qcow2 header")
	}
	rt := make([]byte, 2*cs)
	binary.BigEndian.PutUint64(rt, 2*cs)
	if err := a.File.PWrite(co, int64(cs), rt, 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not write refcount table")
	}

	s := &state{self: nil, file: &blk.Child{Name: "file", Node: a.File}, loop: co.Loop()}
	s.opts = defaultOpts(false)
	s.data = s.file
	if dataNode != nil {
		s.data = &blk.Child{Name: "data-file", Node: dataNode}
	}
	s.stderr = io.Discard
	s.report = func(error) {}
	s.mu.lock(co)
	defer s.mu.unlock()
	if err := s.doOpen(co); err != nil {
		return err
	}
	off, err := s.allocClusters(co, 3*int64(cs))
	if err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not allocate clusters for qcow2 header and refcount table")
	}
	if off != 0 {
		return fmt.Errorf("qcow2: first cluster in empty image is already in use")
	}
	if hasDataFile {
		s.dataFileName = dataFile
	}
	if err := s.updateHeader(co); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not update qcow2 header")
	}
	if err := s.truncate(co, size, false, prealloc, false); err != nil {
		return blk.PrefixError("Could not resize image: ", err)
	}
	if hasBacking {
		s.backingFile, s.backingFormat = backingFile, backingFmt
		if err := s.updateHeader(co); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not assign backing file '%s' with format '%s'", backingFile, backingFmt)
		}
	}
	if cryptMethod != cryptNone {
		if err := s.setUpEncryption(co, cryptMethod, cryptOpts, password); err != nil {
			return err
		}
	}
	if err := s.l2Cache.flush(co); err != nil {
		return err
	}
	return s.rcCache.flush(co)
}
