// Package fsx is gio's concurrent fsx: it generates seeded random
// sequences of overlapping aio reads, unaligned writes, zero writes and
// discards, with breakpoints (break on the write path's events), resumes,
// sleeps and drains, runs them through the real command layer (each
// command is a qemu-io command line executed on a session, so a failing
// sequence is a .gio script), and checks every read against a model of
// what the requests in flight allow (model.go). On a failure it shrinks
// the sequence by deleting lines while the failure remains and writes a
// reproducer that "gio run" replays.
package fsx

import (
	"fmt"
	"time"
)

// SeedFailure is a failing seed.
type SeedFailure struct {
	Seed int64
	Gen  *Generated
}

func (f *SeedFailure) String() string {
	if f.Gen.Result.Harness != nil {
		return fmt.Sprintf("seed %d: fsx could not follow the run: %v", f.Seed, f.Gen.Result.Harness)
	}
	return fmt.Sprintf("seed %d: %s", f.Seed, f.Gen.Result.Target())
}

// Stats sums up a search.
type Stats struct {
	Seeds    int
	Commands int
	Reads    int // reads checked against the model (aio_read, read -v, read -P)
	Elapsed  time.Duration
}

// Search runs n seeds from cfg.Seed on and returns the first that fails
// (a model violation or a run fsx cannot follow), with statistics.
// progress, if not nil, is called after every seed.
func (e Env) Search(cfg Config, n int, progress func(done int)) (*SeedFailure, Stats) {
	start := time.Now()
	var st Stats
	for i := 0; i < n; i++ {
		c := cfg
		c.Seed = cfg.Seed + int64(i)
		g := e.Generate(c)
		st.Seeds++
		st.Commands += len(g.Body)
		for _, l := range g.Body {
			if w := parseWords(l); w.name == "aio_read" || w.name == "read" {
				st.Reads++
			}
		}
		if progress != nil {
			progress(i + 1)
		}
		if g.Result.Harness != nil || len(g.Result.Failures) > 0 {
			st.Elapsed = time.Since(start)
			return &SeedFailure{Seed: c.Seed, Gen: g}, st
		}
	}
	st.Elapsed = time.Since(start)
	return nil, st
}
