package commands

import (
	"strings"

	"gio/blk"
	"gio/blk/qdict"
)

// reopenGeneric handles the generic block options of a reopen -o before
// the rest (qemu-io's reopen_f and bdrv_reopen_prepare): -c may not come
// with cache.direct or cache.no-flush; read-only, cache.direct,
// cache.no-flush and auto-read-only must be booleans; and node-name and
// driver, of the node or of a child ("file.node-name"), may be given
// when they do not change, and are then dropped from ropts. cache.*
// options equal to the current mode are dropped too; a change of
// cache.direct or cache.no-flush (of the node, inherited by its children)
// is taken out and returned in cache for the caller to apply. What is
// left (a change) is refused by the caller. It reports success, having
// printed the error otherwise.
func reopenGeneric(s *Session, ropts *qdict.Dict, cacheGiven bool, cache map[string]bool) bool {
	if cacheGiven && (ropts.Has("cache.direct") || ropts.Has("cache.no-flush")) {
		s.errorReport("Cannot set both -c and the cache options")
		return false
	}
	flags := s.Img.Flags()
	current := map[string]bool{"cache.direct": flags.Direct, "cache.no-flush": flags.NoFlush}
	for _, k := range []string{"read-only", "cache.direct", "cache.no-flush", "auto-read-only"} {
		v, ok := ropts.Get(k)
		if !ok {
			continue
		}
		b, err := qdict.ParseBool(k, v)
		if err != nil {
			s.errorReport("%s", errText(err))
			return false
		}
		if cur, ok := current[k]; ok && b == cur || k == "auto-read-only" {
			ropts.Del(k)
		} else if ok {
			cache[k] = b
			ropts.Del(k)
		}
	}
	for _, k := range ropts.Keys() {
		n, rest := s.Img.Root, k
	descend:
		for {
			for _, c := range n.Children() {
				if r, ok := strings.CutPrefix(rest, c.Name+"."); ok {
					n, rest = c.Node, r
					continue descend
				}
			}
			break
		}
		v, _ := ropts.Get(k)
		if rest == "node-name" && v == n.NodeName() || rest == "driver" && v == n.Driver().Name {
			ropts.Del(k)
			continue
		}
		if rest == "file" || rest == "backing" {
			// bdrv_reopen_parse_file_or_backing: a node reference,
			// looked up by node name; the current child is no change.
			if c := childNamed(n, rest); c != nil && v != "" && c.Node.NodeName() == v {
				ropts.Del(k)
				continue
			}
			if !graphHasNode(s.Img.Root, v) {
				s.errorReport("Cannot find device='' nor node-name='%s'", v)
				return false
			}
			continue
		}
		// bdrv_reopen_prepare refuses only options whose value changes:
		// one given again as the node was opened with it is no change.
		if old, ok := n.Options().Get(rest); ok && old == v {
			ropts.Del(k)
		}
	}
	return true
}

// childNamed returns n's child called name, or nil.
func childNamed(n *blk.Node, name string) *blk.Child {
	for _, c := range n.Children() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// graphHasNode says whether a node of the graph below root (root too) has
// the node name name.
func graphHasNode(root *blk.Node, name string) bool {
	if name != "" && root.NodeName() == name {
		return true
	}
	for _, c := range root.Children() {
		if graphHasNode(c.Node, name) {
			return true
		}
	}
	return false
}
