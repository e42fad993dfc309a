package explore

import (
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
)

// crashSeed is the seed script of mutation (iii): one allocating write
// and a flush, at most 6 lines, no breakpoint, no sleep.
const crashSeed = `create -f qcow2 img 1M
open -o driver=qcow2%s img
write -P 1 0 4k
flush
`

// TestCrashMutationFound: with x-write-order=off crash mode finds a
// corrupt crash state, shrinks it to a reproducer of at most 12 lines
// that fails the same way when replayed; with the mutation off, no
// crash state of the seed fails.
func TestCrashMutationFound(t *testing.T) {
	src := fmt.Sprintf(crashSeed, ",x-write-order=off")
	if n := strings.Count(src, "\n"); n > 6 || strings.Contains(src, "break") || strings.Contains(src, "sleep") {
		t.Fatalf("seed script of %d lines with a breakpoint or sleep", n)
	}
	sc := mustParse(t, src)
	cfg := Config{Crash: true, Torn: true}
	sum := testEnv.Crash(sc, cfg, nil)
	if sum.First == nil || sum.First.Kind != "corrupt" {
		t.Fatalf("not found: %s (%+v)", sum, sum.First)
	}
	small, f := testEnv.ShrinkCrash(sc, sum.First, cfg)
	repro := CrashReproducer(small, f)
	if n := strings.Count(repro, "\n"); n > 12 {
		t.Errorf("reproducer of %d lines:\n%s", n, repro)
	}
	// Replay as "gio explore --crash --crash-state S FILE" does.
	var state string
	for _, l := range strings.Split(repro, "\n") {
		if rest, ok := strings.CutPrefix(l, "# replay: gio explore --crash --crash-state "); ok {
			state = strings.Fields(rest)[0]
		}
	}
	cs, err := ParseCrashState(state)
	if err != nil {
		t.Fatalf("reproducer without a crash state:\n%s", repro)
	}
	again := testEnv.Crash(mustParse(t, repro), cfg, &cs)
	if again.First == nil || again.First.Kind != f.Kind || again.First.What != f.What {
		t.Fatalf("replay of %s: %+v, want %+v\n%s", cs, again.First, f, repro)
	}
	t.Logf("found in %s; reproducer:\n%s", sum, repro)

	off := testEnv.Crash(mustParse(t, fmt.Sprintf(crashSeed, "")), cfg, nil)
	if off.Failures != 0 || off.Stopped != "" || off.Distinct < 2 || off.Unsupported != "" {
		t.Fatalf("mutation off: %s (%+v) %s", off, off.First, off.Unsupported)
	}
}

// TestCrashDataOracle: with flushes ignored (cache mode unsafe) the data
// a flush should have made durable is not in the crash image of a power
// cut just after it; the data oracle says so. With flushes honoured, it
// is there.
func TestCrashDataOracle(t *testing.T) {
	for _, c := range []struct{ cache, want string }{{"unsafe", "lost"}, {"writeback", ""}} {
		for _, format := range []string{"raw", "qcow2"} {
			src := fmt.Sprintf("create -f %s img 64k\nopen -t %s -o driver=%s img\nwrite -P 7 4k 4k\nflush\nwrite -P 8 4k 512\n", format, c.cache, format)
			sum := testEnv.Crash(mustParse(t, src), Config{Crash: true}, nil)
			got := ""
			if sum.First != nil {
				got = sum.First.Kind
			}
			if got != c.want || sum.Unsupported != "" {
				t.Errorf("%s %s: %s (%+v) %s", format, c.cache, sum, sum.First, sum.Unsupported)
			}
		}
	}
}

// crashWorkload is a seeded qcow2 workload of n operations: writes,
// zero writes and discards of random ranges, and flushes.
func crashWorkload(seed int64, n int, cache string) string {
	r := rand.New(rand.NewSource(seed))
	const size = 4 << 20
	lines := []string{"create -f qcow2 img 4M", "open -t " + cache + " -o driver=qcow2 img"}
	for range n {
		off := r.Int63n(size/512) * 512
		ln := []int64{512, 4096, 8192, 65536, 131072, 512 * (1 + r.Int63n(400))}[r.Intn(6)]
		ln = min(ln, size-off)
		switch x := r.Intn(10); {
		case x < 6:
			lines = append(lines, fmt.Sprintf("write -P %d %d %d", 1+r.Intn(254), off, ln))
		case x < 7:
			lines = append(lines, fmt.Sprintf("write -z %d %d", off, ln))
		case x < 8:
			lines = append(lines, fmt.Sprintf("discard %d %d", off, ln))
		default:
			lines = append(lines, "flush")
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestCrashWorkload: with correct write ordering, no crash state of a
// 200-operation qcow2 workload (testdata/crash-200.gio, which "gio
// explore --crash" runs too) is corrupt or lacks flushed data.
func TestCrashWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("minutes on a loaded machine")
	}
	src, err := os.ReadFile("testdata/crash-200.gio")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(src), crashWorkload(1, 200, "writeback")) {
		t.Fatal("testdata/crash-200.gio is not crashWorkload(1, 200, \"writeback\")")
	}
	if raceOn {
		src = []byte(crashWorkload(1, 30, "writeback"))
	}
	sum := testEnv.Crash(mustParse(t, string(src)), Config{Crash: true}, nil)
	if sum.Failures != 0 || sum.Stopped != "" || sum.Unsupported != "" || sum.Distinct < 100 {
		t.Fatalf("%s (%+v) %s", sum, sum.First, sum.Unsupported)
	}
	t.Logf("200 operations: %s", sum)
}

