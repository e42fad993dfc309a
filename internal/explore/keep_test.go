package explore

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestKeptSessions: a search on kept sessions runs the same schedules
// and reports the same summary as one that makes a session per run, for
// the scripts in scripts/, the tests' scripts and the mutations' seeds
// (on and off), exhaustive, with -j 2 and random.
func TestKeptSessions(t *testing.T) {
	scripts := map[string]string{"three": three, "threeApart": threeApart, "mixed": mixed, "racyReads": racyReads}
	for _, m := range mutations {
		scripts[m.name+" on"] = fmt.Sprintf(m.seed, m.opt)
		scripts[m.name+" off"] = fmt.Sprintf(m.seed, "")
	}
	files, _ := filepath.Glob("../../scripts/*.gio")
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		scripts[filepath.Base(f)] = string(src)
	}
	configs := []Config{{MaxPreemptions: 2, MaxSchedules: 300}, {MaxPreemptions: 1, MaxSchedules: 200, Jobs: 2},
		{Random: true, MaxSchedules: 30, Seed: 7, Depth: 2}}
	if raceOn || testing.Short() {
		configs = []Config{{MaxPreemptions: 1, MaxSchedules: 60, Jobs: 2}}
	}
	kept := 0
	for name, src := range scripts {
		sc, err := ParseScript(src)
		if err != nil {
			continue
		}
		if canKeep(sc) && (&keeper{env: testEnv, sc: sc}).make() != nil {
			kept++
		}
		for _, cfg := range configs {
			fresh := cfg
			fresh.fresh = true
			s1, g1 := collectSchedules(t, sc, fresh)
			s2, g2 := collectSchedules(t, sc, cfg)
			s1.Elapsed, s2.Elapsed = 0, 0
			if cfg.Jobs > 1 && (s1.First != nil || s1.Stopped != "") {
				// Which schedules the other job ran past the
				// failure or the bound, before it noticed, depends
				// on timing; they are not counted, and the summary
				// does not depend on it.
				g1, g2 = nil, nil
			}
			if !reflect.DeepEqual(s1, s2) || !reflect.DeepEqual(g1, g2) {
				t.Errorf("%s, %+v: new sessions: %s (first %+v); kept: %s (first %+v); same schedules: %v",
					name, cfg, s1, s1.First, s2, s2.First, reflect.DeepEqual(g1, g2))
			}
		}
	}
	// Most of them are raw scripts whose sessions are kept: the
	// comparison compares something.
	if kept < len(scripts)/2 {
		t.Errorf("sessions kept for %d scripts of %d", kept, len(scripts))
	}
	t.Logf("sessions kept for %d scripts of %d", kept, len(scripts))
}
