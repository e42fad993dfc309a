package vmdk

import (
	"fmt"
	"io"

	"gio/blk"

	"golang.org/x/sys/unix"
)

var _ blk.Checker = (*state)(nil)

// Check is vmdk_co_check: it walks the disk a grain at a time (a flat
// extent in one step) and stops at the first grain that cannot be
// looked up or lies at or past the end of its extent file. QEMU counts
// that one corruption but also fails the check with an errno (so
// qemu-img check prints "Check failed" instead of its report, exit 1):
// gio returns the same errno, res holding the corruption. QEMU has no
// repair for vmdk: a check with fix fails with ENOTSUP, which qemu-img
// reports as a format without checks.
func (s *state) Check(co *blk.Co, fix blk.CheckMode, msgs io.Writer, res *blk.CheckResult) error {
	if fix != 0 {
		return unix.ENOTSUP
	}
	total := s.size / 512
	var e *extent
	for sector := int64(0); sector < total; sector += e.clusterSectors {
		if e = s.findExtent(sector * 512); e == nil {
			fmt.Fprintf(msgs, "ERROR: could not find extent for sector %d\n", sector)
			res.Corruptions++
			return unix.EINVAL
		}
		r, coff, err := e.clusterOffset(co, sector*512, nil, false, 0, 0)
		if err != nil {
			// QEMU returns VMDK_ERROR (-1) as the errno.
			fmt.Fprintf(msgs, "ERROR: could not get cluster_offset for sector %d\n", sector)
			res.Corruptions++
			return unix.EPERM
		}
		if r != grainOK {
			continue
		}
		flen, err := e.file.Node.Length(co)
		if err != nil {
			fmt.Fprintf(msgs, "ERROR: could not get extent file length for sector %d\n", sector)
			res.Corruptions++
			return err
		}
		if uint64(coff) >= uint64(flen) {
			fmt.Fprintf(msgs, "ERROR: cluster offset for sector %d points after EOF\n", sector)
			res.Corruptions++
			return unix.EINVAL
		}
	}
	return nil
}
