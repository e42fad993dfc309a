//go:build !race

package fsx

const raceEnabled = false
