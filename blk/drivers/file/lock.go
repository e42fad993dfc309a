package file

import (
	"fmt"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Image locking, as QEMU's file-posix does it, so that gio, QEMU,
// qemu-img and qemu-io see each other's claims on an image.
//
// Every permission bit i (blk.Perm) has two lock bytes in the file: byte
// lockPermBase+i is locked by every user that holds the permission, byte
// lockSharedBase+i by every user that does not share it. All locks are
// shared (read) locks, taken with open file description locks
// (F_OFD_SETLK), which belong to the descriptor rather than the process:
// two opens in one process see each other as strangers, and closing
// another descriptor of the file does not drop them (POSIX locks would).
// A user that wants permission i tests whether anybody else holds byte
// lockSharedBase+i (someone refuses to share it); a user that does not
// share i tests byte lockPermBase+i (someone holds it). The test is
// F_OFD_GETLK for a write lock, which reports any lock held through
// another descriptor.
//
// qemu-io shares every permission and takes consistent read, plus write
// when the image is writable: bytes 100 and 101 (measured with qemu-io
// 7.2 and /proc/locks). gio does the same.
const (
	lockPermBase   = 100 // RAW_LOCK_PERM_BASE
	lockSharedBase = 200 // RAW_LOCK_SHARED_BASE
)

// locks is the lock state of a node (the lock fields of QEMU's
// BDRVRawState). Touched only under the scheduler token or during open,
// reopen and close.
type locks struct {
	use bool // locking=on/auto (off: never lock or check)
	// forceShare: opened with ForceShare (-U), everything stays shared.
	forceShare bool
	// writable are the permissions the parent holds while it is
	// writable (OpenFlags.WritablePerms), dropped by reopen -r and taken
	// again by reopen -w.
	writable blk.Perm
	// perm and shared are the permissions currently granted.
	perm, shared blk.Perm
	// lockedPerm and lockedShared say which bytes of each base are
	// locked on the descriptor; lockedShared has a bit for every
	// permission NOT shared.
	lockedPerm, lockedShared blk.Perm
}

// ofdAvailable reports whether the kernel has OFD locks (QEMU's
// qemu_has_ofd_lock probes /dev/null the same way).
func ofdAvailable() bool {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	return unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk) == nil
}

// lockFcntl sets or clears a one-byte shared lock (qemu_lock_fd and
// qemu_unlock_fd with exclusive=false).
func lockFcntl(fd int, off int64, typ int16) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: off, Len: 1}
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		if err != unix.EINTR {
			return err
		}
	}
}

// lockTest reports whether another descriptor holds a lock on byte off
// (qemu_lock_fd_test with exclusive=true): EAGAIN if so.
func lockTest(fd int, off int64) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return err
	}
	if lk.Type != unix.F_UNLCK {
		return unix.EAGAIN
	}
	return nil
}

// lockError is raw_lock_error_setg_errno: "the byte is locked by someone
// else" (EAGAIN, EACCES) is the common case and is said without the
// errno text; anything else is a real failure and says which (the
// command layer appends the errno text of a non-plain error).
func lockError(err error, format string, args ...any) *blk.Error {
	e := errnoOf(err)
	msg := fmt.Sprintf(format, args...)
	return &blk.Error{Msg: msg, Errno: e, Plain: e == unix.EAGAIN || e == unix.EACCES}
}

// applyLockBytes is raw_apply_lock_bytes: lock the bytes of perm (base
// 100) and of unshared (base 200, the permissions NOT shared) that are
// not locked yet; with unlock, also release those no longer needed. With
// st nil (a fresh descriptor) every requested byte is locked (or, with
// unlock, every other byte released) without bookkeeping.
func applyLockBytes(fd int, st *locks, perm, unshared blk.Perm, unlock bool) error {
	lockedPerm, lockedShared := blk.Perm(0), blk.Perm(0)
	if st != nil {
		lockedPerm, lockedShared = st.lockedPerm, st.lockedShared
	} else if unlock {
		lockedPerm, lockedShared = blk.PermAll, blk.PermAll
	}
	for _, base := range []struct {
		off  int64
		want blk.Perm
		have blk.Perm
	}{
		{lockPermBase, perm, lockedPerm},
		{lockSharedBase, unshared, lockedShared},
	} {
		for i := 0; i < blk.PermBits; i++ {
			bit := blk.Perm(1) << i
			off := base.off + int64(i)
			switch {
			case base.want&bit != 0 && base.have&bit == 0:
				if err := lockFcntl(fd, off, unix.F_RDLCK); err != nil {
					return lockError(err, "Failed to lock byte %d", off)
				}
				st.mark(base.off, bit, true)
			case unlock && base.have&bit != 0 && base.want&bit == 0:
				if err := lockFcntl(fd, off, unix.F_UNLCK); err != nil {
					return &blk.Error{Msg: fmt.Sprintf("Failed to unlock byte %d", off), Errno: errnoOf(err)}
				}
				st.mark(base.off, bit, false)
			}
		}
	}
	return nil
}

// mark records a locked or released byte (nothing for a nil state).
func (st *locks) mark(base int64, bit blk.Perm, locked bool) {
	if st == nil {
		return
	}
	p := &st.lockedPerm
	if base == lockSharedBase {
		p = &st.lockedShared
	}
	if locked {
		*p |= bit
	} else {
		*p &^= bit
	}
}

