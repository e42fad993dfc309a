package file

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// Reopen switches the descriptor between read-only and read-write
// (raw_reopen_prepare): a new descriptor is opened first, so a failure
// leaves the node usable as it was.
func (n *node) Reopen(readOnly bool) error {
	flags := unix.O_CLOEXEC | unix.O_RDWR
	if readOnly {
		flags = unix.O_CLOEXEC | unix.O_RDONLY
	}
	if n.direct {
		flags |= unix.O_DIRECT
	}
	// The locks change with the mode (raw_check_perm, raw_set_perm):
	// the old descriptor locks for both modes and checks for conflicts
	// first, the new one gets a copy of the locks before the old one
	// closes, so that the image is never unlocked in between. As with
	// qemu-io, "reopen -r" drops the write permission (and what a
	// writable format parent held) and "reopen -w" takes back only the
	// format parent's: the next write command takes write (TakePerm).
	perm, shared := n.locks.perm, n.locks.shared
	if readOnly {
		perm &^= blk.PermWrite | n.locks.writable
	} else {
		// A writable format takes write and resize on its file
		// again (locks.writable); a plain user of the image takes
		// write only at its next write, as qemu-io's BlockBackend.
		perm |= n.locks.writable
	}
	if err := n.lockPrepare(perm, shared); err != nil {
		return err
	}
	fd, err := openFile(n.filename, flags)
	if err == nil && n.locks.use {
		if err = applyLockBytes(fd, nil, perm, ^shared, false); err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		n.lockAbort()
		return err
	}
	unix.Close(n.fd)
	n.fd = fd
	n.lockCommit(perm, shared)
	return nil
}
