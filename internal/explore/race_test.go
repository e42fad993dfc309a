//go:build race

package explore

// raceOn: the race detector makes every run about ten times slower; the
// heaviest tests (crash mode, the mutation searches) take lighter
// workloads and bounds under it.
const raceOn = true
