package explore

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// Usage is gio explore's help text.
const Usage = `usage: gio explore [-h] [-p N] [-n MAX] [-t BUDGET] [-j N] [--no-reduce]
                   [--random [-seed N] [-depth D]] [--schedule S]
                   [--crash [--crash-writes K] [--torn] [--crash-state S]]
                   [-o REPRO.gio] SCRIPT.gio

Runs the script once per distinct schedule: at every point where more than
one request could run, a completed request could be delivered before the
script goes on, or an I/O could take effect at once or only when its
completion is delivered, each choice is tried. Every read is checked against
the overlap-aware model of fsx, the final image too, and so are the
script's own "read -P" checks and requests that can never finish. The
first failing schedule is shrunk and printed as a script (to -o if
given). Exit status: 1 failure found, 0 none within the bounds, 2 usage.

  -p N            at most N deviations from FIFO order per schedule (2)
  -n MAX          stop after MAX schedules (100000; in random mode, the
                  number of random schedules, 1000)
  -t BUDGET       stop after BUDGET of wall time (60s)
  -j N            explore on N loops (default: one per core)
  --no-reduce     try orderings of requests on disjoint ranges too
  --random        seeded PCT schedules instead of the exhaustive search
  -seed N         first PCT seed (1)
  -depth D        PCT depth: priority change points + 1 (3)
  --schedule S    run only schedule S (as printed) and report its verdict
  -v              with --schedule: list every choice point of the run
  -o FILE         write the reproducer to FILE
  --crash         crash states instead of schedules: the script runs once,
                  its disk's writes, zero writes, discards and flushes are
                  recorded below the format node; at every flush, crash
                  images are built from what was flushed plus each subset
                  of the later unflushed changes, opened and checked (no
                  corruption, leaks allowed; flushed data present). -n
                  then bounds the crash states (100000); -j N checks
                  N flush boundaries at a time
  --crash-writes K  at most K unflushed changes per crash state (2)
  --torn          also tear the last change of each state (its last
                  sector not written)
  --crash-state S check only crash state S (as printed)
`

// Options is a parsed gio explore command line.
type Options struct {
	Config
	Schedule    Schedule
	HasSchedule bool
	Out         string
	Script      string
	Help        bool
	Verbose     bool
	// CrashState, with HasCrashState, is --crash-state.
	CrashState    CrashState
	HasCrashState bool
}

// ParseArgs reads gio explore's arguments; an error is one line.
func ParseArgs(args []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("gio explore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&o.MaxPreemptions, "p", 2, "")
	fs.IntVar(&o.MaxSchedules, "n", 0, "")
	fs.DurationVar(&o.Budget, "t", 60*time.Second, "")
	fs.IntVar(&o.Jobs, "j", runtime.NumCPU(), "")
	fs.BoolVar(&o.NoReduce, "no-reduce", false, "")
	fs.BoolVar(&o.Random, "random", false, "")
	fs.Int64Var(&o.Seed, "seed", 1, "")
	fs.IntVar(&o.Depth, "depth", 3, "")
	sched := fs.String("schedule", "", "")
	fs.StringVar(&o.Out, "o", "", "")
	fs.BoolVar(&o.Verbose, "v", false, "")
	fs.BoolVar(&o.Crash, "crash", false, "")
	fs.IntVar(&o.CrashWrites, "crash-writes", 2, "")
	fs.BoolVar(&o.Torn, "torn", false, "")
	crashState := fs.String("crash-state", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			o.Help = true
			return o, nil
		}
		return o, errors.New(strings.SplitN(err.Error(), "\n", 2)[0])
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "schedule":
			o.HasSchedule = true
		case "crash-state":
			o.HasCrashState = true
		}
	})
	switch {
	case o.MaxPreemptions < 0 || o.MaxPreemptions > 64:
		return o, fmt.Errorf("-p %d: a number of preemptions from 0 to 64", o.MaxPreemptions)
	case o.MaxSchedules < 0:
		return o, fmt.Errorf("-n %d: a number of schedules, at least 1", o.MaxSchedules)
	case o.Budget <= 0:
		return o, fmt.Errorf("-t %v: a positive duration", o.Budget)
	case o.Jobs < 1 || o.Jobs > 256:
		return o, fmt.Errorf("-j %d: a number of loops from 1 to 256", o.Jobs)
	case o.Depth < 1 || o.Depth > 64:
		return o, fmt.Errorf("-depth %d: from 1 to 64", o.Depth)
	case o.CrashWrites < 0 || o.CrashWrites > 8:
		return o, fmt.Errorf("--crash-writes %d: from 0 to 8", o.CrashWrites)
	case !o.Crash && (o.HasCrashState || o.Torn):
		return o, fmt.Errorf("--crash-state and --torn go with --crash")
	case o.Crash && (o.Random || o.HasSchedule):
		return o, fmt.Errorf("--crash does not go with --random or --schedule")
	}
	if o.HasCrashState {
		c, err := ParseCrashState(*crashState)
		if err != nil {
			return o, err
		}
		o.CrashState = c
	}
	if o.HasSchedule {
		s, err := ParseSchedule(*sched)
		if err != nil {
			return o, err
		}
		o.Schedule = s
	}
	if o.MaxSchedules == 0 {
		o.MaxSchedules = 100000
		if o.Random {
			o.MaxSchedules = 1000
		}
	}
	if fs.NArg() != 1 {
		return o, fmt.Errorf("want one SCRIPT.gio, got %d arguments", fs.NArg())
	}
	o.Script = fs.Arg(0)
	return o, nil
}
