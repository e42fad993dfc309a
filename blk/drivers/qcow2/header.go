package qcow2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// On-disk constants (docs/interop/qcow2.txt).
const (
	qcowMagic = 0x514649fb // "QFI\xfb"

	headerV2Len  = 72  // version 2 header, without the v3 fields
	headerV3Len  = 104 // minimum header_length of a version 3 image
	headerStruct = 112 // QEMU's QCowHeader, with compression_type and padding

	minClusterBits = 9
	maxClusterBits = 21

	maxL1Bytes       = 32 << 20 // QCOW_MAX_L1_SIZE
	maxReftableBytes = 8 << 20  // QCOW_MAX_REFTABLE_SIZE
	maxSnapshots     = 65536
	snapshotHdrSize  = 40
	maxBackingName   = 1023
	backingFmtMax    = 16 // sizeof(bs->backing_format)
)

// Feature bits.
const (
	incompatDirty       = 1 << 0
	incompatCorrupt     = 1 << 1
	incompatDataFile    = 1 << 2
	incompatCompression = 1 << 3
	incompatExtL2       = 1 << 4
	incompatMask        = 0x1f

	compatLazyRefcounts = 1 << 0

	autoclearBitmaps     = 1 << 0
	autoclearDataFileRaw = 1 << 1
	autoclearMask        = 0x3
)

// Compression types.
const (
	compressionZlib = 0
	compressionZstd = 1
)

// Header extension magics.
const (
	extEnd           = 0
	extBackingFormat = 0xe2792aca
	extFeatureTable  = 0x6803f857
	extCryptoHeader  = 0x0537be77
	extBitmaps       = 0x23852875
	extDataFile      = 0x44415441
)

// Table entry flags and masks.
const (
	oflagCopied     = uint64(1) << 63
	oflagCompressed = uint64(1) << 62
	oflagZero       = uint64(1) << 0

	l1eOffsetMask = uint64(0x00fffffffffffe00)
	l2eOffsetMask = uint64(0x00fffffffffffe00)
	refOffsetMask = uint64(0xfffffffffffffe00)

	l2eCompressedOffsetSizeMask = uint64(0x3fffffffffffffff)
	compressedSectorSize        = 512
)

// header is the fixed part of a qcow2 header, field by field as on disk
// (big-endian). Version 2 images stop after SnapshotsOffset; the decoder
// fills the version 3 fields with their implied values.
type header struct {
	Magic                 uint32
	Version               uint32
	BackingFileOffset     uint64
	BackingFileSize       uint32
	ClusterBits           uint32
	Size                  uint64
	CryptMethod           uint32
	L1Size                uint32
	L1TableOffset         uint64
	RefcountTableOffset   uint64
	RefcountTableClusters uint32
	NbSnapshots           uint32
	SnapshotsOffset       uint64
	// Version 3.
	IncompatibleFeatures uint64
	CompatibleFeatures   uint64
	AutoclearFeatures    uint64
	RefcountOrder        uint32
	HeaderLength         uint32
	CompressionType      uint8
	Padding              [7]byte
}

// decodeHeader decodes the first headerStruct bytes of an image. It does
// not validate anything but the length of buf.
func decodeHeader(buf []byte) (header, error) {
	var h header
	if len(buf) < headerStruct {
		return h, fmt.Errorf("qcow2: header: %d bytes, want %d", len(buf), headerStruct)
	}
	if _, err := binary.Decode(buf[:headerStruct], binary.BigEndian, &h); err != nil {
		return h, err
	}
	if h.Version == 2 {
		h.IncompatibleFeatures, h.CompatibleFeatures, h.AutoclearFeatures = 0, 0, 0
		h.RefcountOrder = 4
		h.HeaderLength = headerV2Len
		h.CompressionType = compressionZlib
	}
	return h, nil
}

// encode returns the header's bytes: 72 for version 2, 112 otherwise.
func (h *header) encode() []byte {
	buf, err := binary.Append(nil, binary.BigEndian, h)
	if err != nil {
		panic(err) // fixed-size struct: cannot fail
	}
	if h.Version == 2 {
		return buf[:headerV2Len]
	}
	return buf
}

// extension is a header extension kept as it was read (unknown ones are
// written back unchanged, as QEMU does).
type extension struct {
	magic uint32
	data  []byte
}

// feature is one entry of the feature name table extension.
type feature struct {
	typ  uint8 // 0 incompatible, 1 compatible, 2 autoclear
	bit  uint8
	name string
}

const (
	featIncompatible = 0
	featCompatible   = 1
	featAutoclear    = 2
	featureEntrySize = 48
)

// knownFeatures is the table QEMU writes for clusters larger than 4 KiB.
var knownFeatures = []feature{
	{featIncompatible, 0, "dirty bit"},
	{featIncompatible, 1, "corrupt bit"},
	{featIncompatible, 2, "external data file"},
	{featIncompatible, 3, "compression type"},
	{featIncompatible, 4, "extended L2 entries"},
	{featCompatible, 0, "lazy refcounts"},
	{featAutoclear, 0, "bitmaps"},
	{featAutoclear, 1, "raw external data"},
}

func encodeFeatures(fs []feature) []byte {
	buf := make([]byte, len(fs)*featureEntrySize)
	for i, f := range fs {
		e := buf[i*featureEntrySize:]
		e[0], e[1] = f.typ, f.bit
		copy(e[2:featureEntrySize], f.name)
	}
	return buf
}

func decodeFeatures(data []byte) []feature {
	var fs []feature
	for len(data) >= featureEntrySize {
		name := data[2:featureEntrySize]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if len(name) == 0 {
			break // QEMU stops at the first empty name
		}
		fs = append(fs, feature{data[0], data[1], string(name)})
		data = data[featureEntrySize:]
	}
	return fs
}

// unsupportedFeatures is report_unsupported_feature: the names the image's
// feature table gives the unknown incompatible bits, then the rest in hex.
func unsupportedFeatures(table []feature, mask uint64) string {
	var names []string
	for _, f := range table {
		if f.typ == featIncompatible && f.bit < 64 && mask&(1<<f.bit) != 0 {
			name := f.name
			if len(name) > 46 {
				name = name[:46]
			}
			names = append(names, name)
			mask &^= 1 << f.bit
		}
	}
	if mask != 0 {
		names = append(names, fmt.Sprintf("Unknown incompatible feature: %x", mask))
	}
	return "Unsupported qcow2 feature(s): " + strings.Join(names, ", ")
}

// appendExt appends one extension padded to 8 bytes (header_ext_add).
func appendExt(buf []byte, magic uint32, data []byte) []byte {
	buf = binary.BigEndian.AppendUint32(buf, magic)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(data)))
	buf = append(buf, data...)
	return append(buf, make([]byte, (8-len(data)%8)%8)...)
}
