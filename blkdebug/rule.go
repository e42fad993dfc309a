package blkdebug

import (
	"fmt"
	"math/bits"
	"strings"

	"gio/blk"
)

// Action is what a rule does when its event fires.
type Action int

// The actions of QEMU's BlkdebugRule.
const (
	// InjectError makes the rule active: later requests whose I/O type
	// and sector match fail with its errno ([inject-error]).
	InjectError Action = iota
	// SetState moves the node's state machine to NewState once every rule
	// of the event has been looked at ([set-state]).
	SetState
	// Suspend stops the request that fired the event until it is resumed
	// by tag. Suspend rules come from the break command and are one-shot.
	Suspend
)

var actionNames = [...]string{"inject-error", "set-state", "break"}

// String returns the config-file group name of the action ("break" for
// Suspend, which has no group).
func (a Action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return fmt.Sprintf("Action(%d)", int(a))
	}
	return actionNames[a]
}

// IOType classifies the requests reaching a blkdebug node, for the iotype
// key of inject-error rules (QEMU's BlkdebugIOType).
type IOType int

// The I/O types, in QEMU's order.
const (
	IORead IOType = iota
	IOWrite
	IOWriteZeroes
	IODiscard
	IOFlush
	IOBlockStatus
	numIOTypes
)

var ioTypeNames = [numIOTypes]string{"read", "write", "write-zeroes", "discard", "flush", "block-status"}

// String returns the I/O type's QEMU name ("write-zeroes").
func (t IOType) String() string {
	if t < 0 || t >= numIOTypes {
		return fmt.Sprintf("IOType(%d)", int(t))
	}
	return ioTypeNames[t]
}

// ParseIOType looks an I/O type up by its QEMU name.
func ParseIOType(name string) (IOType, bool) {
	for i, n := range ioTypeNames {
		if n == name {
			return IOType(i), true
		}
	}
	return 0, false
}

// IOTypeMask is a set of I/O types, one bit per IOType.
type IOTypeMask uint64

// DefaultIOTypes is the mask of an inject-error rule without an iotype
// key: everything but block status, which would otherwise make map and
// alloc fail under every read error rule.
const DefaultIOTypes IOTypeMask = 1<<IORead | 1<<IOWrite | 1<<IOWriteZeroes | 1<<IODiscard | 1<<IOFlush

// MaskOf returns the mask holding only t.
func MaskOf(t IOType) IOTypeMask { return 1 << t }

// Has reports whether t is in the mask.
func (m IOTypeMask) Has(t IOType) bool { return m&(1<<t) != 0 }

// String lists the types in the mask, separated by "|".
func (m IOTypeMask) String() string {
	var s []string
	for t := IOType(0); t < numIOTypes; t++ {
		if m.Has(t) {
			s = append(s, t.String())
		}
	}
	if rest := m &^ (1<<numIOTypes - 1); rest != 0 {
		s = append(s, fmt.Sprintf("%#x", uint64(rest)))
	}
	if len(s) == 0 {
		return "0"
	}
	return strings.Join(s, "|")
}

// AnySector is the Sector of a rule that matches requests anywhere.
const AnySector = -1

// Rule is one blkdebug rule: plain data, the same whether it came from a
// config file, from inject-error/set-state options or from break. Which
// fields matter depends on Action.
//
// The integer fields have C's types and wrap as QEMU's do: State, NewState
// and Errno are C ints (a config value of 4294967301 is errno 5), Sector
// is an int64 (so "-1" means AnySector, like an absent key).
type Rule struct {
	Event  blk.Event
	Action Action
	// State is the state the node must be in for the rule to fire; 0
	// means any state. A negative state never matches.
	State int
	// NewState is the state a SetState rule moves to.
	NewState int
	// Errno is what an InjectError rule injects. 0 never fails; a negative
	// value makes the request "succeed" without doing any I/O, because
	// QEMU returns -errno and its callers treat positive values as success.
	Errno int
	// Sector restricts an InjectError rule to requests (as blkdebug sees
	// them, after padding to the alignment) with offset <= Sector*512 <
	// offset+bytes; AnySector matches every request, including flushes.
	Sector int64
	// Once deletes an InjectError rule after its first injection.
	Once bool
	// Immediately fails the request without first yielding to the event
	// loop.
	Immediately bool
	// IOTypeMask says which requests an InjectError rule fails.
	IOTypeMask IOTypeMask
	// Tag names the requests a Suspend rule stops.
	Tag string
}

// NewInjectError returns an inject-error rule for ev with QEMU's defaults:
// any state, EIO, any sector, every I/O type but block status.
func NewInjectError(ev blk.Event) Rule {
	return Rule{Event: ev, Action: InjectError, Errno: 5, Sector: AnySector, IOTypeMask: DefaultIOTypes}
}

// NewSetState returns a set-state rule for ev moving from state (0 = any)
// to newState.
func NewSetState(ev blk.Event, state, newState int) Rule {
	return Rule{Event: ev, Action: SetState, State: state, NewState: newState}
}

// NewSuspend returns the rule break EVENT TAG adds.
func NewSuspend(ev blk.Event, tag string) Rule {
	return Rule{Event: ev, Action: Suspend, Tag: tag}
}

// String prints the rule in its canonical form: a config-file section
// with the keys whose values differ from the defaults, in a fixed order,
// e.g.
//
//	[inject-error]
//	event = "read_aio"
//	errno = "28"
//	once = "on"
//
// ParseConfig reads it back to the same Rule. Suspend rules have no
// config-file form (QEMU creates them only with break); they print as the
// command that makes them, "break EVENT TAG".
func (r Rule) String() string {
	var b strings.Builder
	kv := func(k, v string) { fmt.Fprintf(&b, "%s = \"%s\"\n", k, v) }
	switch r.Action {
	case InjectError:
		b.WriteString("[inject-error]\n")
		kv("event", r.Event.String())
		if r.State != 0 {
			kv("state", fmt.Sprint(r.State))
		}
		if r.Errno != 5 {
			kv("errno", fmt.Sprint(r.Errno))
		}
		if r.Sector != AnySector {
			kv("sector", fmt.Sprint(r.Sector))
		}
		if r.Once {
			kv("once", "on")
		}
		if r.Immediately {
			kv("immediately", "on")
		}
		if r.IOTypeMask != DefaultIOTypes {
			// A single type is what the syntax can say; anything else
			// prints as the mask's String, which no parser accepts.
			name := r.IOTypeMask.String()
			if bits.OnesCount64(uint64(r.IOTypeMask)) == 1 {
				name = IOType(bits.TrailingZeros64(uint64(r.IOTypeMask))).String()
			}
			kv("iotype", name)
		}
	case SetState:
		b.WriteString("[set-state]\n")
		kv("event", r.Event.String())
		if r.State != 0 {
			kv("state", fmt.Sprint(r.State))
		}
		if r.NewState != 0 {
			kv("new_state", fmt.Sprint(r.NewState))
		}
	case Suspend:
		return fmt.Sprintf("break %s %s", r.Event, r.Tag)
	default:
		return fmt.Sprintf("# %v rule for %s", r.Action, r.Event)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// FormatConfig prints rules as a config file, one section per rule in the
// given order, separated by blank lines.
func FormatConfig(rules []Rule) string {
	var b strings.Builder
	for i, r := range rules {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(r.String())
		b.WriteString("\n")
	}
	return b.String()
}
