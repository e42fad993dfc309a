package qcow

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// create is qcow_co_create, byte for byte: the header, the backing file
// name after it, and the L1 table zeroed in whole sectors. With a
// backing file, clusters are 512 bytes and L2 tables 32 KiB (so that no
// write needs the backing data around it); without, 4 KiB each.
//
// Options: backing_file, backing_fmt (checked, not stored: qcow cannot
// record it), encrypt only off.
func create(co *blk.Co, a *blk.CreateArgs) error {
	o := a.Opts
	size := (a.Size + 511) &^ 511
	backingFile, hasBacking := o.TakeString("backing_file")
	backingFmt, hasFmt := o.TakeString("backing_fmt")
	if hasFmt && !hasBacking {
		return blk.Msgf(unix.EINVAL, "Backing format cannot be used without backing file")
	}
	_ = backingFmt
	enc, err := o.TakeBool("encrypt", false)
	if err != nil {
		return err
	}
	if f, ok := o.TakeString("encrypt.format"); enc || ok && f != "" {
		return blk.Msgf(unix.ENOTSUP, "qcow: encrypted images cannot be created by gio")
	}
	if size == 0 {
		return blk.Msgf(unix.EINVAL, "Image size is too small, cannot be zero length")
	}
	if hasBacking && !hasFmt {
		path := blk.CombinePath(a.File.Filename(), backingFile)
		if _, err := a.ProbeFormat(co, path); err != nil {
			return blk.PrefixError("Could not open backing file: ", err)
		}
	}
	h := header{Magic: qcowMagic, Version: qcowVersion, Size: uint64(size), ClusterBits: 12, L2Bits: 9}
	hs := int64(headerSize)
	if hasBacking && backingFile != "fat:" {
		h.BackingFileOffset = headerSize
		h.BackingFileSize = uint32(len(backingFile))
		hs += int64(len(backingFile))
	} else if hasBacking {
		backingFile = ""
	}
	if hasBacking {
		h.ClusterBits, h.L2Bits = 9, 12
	}
	hs = (hs + 7) &^ 7
	shift := uint(h.ClusterBits + h.L2Bits)
	l1Size := (size + (1 << shift) - 1) >> shift
	h.L1TableOffset = uint64(hs)
	buf := make([]byte, headerSize+len(backingFile))
	h.encode(buf)
	copy(buf[headerSize:], backingFile)
	if err := a.File.PWrite(co, 0, buf, 0); err != nil {
		return err
	}
	sectors := (8*l1Size + 511) / 512
	return a.File.PWrite(co, hs, make([]byte, 512*sectors), 0)
}