// checkLockBytes is raw_check_lock_bytes: nobody else may refuse to share
// a permission we take, nor hold one we refuse to share.
func checkLockBytes(fd int, perm, shared blk.Perm) error {
	for i := 0; i < blk.PermBits; i++ {
		p := blk.Perm(1) << i
		if perm&p != 0 {
			if err := lockTest(fd, lockSharedBase+int64(i)); err != nil {
				return lockError(err, "Failed to get \"%s\" lock", p.Names())
			}
		}
	}
	for i := 0; i < blk.PermBits; i++ {
		p := blk.Perm(1) << i
		if shared&p == 0 {
			if err := lockTest(fd, lockPermBase+int64(i)); err != nil {
				return lockError(err, "Failed to get shared \"%s\" lock", p.Names())
			}
		}
	}
	return nil
}

// lockPrepare is raw_handle_perm_lock's RAW_PL_PREPARE: lock the union of the
// old and new needs, then test for conflicts; on a conflict the hint
// names the image, and the bytes go back to the old state.
func (n *node) lockPrepare(perm, shared blk.Perm) error {
	st := &n.locks
	if !st.use {
		return nil
	}
	if st.perm|perm == st.perm && st.shared&shared == st.shared {
		return nil // only unlocking: cannot conflict
	}
	err := applyLockBytes(n.fd, st, st.perm|perm, ^st.shared|^shared, false)
	if err == nil {
		err = checkLockBytes(n.fd, perm, shared)
		if err == nil {
			return nil
		}
		// QEMU appends the hint to every failure here; gio can only put
		// it after a plain message (the errno text of a real failure
		// must stay on the first line), which is the usual conflict.
		if be, ok := err.(*blk.Error); ok && be.Plain {
			be.Msg += fmt.Sprintf("\nIs another process using the image [%s]?", n.filename)
		}
	}
	n.lockAbort()
	return err
}

// lockAbort is RAW_PL_ABORT: back to the bytes of the granted state.
// Only unlocking, so it cannot conflict; a failure is ignored, as QEMU
// only warns.
func (n *node) lockAbort() {
	if n.locks.use {
		_ = applyLockBytes(n.fd, &n.locks, n.locks.perm, ^n.locks.shared, true)
	}
}

// lockCommit is RAW_PL_COMMIT plus raw_set_perm's bookkeeping: exactly
// the bytes of the new state stay locked.
func (n *node) lockCommit(perm, shared blk.Perm) {
	if n.locks.use {
		_ = applyLockBytes(n.fd, &n.locks, perm, ^shared, true)
	}
	n.locks.perm, n.locks.shared = perm&blk.PermAll, shared&blk.PermAll
}

// setPerm asks for perm while sharing shared (bdrv_check_perm followed
// by bdrv_set_perm on this node).
func (n *node) setPerm(perm, shared blk.Perm) error {
	if err := n.lockPrepare(perm, shared); err != nil {
		return err
	}
	n.lockCommit(perm, shared)
	return nil
}

// wantedPerms is what the node's users need: qemu-io's BlockBackend takes
// consistent read, and write when the image is writable, and shares
// everything; blkdebug's take-child-perms and unshare-child-perms adjust
// that; force-share shares everything whatever the filters say
// (bdrv_child_perm).
func wantedPerms(f blk.OpenFlags) (perm, shared blk.Perm) {
	perm = blk.PermConsistentRead | f.TakePerms
	if !f.ReadOnly {
		perm |= blk.PermWrite | f.WritablePerms
	}
	shared = blk.PermAll &^ f.UnsharePerms
	if f.ForceShare {
		shared = blk.PermAll
	}
	return perm & blk.PermAll, shared
}

// parseLocking reads the locking option (on, off, auto; auto means on
// where the kernel has OFD locks, which Linux always has).
func parseLocking(v string, given bool) (bool, error) {
	if !given || v == "auto" {
		return ofdAvailable(), nil
	}
	switch v {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, blk.Msgf(unix.EINVAL, "invalid parameter value: %s", v)
}

// TakePerm implements blk.PermTaker: qemu-io adds the permissions a
// command needs to its image's before running it (write for writes,
// write and resize for truncate), and keeps them. A read-only node
// cannot take write or resize (QEMU's bdrv_node_refresh_perm): its
// descriptor is O_RDONLY, and a lock claiming otherwise would only keep
// other processes out of an image gio never writes (a backing file).
func (n *node) TakePerm(p blk.Perm) error {
	if n.locks.perm&p == p {
		return nil
	}
	if p&(blk.PermWrite|blk.PermResize) != 0 && n.self != nil && n.self.ReadOnly() {
		return blk.Msgf(unix.EPERM, "Block node is read-only")
	}
	return n.setPerm(n.locks.perm|p, n.locks.shared)
}

// ParentPerms implements blk.PermTaker: a format found by probing
// takes what it needs on its file, and stops sharing what it cannot let
// others change under it (qcow2: write and resize). ForceShare (-U)
// keeps sharing everything.
func (n *node) ParentPerms(f blk.OpenFlags) error {
	n.locks.writable |= f.WritablePerms
	perm, shared := n.locks.perm|f.TakePerms, n.locks.shared
	if !n.locks.forceShare {
		shared &^= f.UnsharePerms
	}
	if n.self != nil && !n.self.ReadOnly() {
		perm |= f.WritablePerms
	}
	if perm == n.locks.perm && shared == n.locks.shared {
		return nil
	}
	return n.setPerm(perm, shared)
}

// needPerm is the driver's own guard for users of the block layer that
// do not go through the command layer: a write request or truncate
// takes what it needs first, with the same checks.
func (n *node) needPerm(p blk.Perm) error { return n.TakePerm(p) }
