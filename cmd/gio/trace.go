package main

import (
	"fmt"
	"os"

	"gio/commands"
)

// traceFlags are --trace FILE and --trace-format=json|jsonl.
type traceFlags struct{ file, format string }

// start starts the trace on s, printing a one-line error on failure.
func (t traceFlags) start(s *commands.Session) bool {
	if t.file == "" {
		if t.format != "" {
			fmt.Fprintln(os.Stderr, "gio: --trace-format needs --trace FILE")
			return false
		}
		return true
	}
	if err := s.StartTrace(t.file, t.format); err != nil {
		fmt.Fprintf(os.Stderr, "gio: trace: %v\n", err)
		return false
	}
	return true
}

// runTrace is "gio trace view FILE -o OUT.html": render a trace as a
// self-contained timeline page.
func runTrace(args []string) int {
	if len(args) != 4 || args[0] != "view" || args[2] != "-o" {
		fmt.Fprintln(os.Stderr, "usage: gio trace view FILE -o OUT.html")
		return 2
	}
	if err := commands.ViewTrace(args[1], args[3]); err != nil {
		fmt.Fprintf(os.Stderr, "gio: trace view: %v\n", err)
		return 1
	}
	return 0
}
