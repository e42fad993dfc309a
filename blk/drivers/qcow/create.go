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
// record it), encrypt=on or encrypt.format=aes with encrypt.key-secret
// (AES: only the header's crypt method says so).
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
	format, hasFormat := o.TakeString("encrypt.format")
	keySecret, hasKeySecret := o.TakeString("encrypt.key-secret")
	if enc && hasFormat {
		return blk.Msgf(unix.EINVAL, "'encrypt.format' and its alias 'encrypt' can't be used at the same time")
	}
	if enc {
		format, hasFormat = "aes", true
	}
	switch format {
	case "", "aes", "qcow", "luks":
	default:
		return blk.Msgf(unix.EINVAL, "Parameter 'encrypt.format' does not accept value '%s'", format)
	}
	if size == 0 {
		return blk.Msgf(unix.EINVAL, "Image size is too small, cannot be zero length")
	}
	if hasFormat && format == "luks" {
		return blk.Msgf(unix.EINVAL, "Unsupported encryption format")
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
	if hasFormat {
		// qcrypto_block_qcow_create: the key must be there; nothing of
		// it is stored.
		if !hasKeySecret {
			return blk.Msgf(unix.EINVAL, "Parameter 'encrypt.key-secret' is required for cipher")
		}
		if _, err := a.Password(keySecret); err != nil {
			return blk.Msgf(unix.EINVAL, "%v", err)
		}
		h.CryptMethod = cryptAES
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
