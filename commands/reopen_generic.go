package commands

import (
	"strings"

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
		}
	}
	return true
}
