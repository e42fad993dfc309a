//go:build race

package explore

// raceEnabled: the race detector makes every schedule run ~10 times
// slower; the heaviest tests take lighter bounds under it.
const raceEnabled = true
