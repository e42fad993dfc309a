package blk

import "strings"

// Perm is a set of block permissions, QEMU's BLK_PERM_* bits in QEMU
// 7.2's order (include/block/block-common.h). A node's user takes some
// permissions and shares others; the file driver turns both into byte
// range locks on the image file so that other processes (QEMU, qemu-img,
// another gio) see them.
type Perm uint64

// The permissions of QEMU 7.2.
const (
	// PermConsistentRead: reads return what was written (no other
	// writer changes data underneath without the user knowing).
	PermConsistentRead Perm = 1 << iota
	// PermWrite: the user changes data.
	PermWrite
	// PermWriteUnchanged: the user writes data that does not change
	// what a reader sees (copy-on-read, block jobs).
	PermWriteUnchanged
	// PermResize: the user changes the image length.
	PermResize

	// PermAll is every permission (BLK_PERM_ALL).
	PermAll = PermConsistentRead | PermWrite | PermWriteUnchanged | PermResize
)

// permNames are bdrv_perm_names' words, in bit order.
var permNames = []string{"consistent read", "write", "write unchanged", "resize"}

// Names lists the permissions the way QEMU's messages do
// (bdrv_perm_names): "consistent read, write".
func (p Perm) Names() string {
	var s []string
	for i, n := range permNames {
		if p&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	return strings.Join(s, ", ")
}

// String is Names, or "0" for the empty set.
func (p Perm) String() string {
	if p == 0 {
		return "0"
	}
	return p.Names()
}

// PermBits is the number of permission bits (the lock bytes per base).
const PermBits = 4

// TakePerm makes every data node of the graph that keeps permissions
// hold p (backing files keep what they have: see dataNodes). qemu-io
// grows its image's permissions when a command needs more than the open
// gave (write commands need write, truncate write and resize, and a
// write after "reopen -w" takes write again); gio's command layer calls
// this before such commands.
func (b *Backend) TakePerm(p Perm) error {
	err := eachDataNode(b.Root, func(n *Node) error {
		if n.ops.perm != nil {
			return n.ops.perm.TakePerm(p)
		}
		return nil
	})
	if err == nil && p&PermWrite != 0 {
		b.userWrite = true
	}
	return err
}
