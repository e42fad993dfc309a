package file

import "gio/blk"

// Shadowed reports whether a file node runs on a shadow (shadow.go).
func Shadowed(n *blk.Node) bool {
	f, ok := n.Impl().(*node)
	return ok && f.sh != nil
}
