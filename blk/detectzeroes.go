package blk

import (
	"golang.org/x/sys/unix"

	"gio/blk/qdict"
)

// DetectZeroes is a node's detect-zeroes mode: a data write whose buffer
// is all zeroes becomes a zero write (bdrv_aligned_pwritev), one that may
// unmap with "unmap".
type DetectZeroes uint8

// The detect-zeroes modes (BlockdevDetectZeroesOptions).
const (
	DetectZeroesOff DetectZeroes = iota
	DetectZeroesOn
	DetectZeroesUnmap
)

// ParseDiscard is bdrv_parse_discard_flags: "off"/"ignore" and
// "on"/"unmap"; ok is false for anything else.
func ParseDiscard(v string) (unmap, ok bool) {
	switch v {
	case "off", "ignore":
		return false, true
	case "on", "unmap":
		return true, true
	}
	return false, false
}

// takeDiscardOptions removes the generic discard and detect-zeroes
// options from opts (bdrv_open_common, bdrv_reopen_prepare): discard
// changes unmap (when given), and detect-zeroes is parsed against the
// resulting discard mode (bdrv_parse_detect_zeroes).
func takeDiscardOptions(opts *qdict.Dict, unmap bool) (bool, DetectZeroes, error) {
	if v, ok := opts.Get("discard"); ok {
		opts.Del("discard")
		u, ok := ParseDiscard(v)
		if !ok {
			return unmap, 0, Msgf(unix.EINVAL, "Invalid discard option")
		}
		unmap = u
	}
	v, ok := opts.Get("detect-zeroes")
	if !ok {
		return unmap, DetectZeroesOff, nil
	}
	opts.Del("detect-zeroes")
	var dz DetectZeroes
	switch v {
	case "off":
		dz = DetectZeroesOff
	case "on":
		dz = DetectZeroesOn
	case "unmap":
		dz = DetectZeroesUnmap
	default:
		return unmap, 0, Msgf(unix.EINVAL, "invalid parameter value: %s", v)
	}
	if dz == DetectZeroesUnmap && !unmap {
		return unmap, 0, Msgf(unix.EINVAL, "setting detect-zeroes to unmap is not allowed without setting discard operation to unmap")
	}
	return unmap, dz, nil
}

// TakeReopenDiscard is takeDiscardOptions for a reopen of n: the options
// not given keep their current values (qemu-io's reopen keeps the old
// options), and a kept detect-zeroes=unmap is checked against the new
// discard mode. The result is applied with SetDiscard once the reopen
// commits.
func (n *Node) TakeReopenDiscard(opts *qdict.Dict) (unmap bool, dz DetectZeroes, err error) {
	if !opts.Has("detect-zeroes") && n.detectZeroes != DetectZeroesOff {
		opts.Set("detect-zeroes", [...]string{"off", "on", "unmap"}[n.detectZeroes])
	}
	return takeDiscardOptions(opts, n.discardOn)
}

// SetDiscard sets the node's discard and detect-zeroes modes (a reopen).
func (n *Node) SetDiscard(unmap bool, dz DetectZeroes) {
	n.discardOn, n.detectZeroes = unmap, dz
}

// detectZeroWrite is the detect-zeroes step of bdrv_aligned_pwritev: a
// data write of zeroes to a node that has a zero path becomes a zero
// write, which may unmap in "unmap" mode.
func (n *Node) detectZeroWrite(buf []byte, flags ReqFlags) ReqFlags {
	if n.detectZeroes == DetectZeroesOff || flags&ZeroWrite != 0 || n.ops.zero == nil || !isZero(buf) {
		return flags
	}
	flags |= ZeroWrite
	if n.detectZeroes == DetectZeroesUnmap {
		flags |= MayUnmap
	}
	return flags
}
