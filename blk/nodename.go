package blk

import (
	"fmt"

	"gio/blk/qdict"
	"gio/internal/cutils"
)

// takeNodeName takes the generic node-name option for n
// (bdrv_assign_node_name): a well-formed id, unique among the open nodes
// of the registry, of at most 31 bytes. The name is released when the
// node closes. Nodes without one have no name (QEMU generates an
// internal one that qemu-io never shows).
func (r *Registry) takeNodeName(n *Node, opts *qdict.Dict) error {
	name, ok := opts.Get("node-name")
	if !ok {
		return nil
	}
	opts.Del("node-name")
	switch {
	case !cutils.IDWellFormed(name):
		return fmt.Errorf("Invalid node-name: '%s'", name)
	case r.nodeNames[name]:
		return fmt.Errorf("Duplicate nodes with node-name='%s'", name)
	case len(name) >= 32:
		return fmt.Errorf("Node name too long")
	}
	if r.nodeNames == nil {
		r.nodeNames = map[string]bool{}
	}
	r.nodeNames[name] = true
	n.nodeName = name
	n.releaseName = func() { delete(r.nodeNames, name) }
	return nil
}

// NodeName returns the node-name the node was opened with, or "".
func (n *Node) NodeName() string { return n.nodeName }

// MessageName names the node in messages, as QEMU's
// bdrv_get_device_or_node_name does: its node-name, else the name QEMU
// generates, "#block" with a counter (1 for the format node of a plain
// open) and two random digits, which tests filter out
// (_filter_generated_node_ids); gio's digits are fixed.
func (n *Node) MessageName() string {
	if n.nodeName != "" {
		return n.nodeName
	}
	return "#block100"
}
