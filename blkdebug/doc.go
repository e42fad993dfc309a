// Package blkdebug is QEMU's blkdebug filter driver (block/blkdebug.c of
// QEMU 7.2) for gio's block layer: a node that passes every request
// through to its "image" child unchanged, while it
//
//   - checks the guarantees the generic layer gives a driver (offsets and
//     lengths aligned, no request longer than max-transfer, zero writes
//     and discards cut at their alignments): a broken guarantee fails the
//     request with EIO where QEMU would abort;
//   - publishes limits of its own (align, max-transfer, ...), so that a
//     plain file behaves like a device with 4 KiB sectors and the generic
//     layer's padding, read-modify-write and serialisation come into play;
//   - keeps rules per debug event: inject-error rules arm an errno for the
//     requests that follow, set-state rules drive a small state machine,
//     and break (Suspend rules) stops a request by tag until resume.
//
// # Getting a node
//
// The filename "blkdebug:CONFIG:IMAGE" reads rules from the file CONFIG
// (empty for none: "blkdebug::IMAGE"); otherwise the options say it all:
//
//	driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.align=4k
//
// # Options
//
//	image                     the child, required
//	config                    a rules file (format below)
//	align                     request alignment: a power of two below 2^31
//	max-transfer              a multiple of the alignment, below 2^31
//	opt-write-zero            zero-write alignment: a multiple of align
//	max-write-zero            a multiple of max(opt-write-zero, align)
//	opt-discard               discard alignment: a multiple of align
//	max-discard               a multiple of max(opt-discard, align)
//	inject-error.N.KEY        an inject-error rule (N may be left out for
//	set-state.N.KEY           a single rule) with the keys of the file
//	take-child-perms.N        permission names (consistent-read, write,
//	unshare-child-perms.N     write-unchanged, resize), checked only
//	serialise                 gio only, see below
//	rmw-reread                gio only, see below
//
// Errors carry qemu-io's texts ("Cannot meet constraints with align 3",
// "Missing event name for rule", ...). A writable node whose image length
// is not a multiple of align fails to open, as QEMU's permission check
// does: "Cannot get 'write' permission without 'resize': Image size is not
// a multiple of request alignment".
//
// # Config file
//
//	[inject-error]
//	event = "read_aio"       # required; one of the 48 event names
//	errno = "28"             # default 5 (EIO); 0 never fails; < 0 "succeeds"
//	sector = "8"             # default: any offset
//	state = "2"              # default 0: any state
//	once = "on"              # delete the rule after one injection
//	immediately = "on"       # fail without yielding first
//	iotype = "write"         # default: all types but block-status
//
//	[set-state]
//	event = "write_aio"
//	state = "1"
//	new_state = "2"
//
// The I/O types are read, write, write-zeroes, discard, flush and
// block-status. Text after a closing quote is ignored, which makes the
// comments above legal; a line starting with white space is never a
// comment. ParseConfig reads this format with QEMU's quirks, and
// Rule.String prints it back in a canonical form.
//
// # Semantics
//
// The state starts at 1. When an event fires, its rules are looked at
// newest first; those whose state matches the current one (or is 0) act:
// the first inject-error rule replaces the set of active rules and each
// matching one joins it, set-state rules pick the next state (applied
// after the walk), and break rules suspend the request, once per rule.
// The none event fires once at open, so that rules on it are active from
// the start. Every request then asks the active rules, most recent first:
// the first whose I/O type and sector match fails it.
//
// # Output
//
// Nodes print "blkdebug: Suspended request 'TAG'" and "blkdebug: Resuming
// request 'TAG'" to the writer given to NewDriver; Driver prints to
// os.Stdout.
//
// # gio's additions and deviations
//
// The option serialise=off (default on) turns off the serialisation of
// overlapping requests on the node, so that two unaligned writes into the
// same block can both read-modify-write it and one update is lost: the bug
// that serialisation exists to prevent, made visible.
//
// The option rmw-reread=off (default on) is a mutation for gio explore:
// an unaligned write reads its padding before it waits for overlapping
// requests and writes that padding back after the wait, stale (the bug
// QEMU's RMW series fixed).
//
// QEMU 7.2 dies of SIGFPE when a discard is not aligned to align and
// opt-discard is unset; gio skips the unaligned pieces, as QEMU does when
// opt-discard is set.
package blkdebug
