package main

import (
	"fmt"
	"os"
	"strings"

	"gio/commands"
	"gio/trace"
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

// parseTraceFlags takes --trace FILE, --trace=FILE and
// --trace-format[=]FORMAT from the front of a subcommand's arguments.
func parseTraceFlags(args []string) ([]string, traceFlags, bool) {
	var t traceFlags
	for len(args) > 0 {
		var val *string
		name, arg, inline := strings.Cut(args[0], "=")
		switch name {
		case "--trace", "-trace":
			val = &t.file
		case "--trace-format", "-trace-format":
			val = &t.format
		default:
			return args, t, true
		}
		if !inline {
			if len(args) < 2 {
				fmt.Fprintf(os.Stderr, "gio: %s needs an argument\n", name)
				return nil, t, false
			}
			arg, args = args[1], args[1:]
		}
		*val = arg
		args = args[1:]
	}
	if _, err := trace.ParseFormat(t.format); err != nil {
		fmt.Fprintf(os.Stderr, "gio: %v\n", err)
		return nil, t, false
	}
	return args, t, true
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
