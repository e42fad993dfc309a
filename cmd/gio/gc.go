package main

import (
	"os"
	"runtime/debug"
)

// tuneGC makes the collector run less often than Go's default (GOGC=100)
// unless the user set GOGC. gio's heap is mostly I/O buffers that live
// for one command, while every parked request is a goroutine stack the
// collector must scan: with 20000 aio requests in flight, stack scanning
// at GOGC=100 took half of gio's CPU time. At 400 the heap may grow to
// five times the live data between collections, which for gio is a few
// MiB in the common case (streamed 1 GiB requests stay well under 64 MiB).
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}