func TestCrashStateString(t *testing.T) {
	for _, s := range []string{"0:-", "3:0", "2:0,4,7", "1:2:torn"} {
		c, err := ParseCrashState(s)
		if err != nil || c.String() != s {
			t.Errorf("%q: %v %v", s, c, err)
		}
	}
	for _, s := range []string{"", "1", "-1:-", "0:-:torn", "1:3,2", "1:1,1", "x:1", "1:01", "1:2:tor", "1:2:torn:x"} {
		if _, err := ParseCrashState(s); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// TestCrashFile runs crash mode on $CRASH_SCRIPT (for measurements).
func TestCrashFile(t *testing.T) {
	src, err := os.ReadFile(os.Getenv("CRASH_SCRIPT"))
	if err != nil {
		t.Skip("CRASH_SCRIPT not set")
	}
	sum := testEnv.Crash(mustParse(t, string(src)), Config{Crash: true}, nil)
	t.Logf("%s", sum)
}

// TestBadInput: malformed flags and scripts get a one-line error and
// exit status 2; nothing panics.
func TestBadInput(t *testing.T) {
	for _, args := range []string{"", "-p", "-p x a.gio", "-p -1 a.gio", "-n -3 a.gio", "-t 0 a.gio", "-t forever a.gio",
		"-j 0 a.gio", "-depth 0 a.gio", "--schedule 3:0 a.gio", "--schedule x a.gio", "a.gio b.gio", "--bogus a.gio",
		"--crash-writes 9 --crash a.gio", "--torn a.gio", "--crash-state 1:0 a.gio", "--crash --random a.gio",
		"--crash --crash-state 1:2,1 a.gio", "--crash --schedule 0:1 a.gio"} {
		_, err := ParseArgs(strings.Fields(args))
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v", args, err)
		}
	}
	scripts := []string{
		"",
		"aio_write 0 512\n",
		"create img\nopen img\nwrite 0 512\n",
		"create img 1T\nopen img\nwrite 0 512\n",
		"create img 64k\nopen img\n",
		"create img 64k\nopen -o driver=nosuch img\nwrite 0 512\n",
		"create img 64k\nopen img\nnosuchcommand 1 2\n",
		"create img 64k\nopen -o driver=raw img\nwrite -P 1 0 512\nread -P 2 0 512\n",
	}
	for _, crash := range []bool{false, true} {
		for _, src := range scripts {
			o, err := ParseArgs([]string{"-t", "5s", "x.gio"})
			if err != nil {
				t.Fatal(err)
			}
			o.Crash = crash
			var out, errb strings.Builder
			code := testEnv.Command(o, "x.gio", src, &out, &errb, nil)
			if code == 0 && !strings.Contains(src, "read -P 2") {
				t.Errorf("crash %v, %q: exit 0\n%s", crash, src, out.String())
				continue
			}
			if code == 2 && strings.Count(errb.String(), "\n") != 1 {
				t.Errorf("crash %v, %q: exit 2 with %q", crash, src, errb.String())
			}
		}
	}
}

// TestBudgetSummary: an exploration that exceeds its budget stops and
// prints its summary, in both modes.
func TestBudgetSummary(t *testing.T) {
	for _, args := range [][]string{{"-t", "1ns", "-p", "8", "x.gio"}, {"-n", "3", "-p", "8", "x.gio"},
		{"--crash", "-t", "1ns", "x.gio"}, {"--crash", "-n", "3", "x.gio"}} {
		o, err := ParseArgs(args)
		if err != nil {
			t.Fatal(err)
		}
		src := three
		if o.Crash {
			src = crashWorkload(2, 30, "writeback")
		}
		var out, errb strings.Builder
		code := testEnv.Command(o, "x.gio", src, &out, &errb, nil)
		if code != 0 || !strings.Contains(out.String(), "stopped: ") || errb.Len() != 0 {
			t.Errorf("%v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
	}
}

// TestCrashJobsIndependent: the summary and the failure found do not
// depend on the number of loops, nor on -n's cut.
func TestCrashJobsIndependent(t *testing.T) {
	// Under -race (which checks the loops' concurrency here) a shorter
	// workload: the crash states grow fast with its length, and every
	// one is checked eight times.
	ops := 16
	if raceOn {
		ops = 10
	}
	for _, src := range []string{crashWorkload(3, ops, "writeback"), fmt.Sprintf(crashSeed, ",x-write-order=off")} {
		sc := mustParse(t, src)
		for _, n := range []int{0, 30} {
			a := testEnv.Crash(sc, Config{Crash: true, Torn: true, Jobs: 1, MaxSchedules: n}, nil)
			b := testEnv.Crash(sc, Config{Crash: true, Torn: true, Jobs: 3, MaxSchedules: n}, nil)
			a.Elapsed, b.Elapsed = 0, 0
			if a.String() != b.String() || (a.First == nil) != (b.First == nil) || a.First != nil && a.First.State.String() != b.First.State.String() {
				t.Errorf("-n %d: -j 1 %s (%+v); -j 3 %s (%+v)", n, a, a.First, b, b.First)
			}
			t.Logf("-n %d: %s", n, a)
		}
	}
}
