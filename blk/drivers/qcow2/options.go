package qcow2

import (
	"gio/blk"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// This file is qcow2_update_options_prepare and _commit: the runtime
// options (qcow2_runtime_opts) are parsed from the option dictionary
// first, with QEMU's messages for values of the wrong type, and checked
// against the image (cluster size, version) once its header is known. A
// reopen parses the new values over the current ones and applies all of
// them or none.

const (
	minL2CacheEntries       = 2        // MIN_L2_CACHE_SIZE, in tables
	minRefcountCacheEntries = 4        // MIN_REFCOUNT_CACHE_SIZE, in clusters
	defaultL2CacheMax       = 32 << 20 // DEFAULT_L2_CACHE_MAX_SIZE
	maxCacheEntries         = 1<<31 - 1
)

// runtimeOpts are the values of qcow2's runtime options. The *Set fields
// say whether an option was given, which changes how the cache sizes are
// derived.
type runtimeOpts struct {
	lazy, lazySet bool

	discard [discardMax]bool

	cacheSize, l2CacheSize, rcCacheSize, l2EntrySize uint64
	cacheSizeSet, l2CacheSet, rcCacheSet, l2EntrySet bool
	cleanInterval                                    uint64

	overlap olType
}

// olTemplates are the overlap-check templates (QCOW2_OL_CONSTANT,
// QCOW2_OL_CACHED, QCOW2_OL_ALL).
var olTemplates = map[string]olType{
	"none":     0,
	"constant": olMainHeader | olActiveL1 | olRefcountTable | olSnapshotTable,
	"cached":   olMainHeader | olActiveL1 | olRefcountTable | olSnapshotTable | olActiveL2 | olRefcountBlock | olBitmapDirectory,
	"all":      olMainHeader | olActiveL1 | olRefcountTable | olSnapshotTable | olActiveL2 | olRefcountBlock | olBitmapDirectory | olInactiveL1 | olInactiveL2,
}

// olOptionNames are the overlap-check.* booleans, bit by bit.
var olOptionNames = []struct {
	name string
	bit  olType
}{
	{"main-header", olMainHeader}, {"active-l1", olActiveL1}, {"active-l2", olActiveL2},
	{"refcount-table", olRefcountTable}, {"refcount-block", olRefcountBlock},
	{"snapshot-table", olSnapshotTable}, {"inactive-l1", olInactiveL1},
	{"inactive-l2", olInactiveL2}, {"bitmap-directory", olBitmapDirectory},
}

// defaultOpts are the values an image opened without options runs with;
// lazy refcounts follow the header once it is read.
func defaultOpts(unmap bool) runtimeOpts {
	var r runtimeOpts
	r.discard[discardAlways] = true
	r.discard[discardRequest] = unmap
	r.discard[discardSnapshot] = true
	r.overlap = olTemplates["cached"]
	return r
}

// takeRuntimeOpts removes qcow2's runtime options from o and returns cur
// with the values o gives. Values of the wrong type get QEMU's messages;
// combinations are checked later by prepareOptions, which needs the
// header. A reopen joins the new cache sizes with the old ones as
// qcow2_join_options does: a new cache-size drops the old l2 and refcount
// sizes, and without a new one the old cache-size is dropped.
func takeRuntimeOpts(o *qdict.Dict, cur runtimeOpts, reopen bool) (runtimeOpts, error) {
	r := cur
	var err error
	if reopen {
		if o.Has("cache-size") {
			r.l2CacheSet, r.rcCacheSet = false, false
		} else {
			r.cacheSizeSet = false
		}
	}
	if o.Has("lazy-refcounts") {
		if r.lazy, err = o.TakeBool("lazy-refcounts", false); err != nil {
			return r, err
		}
		r.lazySet = true
	}
	for _, d := range []struct {
		key string
		typ discardType
	}{{"pass-discard-request", discardRequest}, {"pass-discard-snapshot", discardSnapshot}, {"pass-discard-other", discardOther}} {
		if r.discard[d.typ], err = o.TakeBool(d.key, r.discard[d.typ]); err != nil {
			return r, err
		}
	}
	sizes := []struct {
		key string
		v   *uint64
		set *bool
	}{
		{"cache-size", &r.cacheSize, &r.cacheSizeSet},
		{"l2-cache-size", &r.l2CacheSize, &r.l2CacheSet},
		{"refcount-cache-size", &r.rcCacheSize, &r.rcCacheSet},
		{"l2-cache-entry-size", &r.l2EntrySize, &r.l2EntrySet},
	}
	for _, sz := range sizes {
		if !o.Has(sz.key) {
			continue
		}
		if *sz.v, _, err = o.TakeSize(sz.key, 0); err != nil {
			return r, err
		}
		*sz.set = true
	}
	if r.cleanInterval, err = o.TakeUint("cache-clean-interval", r.cleanInterval); err != nil {
		return r, err
	}
	tmpl, ok1 := o.TakeString("overlap-check")
	tmpl2, ok2 := o.TakeString("overlap-check.template")
	if ok1 && ok2 && tmpl != tmpl2 {
		return r, blk.Msgf(unix.EINVAL, "Conflicting values for qcow2 options 'overlap-check' ('%s') and 'overlap-check.template' ('%s')", tmpl, tmpl2)
	}
	if !ok1 {
		tmpl, ok1 = tmpl2, ok2
	}
	base := r.overlap
	if ok1 {
		t, known := olTemplates[tmpl]
		if !known {
			return r, blk.Msgf(unix.EINVAL, "Unsupported value '%s' for qcow2 option 'overlap-check'. Allowed are any of the following: none, constant, cached, all", tmpl)
		}
		base = t
	}
	r.overlap = 0
	for _, b := range olOptionNames {
		on, err := o.TakeBool("overlap-check."+b.name, base&b.bit != 0)
		if err != nil {
			return r, err
		}
		if on {
			r.overlap |= b.bit
		}
	}
	return r, nil
}

// cacheEntries is read_cache_sizes plus the rounding of
// qcow2_update_options_prepare: the number of L2 tables and refcount
// blocks the caches hold. gio caches whole L2 tables, so the entry size
// is validated but the L2 cache is sized in tables.
func (s *state) cacheEntries(r *runtimeOpts) (l2, rc int64, err error) {
	cs := uint64(s.clusterSize)
	minRc := uint64(minRefcountCacheEntries) * cs
	maxL2Entries := (uint64(s.size) + cs - 1) / cs
	maxL2Cache := (maxL2Entries*8 + cs - 1) / cs * cs

	l2Max := uint64(defaultL2CacheMax)
	if r.l2CacheSet {
		l2Max = r.l2CacheSize
	}
	rcSize := uint64(0)
	if r.rcCacheSet {
		rcSize = r.rcCacheSize
	}
	entry := cs
	if r.l2EntrySet {
		entry = r.l2EntrySize
	}
	l2Size := min(maxL2Cache, l2Max)
	if r.cacheSizeSet {
		combined := r.cacheSize
		switch {
		case r.l2CacheSet && r.rcCacheSet:
			return 0, 0, blk.Msgf(unix.EINVAL, "cache-size, l2-cache-size and refcount-cache-size may not be set at the same time")
		case r.l2CacheSet && l2Max > combined:
			return 0, 0, blk.Msgf(unix.EINVAL, "l2-cache-size may not exceed cache-size")
		case rcSize > combined:
			return 0, 0, blk.Msgf(unix.EINVAL, "refcount-cache-size may not exceed cache-size")
		}
		switch {
		case r.l2CacheSet:
			rcSize = combined - l2Size
		case r.rcCacheSet:
			l2Size = combined - rcSize
		case combined >= maxL2Cache+minRc:
			l2Size = maxL2Cache
			rcSize = combined - l2Size
		default:
			rcSize = min(combined, minRc)
			l2Size = combined - rcSize
		}
	}
	if l2Size < maxL2Cache && !r.l2EntrySet {
		entry = min(cs, 4096)
	}
	if entry < 1<<minClusterBits || entry > cs || entry&(entry-1) != 0 {
		return 0, 0, blk.Msgf(unix.EINVAL, "L2 cache entry size must be a power of two between %d and the cluster size (%d)", 1<<minClusterBits, cs)
	}
	// QEMU counts slices of entry bytes; gio holds whole tables, as many
	// as the same memory would give, but never fewer than QEMU's minimum.
	slices := max(l2Size/entry, minL2CacheEntries)
	if slices > maxCacheEntries {
		return 0, 0, blk.Msgf(unix.EINVAL, "L2 cache size too big")
	}
	rcBlocks := max(rcSize/cs, minRefcountCacheEntries)
	if rcBlocks > maxCacheEntries {
		return 0, 0, blk.Msgf(unix.EINVAL, "Refcount cache size too big")
	}
	l2 = max(int64(slices*entry/cs), minL2CacheEntries)
	return l2, int64(rcBlocks), nil
}

// prepareOptions checks r against the open image and returns what
// commitOptions needs to apply it (qcow2_update_options_prepare). Nothing
// changes when it fails.
func (s *state) prepareOptions(r *runtimeOpts) (l2, rc int64, err error) {
	if l2, rc, err = s.cacheEntries(r); err != nil {
		return 0, 0, err
	}
	if r.cleanInterval > 1<<32-1 {
		return 0, 0, blk.Msgf(unix.EINVAL, "Cache clean interval too big")
	}
	if !r.lazySet {
		r.lazy = s.compat&compatLazyRefcounts != 0
	}
	if r.lazy && s.version < 3 {
		return 0, 0, blk.Msgf(unix.EINVAL, "Lazy refcounts require a qcow2 image with at least qemu 1.1 compatibility level")
	}
	return l2, rc, nil
}

// commitOptions makes r the image's options, with caches of the given
// sizes (qcow2_update_options_commit). The old caches must be clean.
func (s *state) commitOptions(r runtimeOpts, l2, rc int64) {
	s.opts = r
	s.discardPassthrough = r.discard
	s.useLazyRefcounts = r.lazy
	if s.l2Cache == nil || int64(len(s.l2Cache.entries)) != l2 {
		s.l2Cache = newCache(s, l2Cache, int(l2))
	}
	if s.rcCache == nil || int64(len(s.rcCache.entries)) != rc {
		s.rcCache = newCache(s, refblockCache, int(rc))
	}
	s.l2Cache.depends = nil
	s.l2Cache.dependsOnFlush = false
	s.rcCache.depends = nil
	s.rcCache.dependsOnFlush = false
}
