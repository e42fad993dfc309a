package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfile honours GIO_CPUPROFILE and GIO_MEMPROFILE: file names to
// write a CPU profile and a heap (allocation) profile to, for the
// performance work in bench/. It returns the function that finishes the
// profiles; without either variable both cost nothing.
func startProfile() func() {
	cpu := os.Getenv("GIO_CPUPROFILE")
	mem := os.Getenv("GIO_MEMPROFILE")
	if cpu == "" && mem == "" {
		return func() {}
	}
	var f *os.File
	if cpu != "" {
		var err error
		if f, err = os.Create(cpu); err != nil {
			fmt.Fprintf(os.Stderr, "gio: %v\n", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "gio: %v\n", err)
			f.Close()
			f = nil
		}
	}
	if mem != "" {
		runtime.MemProfileRate = 4096
	}
	return func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		if mem != "" {
			if mf, err := os.Create(mem); err == nil {
				pprof.Lookup("allocs").WriteTo(mf, 0)
				mf.Close()
			}
		}
	}
}
