package blk

import (
	"io"

	"golang.org/x/sys/unix"
)

// Check runs the node's consistency check (bdrv_co_check) as one
// serialising request over the whole node, so that it sees no request of
// the node half done. A node without Checker answers ENOTSUP ("This
// image format does not support checks" is the caller's message); a
// repair (fix != 0) on a read-only node answers EPERM. The problems found
// are printed to msgs (io.Discard when nil), one a line, in QEMU's words.
// The error is non-nil only when the check could not complete; res then
// holds what was found before it stopped.
func (n *Node) Check(co *Co, fix CheckMode, msgs io.Writer) (res CheckResult, err error) {
	if n.ops.check == nil {
		return res, Msgf(unix.ENOTSUP, "This image format does not support checks")
	}
	if fix != 0 && n.readOnly {
		return res, unix.EPERM
	}
	if msgs == nil {
		msgs = io.Discard
	}
	req := n.track(co, 0, 1<<62, trackTruncate)
	defer req.end()
	if err := n.makeSerialising(co, req, 1); err != nil {
		return res, err
	}
	co.markStarted(n.driver)
	err = n.ops.check.Check(co, fix, msgs, &res)
	if fix != 0 {
		n.writeGen++
	}
	return res, err
}

// Check checks the image's top node (qemu-img check checks the node it
// opened, not the nodes below it).
func (b *Backend) Check(co *Co, fix CheckMode, msgs io.Writer) (CheckResult, error) {
	return b.Root.Check(co, fix, msgs)
}
