package explore

import "runtime/debug"

// gcPercent is the collector's target while a search runs. Every run
// makes a session, an image and its requests and keeps almost nothing,
// so the heap stays small and the default target (100) collects many
// times a second; a larger one takes a fifth of the CPU time off a
// search for a few MiB of heap (BenchmarkSchedules).
const gcPercent = 400

// raiseGC raises the collector's target for a search, unless GOGC or a
// caller already set it higher (or off), and returns what restores it.
func raiseGC() (restore func()) {
	old := debug.SetGCPercent(gcPercent)
	if old < 0 || old > gcPercent {
		debug.SetGCPercent(old)
		return func() {}
	}
	return func() { debug.SetGCPercent(old) }
}
