package file

import (
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
	fd, err := openFile(n.filename, flags)
	if err != nil {
		return err
	}
	unix.Close(n.fd)
	n.fd = fd
	return nil
}
