package file

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// Reopen switches the descriptor between read-only and read-write
// (raw_reopen_prepare): a new descriptor is opened first, so a failure
// leaves the node usable as it was.
func (n *node) Reopen(readOnly bool) error { return n.reopen(readOnly, n.direct) }

// ReopenDirect switches O_DIRECT (a reopen changing cache.direct): the
// new descriptor's alignment is probed before it replaces the old one
// (raw_check_perm), and blk refreshes the limits afterwards.
func (n *node) ReopenDirect(direct bool) error {
	if direct == n.direct {
		return nil
	}
	return n.reopen(n.self != nil && n.self.ReadOnly(), direct)
}

// reopen replaces the descriptor by one opened read-only or not, with
// O_DIRECT or not.
func (n *node) reopen(readOnly, direct bool) error {
	if err := n.dropShadow(); err != nil {
		return err
	}
	flags := unix.O_CLOEXEC | unix.O_RDWR
	if readOnly {
		flags = unix.O_CLOEXEC | unix.O_RDONLY
	}
	if direct {
		flags |= unix.O_DIRECT
	}
	flags |= n.kind.openFlags()
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
	reqAlign, memAlign := int64(1), int64(1)
	if err == nil && direct {
		if reqAlign, memAlign, err = probeAlignment(fd); err != nil {
			unix.Close(fd)
		}
	}
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
	n.direct, n.reqAlign, n.memAlign = direct, reqAlign, memAlign
	n.lockCommit(perm, shared)
	return nil
}
