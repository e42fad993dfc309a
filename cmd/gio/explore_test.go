package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gio/internal/explore"
)

// TestExploreScripts is the golden test of "gio explore" over scripts/:
// for each script, what a bounded search finds (runs, pruned, outcomes,
// failures and the first failing schedule), or why the model cannot
// follow it. testdata/explore-scripts.golden holds the expected lines;
// -update rewrites it.
func TestExploreScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("explores every script")
	}
	// Scratch images on a tmpfs when there is one; t.Setenv puts
	// TMPDIR back for the tests that follow.
	dir, err := os.MkdirTemp("/dev/shm", "gio-explore-test-")
	if err != nil {
		dir = t.TempDir()
	} else {
		defer os.RemoveAll(dir)
	}
	t.Setenv("TMPDIR", dir)
	files, _ := filepath.Glob("../../scripts/*.gio")
	var b strings.Builder
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		sc, err := explore.ParseScript(string(src))
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", name, err)
			continue
		}
		sum := exploreEnv.Explore(sc, explore.Config{MaxPreemptions: 1, MaxSchedules: 200, Jobs: 1})
		switch {
		case sum.Unsupported != "":
			fmt.Fprintf(&b, "%s: unsupported: %s\n", name, sum.Unsupported)
		case sum.First != nil:
			fmt.Fprintf(&b, "%s: %d runs, %d pruned, %d outcomes; fails, schedule %s: %s\n", name, sum.Runs, sum.Pruned, sum.States, sum.First.Schedule, sum.First.What)
		default:
			fmt.Fprintf(&b, "%s: %d runs, %d pruned, %d outcomes, no failure%s\n", name, sum.Runs, sum.Pruned, sum.States, strings.TrimSuffix(" ("+sum.Stopped+")", " ()"))
		}
	}
	golden := filepath.Join("testdata", "explore-scripts.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run TestExploreScripts -update)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("explore over scripts/ differs from %s:\n%s", golden, diffLines(string(want), got))
	}
}

// TestExploreCrashScripts is the golden test of "gio explore --crash"
// over scripts/ (testdata/explore-crash.golden; -update rewrites it):
// the disk changes and flushes each run logs, the crash states, the
// distinct images, those with leaks, and the failures.
func TestExploreCrashScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every script in crash mode")
	}
	dir, err := os.MkdirTemp("/dev/shm", "gio-explore-test-")
	if err != nil {
		dir = t.TempDir()
	} else {
		defer os.RemoveAll(dir)
	}
	t.Setenv("TMPDIR", dir)
	files, _ := filepath.Glob("../../scripts/*.gio")
	var b strings.Builder
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		sc, err := explore.ParseScript(string(src))
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", name, err)
			continue
		}
		sum := exploreEnv.Crash(sc, explore.Config{Crash: true, Torn: true}, nil)
		switch {
		case sum.Unsupported != "":
			fmt.Fprintf(&b, "%s: unsupported: %s\n", name, sum.Unsupported)
		default:
			fmt.Fprintf(&b, "%s: %d changes, %d flushes, %d crash states, %d distinct, %d with leaks, %d failures\n",
				name, sum.Ops, sum.Flushes, sum.States, sum.Distinct, sum.Leaky, sum.Failures)
		}
	}
	golden := filepath.Join("testdata", "explore-crash.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run TestExploreCrashScripts -update)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("explore --crash over scripts/ differs from %s (a new script: -update):\n%s", golden, diffLines(string(want), got))
	}
}

// diffLines lists the lines that differ.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			fmt.Fprintf(&out, "- %s\n+ %s\n", a, b)
		}
	}
	return out.String()
}
