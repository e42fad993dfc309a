package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"gio/blk"
	"gio/internal/explore"
	"gio/internal/fsx"
	"gio/repl"
)

// exploreEnv builds sessions as the shell does, with the explorer's
// chooser on each loop.
var exploreEnv = explore.Env{NewSession: func(out, errw io.Writer, ch blk.Chooser) fsx.Session {
	s := env.NewSession(repl.NewStdioWriter(out, false), errw, blk.NewVirtualClock())
	s.Loop.SetChooser(ch)
	return s
}}

// runExplore is "gio explore": exit 1 when a failing schedule was
// found, 0 when none was within the bounds, 2 for a usage error.
func runExplore(args []string) int {
	o, err := explore.ParseArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio explore: %v (gio explore -h for help)\n", err)
		return 2
	}
	if o.Help {
		fmt.Print(explore.Usage)
		return 0
	}
	src, err := os.ReadFile(o.Script)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio explore: %v\n", err)
		return 2
	}
	sc, err := explore.ParseScript(string(src))
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio explore: %s: %v\n", o.Script, err)
		return 2
	}
	cleanup, err := fsxScratchDir("")
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio explore: %v\n", err)
		return 2
	}
	defer cleanup()
	if o.HasSchedule && o.Verbose {
		for _, l := range exploreEnv.Trace(sc, o.Schedule) {
			fmt.Println(l)
		}
	}
	if o.HasSchedule {
		what, fits := exploreEnv.Replay(sc, o.Schedule)
		if !fits {
			fmt.Fprintf(os.Stderr, "gio explore: schedule %s does not fit the script's runs\n", o.Schedule)
			return 2
		}
		if what == "" {
			fmt.Printf("gio explore: schedule %s: no failure\n", o.Schedule)
			return 0
		}
		fmt.Printf("gio explore: schedule %s: %s\n", o.Schedule, what)
		return 1
	}
	if repl.IsTerminal(os.Stderr) {
		o.Progress = func(n int64) { fmt.Fprintf(os.Stderr, "\rgio explore: %d schedules...", n) }
	}
	sum := exploreEnv.Explore(sc, o.Config)
	if o.Progress != nil {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	if sum.Unsupported != "" {
		fmt.Fprintf(os.Stderr, "gio explore: %s: %s\n", o.Script, strings.TrimPrefix(sum.Unsupported, "explore "))
		return 2
	}
	fmt.Printf("gio explore: %s\n", sum)
	if sum.First == nil {
		return 0
	}
	fmt.Printf("gio explore: schedule %s fails: %s\n", sum.First.Schedule, sum.First.What)
	small, f := exploreEnv.Shrink(sc, sum.First, o.Config)
	fmt.Printf("gio explore: shrunk to %d lines, schedule %s: %s\n", len(small.Body), f.Schedule, f.What)
	if bsc, bf, ok := exploreEnv.WithBreakpoints(small, f); ok {
		small, f = bsc, bf
	}
	repro := explore.Reproducer(small, f)
	if o.Out == "" {
		fmt.Print(repro)
		return 1
	}
	if err := os.WriteFile(o.Out, []byte(repro), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "gio explore: %v\n", err)
		return 1
	}
	fmt.Printf("gio explore: reproducer: %s\n", o.Out)
	return 1
}
