package qed

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// create formats an empty file as a QED image the way bdrv_qed_co_create
// does, byte for byte: the header (and the backing file name after it)
// in cluster 0, a zeroed L1 table from cluster 1, nothing else.
//
// Options (qemu-img's -o names): cluster_size, table_size, backing_file,
// backing_fmt.
func create(co *blk.Co, a *blk.CreateArgs) error {
	o := a.Opts
	size := (a.Size + 511) &^ 511
	cs, _, err := o.TakeSize("cluster_size", defaultClusterSize)
	if err != nil {
		return err
	}
	ts, _, err := o.TakeSize("table_size", defaultTableSize)
	if err != nil {
		return err
	}
	if ts == 0 {
		ts = defaultTableSize
	}
	backingFile, hasBacking := o.TakeString("backing_file")
	backingFmt, hasFmt := o.TakeString("backing_fmt")
	if hasFmt && !hasBacking {
		return blk.Msgf(unix.EINVAL, "Backing format cannot be used without backing file")
	}
	if cs > 1<<32-1 || !validClusterSize(uint32(cs)) {
		return blk.Msgf(unix.EINVAL, "QED cluster size must be within range [%d, %d] and power of 2", minClusterSize, maxClusterSize)
	}
	if ts > 1<<32-1 || !validTableSize(uint32(ts)) {
		return blk.Msgf(unix.EINVAL, "QED table size must be within range [%d, %d] and power of 2", minTableSize, maxTableSize)
	}
	if size < 0 || !validImageSize(uint64(size), uint32(cs), uint32(ts)) {
		return blk.Msgf(unix.EINVAL, "QED image size must be a non-zero multiple of cluster size and less than %d bytes", maxImageSize(uint32(cs), uint32(ts)))
	}
	if hasBacking && !hasFmt {
		// qemu-img create probes the backing file and fails when it
		// cannot be opened.
		path := blk.CombinePath(a.File.Filename(), backingFile)
		probed, err := a.ProbeFormat(co, path)
		if err != nil {
			return blk.PrefixError("Could not open backing file: ", err)
		}
		backingFmt = probed
	}
	h := header{Magic: qedMagic, ClusterSize: uint32(cs), TableSize: uint32(ts), HeaderSize: 1,
		L1TableOffset: uint64(cs), ImageSize: uint64(size)}
	if hasBacking {
		h.Features |= fBackingFile
		h.BackingNameOffset = headerSize
		h.BackingNameSize = uint32(len(backingFile))
		if backingFmt == "raw" {
			h.Features |= fBackingNoProb
		}
	}
	if err := a.File.Truncate(co, 0, true, blk.PreallocOff); err != nil {
		return err
	}
	buf := make([]byte, headerSize+len(backingFile))
	h.encode(buf)
	copy(buf[headerSize:], backingFile)
	if err := a.File.PWrite(co, 0, buf, 0); err != nil {
		return err
	}
	return a.File.PWrite(co, int64(cs), make([]byte, cs*ts), 0)
}
