package main

import (
	"fmt"
	"io"
	"os"

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
}, NewRegistry: env.NewRegistry, NewSessionOn: func(out, errw io.Writer, reg *blk.Registry) fsx.Session {
	on := repl.Env{NewRegistry: func(io.Writer) *blk.Registry { return reg }, Explore: env.Explore}
	return on.NewSession(repl.NewStdioWriter(out, false), errw, blk.NewVirtualClock())
}}

// runExplore is "gio explore": exit 1 when a failing schedule was
// found, 0 when none was within the bounds, 2 for a usage error.
func runExplore(args []string) int {
	o, err := explore.ParseArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio explore: %v (gio explore -h for help)\n", err)
		return 2
	}
	var src []byte
	if !o.Help {
		if src, err = os.ReadFile(o.Script); err != nil {
			fmt.Fprintf(os.Stderr, "gio explore: %v\n", err)
			return 2
		}
	}
	cleanup, err := fsxScratchDir("")
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio explore: %v\n", err)
		return 2
	}
	defer cleanup()
	if repl.IsTerminal(os.Stderr) {
		o.Progress = func(n int64) {
			if n < 0 {
				fmt.Fprint(os.Stderr, "\r\033[K")
				return
			}
			what := "schedules"
			if o.Crash {
				what = "crash states"
			}
			fmt.Fprintf(os.Stderr, "\rgio explore: %d %s...\033[K", n, what)
		}
	}
	return exploreEnv.Command(o, o.Script, string(src), os.Stdout, os.Stderr, writeFile)
}

func writeFile(name string, data []byte) error { return os.WriteFile(name, data, 0o644) }

// The explore command at the prompt and in scripts.
func init() { env.Explore = exploreIn }

// exploreIn is the explore command: gio explore on the session's
// streams, without a progress line.
func exploreIn(args []string, out, errw io.Writer) int {
	o, err := explore.ParseArgs(args)
	if err != nil {
		fmt.Fprintf(errw, "gio: explore: %v\n", err)
		return 2
	}
	var src []byte
	if !o.Help {
		if src, err = os.ReadFile(o.Script); err != nil {
			fmt.Fprintf(errw, "gio: explore: %v\n", err)
			return 2
		}
	}
	return exploreEnv.Command(o, o.Script, string(src), out, errw, writeFile)
}
