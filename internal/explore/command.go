package explore

import (
	"fmt"
	"io"
	"strings"
)

// Command is "gio explore" and the shell's explore command after the
// arguments are parsed: it explores the script in src (named name),
// prints the summary, and on a failure the shrunk reproducer (to o.Out
// when set, else to out). It returns the exit status: 1 for a failure,
// 0 for none within the bounds, 2 when the script cannot be explored.
// writeFile writes the reproducer file.
func (e Env) Command(o Options, name, src string, out, errw io.Writer, writeFile func(name string, data []byte) error) int {
	if o.Help {
		fmt.Fprint(out, Usage)
		return 0
	}
	sc, err := ParseScript(src)
	if err != nil {
		fmt.Fprintf(errw, "gio explore: %s: %v\n", name, err)
		return 2
	}
	if o.Crash {
		return e.crashCommand(o, sc, name, out, errw, writeFile)
	}
	if o.HasSchedule {
		if o.Verbose {
			for _, l := range e.Trace(sc, o.Schedule) {
				fmt.Fprintln(out, l)
			}
		}
		what, fits := e.Replay(sc, o.Schedule)
		switch {
		case !fits:
			fmt.Fprintf(errw, "gio explore: schedule %s does not fit the script's runs\n", o.Schedule)
			return 2
		case what == "":
			fmt.Fprintf(out, "gio explore: schedule %s: no failure\n", o.Schedule)
			return 0
		}
		fmt.Fprintf(out, "gio explore: schedule %s: %s\n", o.Schedule, what)
		return 1
	}
	sum := e.Explore(sc, o.Config)
	if o.Progress != nil {
		o.Progress(-1) // done: the progress line goes
	}
	if sum.Unsupported != "" {
		fmt.Fprintf(errw, "gio explore: %s: %s\n", name, strings.TrimPrefix(sum.Unsupported, "explore "))
		return 2
	}
	fmt.Fprintf(out, "gio explore: %s\n", sum)
	if sum.First == nil {
		return 0
	}
	fmt.Fprintf(out, "gio explore: schedule %s fails: %s\n", sum.First.Schedule, sum.First.What)
	small, f := e.Shrink(sc, sum.First, o.Config)
	fmt.Fprintf(out, "gio explore: shrunk to %d lines, schedule %s: %s\n", len(small.Body), f.Schedule, f.What)
	if bsc, bf, ok := e.WithBreakpoints(small, f); ok {
		small, f = bsc, bf
	}
	small, f = e.ShrinkRanges(small, f)
	return writeRepro(o, Reproducer(small, f), out, errw, writeFile)
}

// writeRepro prints the reproducer, or writes it to o.Out; a failure
// was found, the status is 1.
func writeRepro(o Options, repro string, out, errw io.Writer, writeFile func(name string, data []byte) error) int {
	if o.Out == "" {
		fmt.Fprint(out, repro)
		return 1
	}
	if err := writeFile(o.Out, []byte(repro)); err != nil {
		fmt.Fprintf(errw, "gio explore: %v\n", err)
		return 1
	}
	fmt.Fprintf(out, "gio explore: reproducer: %s\n", o.Out)
	return 1
}

// crashCommand is Command for --crash.
func (e Env) crashCommand(o Options, sc *Script, name string, out, errw io.Writer, writeFile func(name string, data []byte) error) int {
	var only *CrashState
	if o.HasCrashState {
		only = &o.CrashState
	}
	sum := e.Crash(sc, o.Config, only)
	if o.Progress != nil {
		o.Progress(-1)
	}
	if sum.Unsupported != "" {
		fmt.Fprintf(errw, "gio explore: %s: %s\n", name, sum.Unsupported)
		return 2
	}
	if only != nil {
		if sum.First == nil {
			fmt.Fprintf(out, "gio explore: crash state %s: no failure\n", only)
			return 0
		}
		fmt.Fprintf(out, "gio explore: crash state %s: %s\n", only, sum.First.What)
		return 1
	}
	fmt.Fprintf(out, "gio explore: %s\n", sum)
	if sum.First == nil {
		return 0
	}
	fmt.Fprintf(out, "gio explore: crash state %s fails: %s\n", sum.First.State, sum.First.What)
	small, f := e.ShrinkCrash(sc, sum.First, o.Config)
	fmt.Fprintf(out, "gio explore: shrunk to %d lines, crash state %s: %s\n", len(small.Body), f.State, f.What)
	return writeRepro(o, CrashReproducer(small, f), out, errw, writeFile)
}
