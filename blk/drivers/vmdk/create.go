package vmdk

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// create is vmdk_co_create_opts: monolithicSparse (the default) and
// streamOptimized in one file, with zeroed_grain; monolithicFlat (a
// descriptor file and NAME-flat.EXT), twoGbMaxExtentSparse and
// twoGbMaxExtentFlat (a descriptor file and 2 GiB extents NAME-s001.EXT,
// NAME-f001.EXT...), the extents made beside the descriptor. A sparse
// extent's layout is vmdk_init_extent's: header, descriptor at sector 1
// (monolithic only), the redundant grain directory and its tables, the
// grain directory and its tables, grains from the next 64 KiB boundary;
// a flat extent is a sparse file of its size. A backing file (a vmdk
// image: sparse subformats only) gives its CID as parentCID and its name
// as parentFileNameHint. The CID is random in QEMU; gio takes a fixed
// one, so images differ from qemu-img's in those eight digits only.
func create(co *blk.Co, a *blk.CreateArgs) error {
	o := a.Opts
	size := a.Size
	if f, ok := o.TakeString("backing_fmt"); ok && f != "vmdk" {
		return blk.Msgf(unix.EINVAL, "backing_file must be a vmdk image")
	}
	backing, hasBacking := o.TakeString("backing_file")
	sub := "monolithicSparse"
	if v, ok := o.TakeString("subformat"); ok {
		sub = v
	}
	adapter := "ide"
	if v, ok := o.TakeString("adapter_type"); ok {
		switch v {
		case "ide", "buslogic", "lsilogic", "legacyESX":
			adapter = v
		default:
			return blk.Msgf(unix.EINVAL, "Invalid adapter type: '%s'", v)
		}
	}
	compat6, err := o.TakeBool("compat6", false)
	if err != nil {
		return err
	}
	hw, hasHW := o.TakeString("hwversion")
	if compat6 && hasHW {
		return blk.Msgf(unix.EINVAL, "compat6 cannot be enabled with hwversion set")
	}
	if compat6 {
		hw = "6"
	} else if !hasHW {
		hw = "4"
	}
	tools, ok := o.TakeString("toolsversion")
	if !ok {
		tools = "2147483647"
	}
	zeroed, err := o.TakeBool("zeroed_grain", false)
	if err != nil {
		return err
	}
	switch sub {
	case "monolithicSparse", "streamOptimized", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat":
	default:
		return blk.Msgf(unix.EINVAL, "invalid parameter value: %s", sub)
	}
	split := sub == "twoGbMaxExtentSparse" || sub == "twoGbMaxExtentFlat"
	flat := sub == "monolithicFlat" || sub == "twoGbMaxExtentFlat"
	compress := sub == "streamOptimized"
	if flat && hasBacking {
		return blk.Msgf(unix.ENOTSUP, "Flat image can't have backing file")
	}
	if flat && zeroed {
		return blk.Msgf(unix.ENOTSUP, "Flat image can't enable zeroed grain")
	}
	heads := int64(16)
	if adapter != "ide" {
		heads = 255
	}
	size = (size + 511) &^ 511
	lineFmt := "RW %d SPARSE \"%s\"\n"
	if flat {
		lineFmt = "RW %d FLAT \"%s\" 0\n"
	}
	var extents strings.Builder
	descOffset := int64(0)
	if !split && !flat {
		if err := initExtent(co, a.File, size, compress, zeroed); err != nil {
			return err
		}
		fmt.Fprintf(&extents, lineFmt, size/512, filepath.Base(a.File.Filename()))
		descOffset = 0x200
	}
	// The backing file is read once the first file exists (the
	// descriptor, or the only extent), as QEMU does.
	parentCID, parentLine := uint32(0xffffffff), ""
	if hasBacking {
		cid, err := backingCID(co, a, backing)
		if err != nil {
			return err
		}
		parentCID, parentLine = cid, fmt.Sprintf("parentFileNameHint=\"%s\"", backing)
	}
	if split || flat {
		dir, prefix, postfix := decomposeFilename(a.File.Filename())
		extentSize := size
		if split {
			extentSize = splitSize
		}
		for idx, done := 1, int64(0); done < size; idx++ {
			cur := min(size-done, extentSize)
			name := prefix + "-flat" + postfix
			if split {
				kind := 's'
				if flat {
					kind = 'f'
				}
				name = fmt.Sprintf("%s-%c%03d%s", prefix, kind, idx, postfix)
			}
			f, err := a.CreateFile(co, dir+name)
			if err != nil {
				return err
			}
			if flat {
				err = f.Truncate(co, cur, false, blk.PreallocOff)
			} else {
				err = initExtent(co, f, cur, false, zeroed)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(&extents, lineFmt, cur/512, name)
			done += cur
		}
	}
	desc := fmt.Sprintf("# Disk DescriptorFile\n"+
		"version=1\n"+
		"CID=%x\n"+
		"parentCID=%x\n"+
		"createType=\"%s\"\n"+
		"%s"+
		"\n"+
		"# Extent description\n"+
		"%s"+
		"\n"+
		"# The Disk Data Base\n"+
		"#DDB\n"+
		"\n"+
		"ddb.virtualHWVersion = \"%s\"\n"+
		"ddb.geometry.cylinders = \"%d\"\n"+
		"ddb.geometry.heads = \"%d\"\n"+
		"ddb.geometry.sectors = \"63\"\n"+
		"ddb.adapterType = \"%s\"\n"+
		"ddb.toolsVersion = \"%s\"\n",
		createCID, parentCID, sub, parentLine, extents.String(), hw, size/(63*heads*512), heads, adapter, tools)
	if descOffset == 0 {
		// A descriptor file holds the text alone.
		if err := a.File.PWrite(co, 0, []byte(desc), 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not write description")
		}
		return a.File.Truncate(co, int64(len(desc)), false, blk.PreallocOff)
	}
	// bdrv_pwrite pads to the sector: write whole sectors.
	b := make([]byte, (len(desc)+511)&^511)
	copy(b, desc)
	if err := a.File.PWrite(co, descOffset, b, 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not write description")
	}
	return nil
}

// backingCID is the backing file check of vmdk_co_do_create: the file,
// named relative to the new image, must be a vmdk image, whose CID it
// returns. (QEMU opens the image whole; gio probes its format and reads
// its descriptor.)
func backingCID(co *blk.Co, a *blk.CreateArgs, name string) (uint32, error) {
	path := blk.CombinePath(a.File.Filename(), name)
	f, err := a.OpenFile(co, path)
	if err != nil {
		return 0, err
	}
	format, err := a.ProbeFormat(co, path)
	if err != nil {
		return 0, err
	}
	if format != "vmdk" {
		return 0, blk.Msgf(unix.EINVAL, "Invalid backing file format: %s. Must be vmdk", format)
	}
	s := &state{file: &blk.Child{Name: "file", Node: f}}
	var magic [4]byte
	if err := preadPartial(co, s.file, 0, magic[:]); err != nil {
		return 0, err
	}
	if m := binary.BigEndian.Uint32(magic[:]); m == vmdk4Magic || m == vmdk3Magic {
		s.descOffset = 0x200
	}
	cid, err := s.readCID(co, "CID")
	if err != nil {
		return 0, blk.Msgf(unix.EINVAL, "Failed to read parent CID")
	}
	return cid, nil
}

// splitSize is the extent size of the twoGbMaxExtent subformats.
const splitSize = 0x80000000

// decomposeFilename is filename_decompose: the directory part (up to
// the last '/', '\\' or ':', kept), and the base name split at its last
// '.' (the extension keeps its dot).
func decomposeFilename(name string) (dir, prefix, postfix string) {
	i := strings.LastIndex(name, "/")
	if i < 0 {
		i = strings.LastIndex(name, "\\")
	}
	if i < 0 {
		i = strings.LastIndex(name, ":")
	}
	dir, base := name[:i+1], name[i+1:]
	if j := strings.LastIndex(base, "."); j >= 0 {
		return dir, base[:j], base[j:]
	}
	return dir, base, ""
}

// createCID stands for QEMU's g_random_int at creation.
const createCID = 0x5ee0c1d0

// initExtent is vmdk_init_extent for a sparse extent of size bytes.
func initExtent(co *blk.Co, f *blk.Node, size int64, compress, zeroed bool) error {
	le := binary.LittleEndian
	h := make([]byte, 512)
	binary.BigEndian.PutUint32(h, vmdk4Magic)
	version := uint32(1)
	if compress {
		version = 3
	} else if zeroed {
		version = 2
	}
	flags := uint32(flagRGD | 1)
	if compress {
		flags |= flagCompress | flagMarker
	}
	if zeroed {
		flags |= flagZeroGrain
	}
	const granularity, gtes = 128, 512
	capacity := size / 512
	grains := (capacity + granularity - 1) / granularity
	gtSize := int64((gtes*4 + 511) / 512)
	gtCount := (grains + gtes - 1) / gtes
	gdSectors := (gtCount*4 + 511) / 512
	descOffset, descSz := int64(1), int64(20)
	rgd := descOffset + descSz
	gd := rgd + gdSectors + gtSize*gtCount
	grainOffset := (gd + gdSectors + gtSize*gtCount + granularity - 1) / granularity * granularity
	le.PutUint32(h[4:], version)
	le.PutUint32(h[8:], flags)
	le.PutUint64(h[12:], uint64(capacity))
	le.PutUint64(h[20:], granularity)
	le.PutUint64(h[28:], uint64(descOffset))
	le.PutUint64(h[36:], uint64(descSz))
	le.PutUint32(h[44:], gtes)
	le.PutUint64(h[48:], uint64(rgd))
	le.PutUint64(h[56:], uint64(gd))
	le.PutUint64(h[64:], uint64(grainOffset))
	copy(h[73:], "\n \r\n")
	if compress {
		le.PutUint16(h[77:], compressionDeflate)
	}
	ioErr := blk.Msgf(unix.EIO, "An IO error has occurred")
	if err := f.PWrite(co, 0, h, 0); err != nil {
		return ioErr
	}
	if err := f.Truncate(co, grainOffset*512, false, blk.PreallocOff); err != nil {
		return err
	}
	gdBuf := make([]byte, gdSectors*512)
	for _, dir := range []int64{rgd, gd} {
		for i := int64(0); i < gtCount; i++ {
			le.PutUint32(gdBuf[4*i:], uint32(dir+gdSectors+i*gtSize))
		}
		if err := f.PWrite(co, dir*512, gdBuf, 0); err != nil {
			return ioErr
		}
	}
	return nil
}
