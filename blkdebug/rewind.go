package blkdebug

import (
	"errors"
	"slices"

	"gio/blk"
)

var _ blk.Rewinder = (*node)(nil)

// Mark implements blk.Rewinder: the state machine's state, the rules
// (break adds one, a breakpoint that fires or remove_break takes one
// away; a rule itself never changes) and the active inject-error rules.
// Nothing may be suspended or scheduled then or at a rewind.
func (b *node) Mark() (func() error, error) {
	if len(b.suspended) > 0 || len(b.scheduled) > 0 {
		return nil, errors.New("requests suspended")
	}
	state, active := b.state, slices.Clone(b.active)
	rules := make([][]*rule, len(b.rules))
	for i, l := range b.rules {
		rules[i] = slices.Clone(l)
	}
	return func() error {
		if len(b.suspended) > 0 || len(b.scheduled) > 0 {
			return errors.New("requests suspended")
		}
		b.state = state
		b.active = append(b.active[:0], active...)
		for i, l := range rules {
			b.rules[i] = append(b.rules[i][:0], l...)
		}
		return nil
	}, nil
}
