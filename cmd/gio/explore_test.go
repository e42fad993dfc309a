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
	exploreGolden(t, "explore-scripts.golden", "TestExploreScripts", func(name string, sc *explore.Script) string {
		sum := exploreEnv.Explore(sc, explore.Config{MaxPreemptions: 1, MaxSchedules: 200, Jobs: 1})
		switch {
		case sum.Unsupported != "":
			return fmt.Sprintf("%s: unsupported: %s", name, sum.Unsupported)
		case sum.First != nil:
			return fmt.Sprintf("%s: %d runs, %d pruned, %d outcomes; fails, schedule %s: %s", name, sum.Runs, sum.Pruned, sum.States, sum.First.Schedule, sum.First.What)
		}
		return fmt.Sprintf("%s: %d runs, %d pruned, %d outcomes, no failure%s", name, sum.Runs, sum.Pruned, sum.States, strings.TrimSuffix(" ("+sum.Stopped+")", " ()"))
	})
}

// TestExploreCrashScripts is the golden test of "gio explore --crash"
// over scripts/ (testdata/explore-crash.golden; -update rewrites it):
// the disk changes and flushes each run logs, the crash states, the
// distinct images, those with leaks, and the failures.
func TestExploreCrashScripts(t *testing.T) {
	exploreGolden(t, "explore-crash.golden", "TestExploreCrashScripts", func(name string, sc *explore.Script) string {
		sum := exploreEnv.Crash(sc, explore.Config{Crash: true, Torn: true}, nil)
		if sum.Unsupported != "" {
			return fmt.Sprintf("%s: unsupported: %s", name, sum.Unsupported)
		}
		return fmt.Sprintf("%s: %d changes, %d flushes, %d crash states, %d distinct, %d with leaks, %d failures",
			name, sum.Ops, sum.Flushes, sum.States, sum.Distinct, sum.Leaky, sum.Failures)
	})
}

// exploreGolden checks the line each script of scripts/ gets against
// testdata/golden (scratch images on a tmpfs when there is one).
func exploreGolden(t *testing.T, golden, test string, line func(name string, sc *explore.Script) string) {
	if testing.Short() {
		t.Skip("explores every script")
	}
	// t.Setenv puts TMPDIR back for the tests that follow.
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
		if sc, err := explore.ParseScript(string(src)); err != nil {
			fmt.Fprintf(&b, "%s: %v\n", name, err)
		} else {
			b.WriteString(line(name, sc) + "\n")
		}
	}
	golden = filepath.Join("testdata", golden)
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update)", err, test)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("%s over scripts/ differs from %s (a new script: go test -run %s -update):\n%s", test, golden, test, diffLines(string(want), got))
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
