package file

import (
	"strings"

	"gio/blk"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// kind is which of file-posix's drivers a node belongs to: they share
// everything but the file type they accept, their open flags, their
// probes and a few answers.
type kind int

const (
	kindFile kind = iota
	kindDevice
	kindCDROM
)

func (k kind) name() string {
	switch k {
	case kindDevice:
		return "host_device"
	case kindCDROM:
		return "host_cdrom"
	}
	return "file"
}

// openFlags are the extra open(2) flags: a CD-ROM opens with O_NONBLOCK
// so that an empty drive does not fail the open (cdrom_open).
func (k kind) openFlags() int {
	if k == kindCDROM {
		return unix.O_NONBLOCK
	}
	return 0
}

// checkType is raw_open_common's check of the file type.
func (k kind) checkType(filename string, mode uint32) error {
	t := mode & unix.S_IFMT
	if k == kindFile {
		if t != unix.S_IFREG {
			return blk.Msgf(unix.EINVAL, "'file' driver requires '%s' to be a regular file", filename)
		}
		return nil
	}
	if t != unix.S_IFBLK && t != unix.S_IFCHR {
		return blk.Msgf(unix.EINVAL, "'%s' driver requires '%s' to be either a character or block device", k.name(), filename)
	}
	return nil
}

// HostDevice is file-posix's "host_device" driver: a block or character
// device, chosen for a plain file name that names one (hdev_probe_device)
// or by a "host_device:" prefix.
var HostDevice = &blk.Driver{
	Name:          "host_device",
	Protocol:      "host_device",
	ParseFilename: stripPrefix("host_device:"),
	ProbeDevice:   probeHostDevice,
	Open:          func(a *blk.OpenArgs) (blk.Impl, error) { return openPosix(a, kindDevice) },
	Options:       Driver.Options,
}

// HostCDROM is file-posix's "host_cdrom" driver. Its probe (an ioctl
// asking a block device for its drive status) is not reproduced: it only
// picks real CD-ROM drives, which "host_cdrom:" or driver=host_cdrom
// still reach.
var HostCDROM = &blk.Driver{
	Name:          "host_cdrom",
	Protocol:      "host_cdrom",
	ParseFilename: stripPrefix("host_cdrom:"),
	Open:          func(a *blk.OpenArgs) (blk.Impl, error) { return openPosix(a, kindCDROM) },
	Options:       Driver.Options,
}

// stripPrefix is bdrv_parse_filename_strip_prefix: an explicit prefix
// is dropped, the rest is the file name.
func stripPrefix(prefix string) func(string, *qdict.Dict) error {
	return func(filename string, opts *qdict.Dict) error {
		opts.Set("filename", strings.TrimPrefix(filename, prefix))
		return nil
	}
}

// probeHostDevice is hdev_probe_device: /dev/cdrom* a little (for a
// CD-ROM driver to win), any block or character device fully.
func probeHostDevice(filename string) int {
	if strings.HasPrefix(filename, "/dev/cdrom") {
		return 50
	}
	var st unix.Stat_t
	if unix.Stat(filename, &st) == nil {
		if t := st.Mode & unix.S_IFMT; t == unix.S_IFBLK || t == unix.S_IFCHR {
			return 100
		}
	}
	return 0
}

// cdromDriveStatus and cdsDiscOK are linux/cdrom.h's CDROM_DRIVE_STATUS
// ioctl and its "disc present" answer.
const (
	cdromDriveStatus = 0x5326
	cdsDiscOK        = 4
)

// noMedium is what a CD-ROM drive without a disc says
// (cdrom_is_inserted); blk checks it where QEMU's block backend checks
// blk_is_available. Other nodes always have their medium.
func (n *node) noMedium() bool {
	if n.kind != kindCDROM {
		return false
	}
	st, err := unix.IoctlRetInt(n.fd, cdromDriveStatus)
	return err != nil || st != cdsDiscOK
}

// Inserted implements blk.MediumReporter.
func (n *node) Inserted() bool { return !n.noMedium() }

// deviceLength is raw_getlength for a device: the end lseek finds.
func (n *node) deviceLength() (int64, error) {
	end, err := unix.Seek(n.fd, 0, unix.SEEK_END)
	if err != nil {
		return 0, errnoOf(err)
	}
	return end, nil
}

// truncateDevice is raw_co_truncate for a device: it cannot change size,
// so only a size it already has (or, without exact, less) is accepted.
func (n *node) truncateDevice(size int64, exact bool, prealloc blk.Prealloc) error {
	if prealloc != blk.PreallocOff {
		return blk.Msgf(unix.ENOTSUP, "Preallocation mode '%s' unsupported for this non-regular file", prealloc)
	}
	cur, err := n.deviceLength()
	if err != nil {
		return err
	}
	switch {
	case size != cur && exact:
		return blk.Msgf(unix.ENOTSUP, "Cannot resize device files")
	case size > cur:
		return blk.Msgf(unix.EINVAL, "Cannot grow device files")
	}
	return nil
}
