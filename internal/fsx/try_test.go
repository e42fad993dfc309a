package fsx

import (
	"testing"
	"time"
)

func TestTry(t *testing.T) {
	for _, align := range []int64{1, 512, 4096} {
		for _, ns := range []bool{false, true} {
			start := time.Now()
			fails := 0
			for seed := int64(0); seed < 50; seed++ {
				g := testEnv.Generate(Config{Seed: seed, Align: align, NoSerialise: ns})
				if g.Result.Harness != nil {
					t.Errorf("align %d seed %d: harness: %v", align, seed, g.Result.Harness)
					continue
				}
				if len(g.Result.Failures) > 0 {
					fails++
					if !ns {
						t.Errorf("align %d seed %d: %v", align, seed, g.Result.Failures[0])
					}
				}
			}
			t.Logf("align %d noserialise %v: %d/50 failed, %v", align, ns, fails, time.Since(start))
		}
	}
}
