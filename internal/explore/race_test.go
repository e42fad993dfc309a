//go:build race

package explore

// raceOn: the race detector slows crash mode down tenfold; its tests
// take a shorter workload.
const raceOn = true
