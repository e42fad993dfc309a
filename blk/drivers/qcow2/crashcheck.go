package qcow2

import "gio/blk"

// ConsistencyCheck counts what "qemu-img check" reports of the refcounts
// (corruptions, leaks, check errors; OFLAG_COPIED included), repairing
// nothing, and prints QEMU's messages to the node's stderr. gio explore
// --crash runs it on every crash image it builds: an image must be
// consistent after any power cut, leaks aside. It takes the qcow2 lock;
// the caller runs it in a request of its own.
func (s *state) ConsistencyCheck(co *blk.Co) (corruptions, leaks, checkErrors int, err error) {
	var res checkResult
	s.mu.lock(co)
	err = s.checkLocked(co, &res, 0)
	s.mu.unlock()
	return res.corruptions, res.leaks, res.checkErrors, err
}
