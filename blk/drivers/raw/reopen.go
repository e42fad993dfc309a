package raw

import "gio/blk/qdict"

// PrepareReopen is raw_reopen_prepare: offset and size may change on
// reopen ("reopen -o offset=1536,size=1024"); the new window is checked
// against the file as at open, and applied by commit. The keys it knows
// are taken from opts; what is left is for the caller to refuse. It is
// the driver side of reopen -o option changes (the caller being the
// reopen command's option path).
func (n *node) PrepareReopen(opts *qdict.Dict, readOnly bool) (commit func(), err error) {
	next := *n
	if _, ok := opts.Get("offset"); ok {
		off, _, err := opts.TakeSize("offset", 0)
		if err != nil {
			return nil, err
		}
		next.offset = int64(off)
	}
	if _, ok := opts.Get("size"); ok {
		size, _, err := opts.TakeSize("size", 0)
		if err != nil {
			return nil, err
		}
		next.size, next.hasSize = int64(size), true
	}
	if err := next.applyOptions(n.loop); err != nil {
		return nil, err
	}
	return func() {
		n.offset, n.size, n.hasSize = next.offset, next.size, next.hasSize
		n.self.InvalidateLength()
	}, nil
}
