package commands

import (
	"fmt"
	"os"

	"gio/internal/getopt"
	"gio/timeline"
	"gio/trace"
)

// This file holds gio's trace command: "trace start FILE" writes every
// request, yield, wait, debug event, breakpoint and flush of the session
// to FILE (package trace), "trace stop" ends it, "trace view" renders a
// trace as a timeline page (package timeline).

// traceState is the trace a session is writing.
type traceState struct {
	w    *trace.Writer
	path string
	// reported is set once a write error has been printed.
	reported bool
}

const traceHelp = `
 writes a trace of the session's requests, or renders one

 'trace start [-f json|jsonl] FILE' starts writing, 'trace stop' ends it,
 'trace' says where the trace goes. The file is Chrome Trace Event Format
 JSON (Perfetto UI, chrome://tracing) or, with -f jsonl, one event per
 line: every request as a span on its node from submission to completion
 with its parent request, every yield with its reason, serialisation and
 waits, blkdebug events, rules and breakpoints, flushes and errors.
 Timestamps are the loop clock's, so in virtual time the same script
 writes the same bytes on every run.

 'trace view FILE -o OUT.html' renders a trace as a self-contained
 timeline page (lanes per node and per request, waits as arrows).

`

func traceCommands() []*Command {
	return []*Command{
		{Name: "trace", Args: "[start [-f json|jsonl] FILE | stop | view FILE -o OUT]",
			Oneline: "writes a trace of the session's requests (gio only)", Help: traceHelp,
			MinArgs: 0, MaxArgs: 5, RawArgs: true, Hidden: true, Family: "gio", Run: traceCmd,
			Subs: traceSubs},
		requestsCommand(),
	}
}

// traceSubs are trace's subcommands: start takes -f and a file name,
// view a file name and -o with another.
var traceSubs = []Sub{
	{Name: "start", Flags: []Flag{{Letter: 'f', Arg: "format", Values: TraceFormats}}, Paths: true},
	{Name: "stop"},
	{Name: "view", Flags: []Flag{{Letter: 'o', Arg: "file", Path: true}}, Paths: true},
}

func traceCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	if len(args) == 0 {
		if s.tracing != nil {
			fmt.Fprintf(s.Out, "tracing to %s\n", s.tracing.path)
		} else {
			fmt.Fprintln(s.Out, "not tracing")
		}
		return nil
	}
	switch args[0] {
	case "start":
		format := ""
		rest := args[1:]
		if len(rest) > 0 && len(rest[0]) > 2 && rest[0][:2] == "-f" {
			format, rest = rest[0][2:], rest[1:]
		} else if len(rest) > 1 && rest[0] == "-f" {
			format, rest = rest[1], rest[2:]
		}
		if len(rest) != 1 {
			return errUsage
		}
		if err := s.StartTrace(rest[0], format); err != nil {
			fmt.Fprintf(s.Err, "gio: trace: %v\n", err)
			return errFailed
		}
		return nil
	case "stop":
		if len(args) != 1 {
			return errUsage
		}
		if s.tracing == nil {
			fmt.Fprintln(s.Err, "gio: trace: not tracing")
			return errFailed
		}
		if !s.StopTrace() {
			return errFailed
		}
		return nil
	case "view":
		if len(args) != 4 || args[2] != "-o" {
			return errUsage
		}
		if err := ViewTrace(args[1], args[3]); err != nil {
			fmt.Fprintf(s.Err, "gio: trace view: %v\n", err)
			return errFailed
		}
		return nil
	}
	return errUsage
}

// ViewTrace renders the trace file in as a timeline page written to out.
func ViewTrace(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	tr, err := trace.Read(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	page := timeline.Render(tr, in)
	if err := os.WriteFile(out, page, 0o644); err != nil {
		return err
	}
	return nil
}

// StartTrace starts writing a trace of the session to path in format
// ("json", the default, or "jsonl"); a trace already running is stopped
// first. A write error later prints one line, stops tracing and leaves
// the session going.
func (s *Session) StartTrace(path, format string) error {
	f, err := trace.ParseFormat(format)
	if err != nil {
		return err
	}
	if s.tracing != nil && !s.StopTrace() {
		s.Failed = true
	}
	w, err := trace.Create(path, f)
	if err != nil {
		return err
	}
	st := &traceState{w: w, path: path}
	w.OnError = func(err error) {
		// Under the token, possibly inside a request: stop tracing
		// now, so nothing more is attempted, and say so once.
		s.Loop.SetTracer(nil)
		st.reported = true
		s.Failed = true
		fmt.Fprintf(s.Err, "gio: trace %s: %v; tracing stopped\n", path, err)
	}
	s.tracing = st
	s.Loop.SetTracer(w)
	return nil
}

// StopTrace ends the trace, finishing the file; it reports whether the
// whole trace was written (a failure has been printed).
func (s *Session) StopTrace() bool {
	st := s.tracing
	if st == nil {
		return true
	}
	s.tracing = nil
	s.Loop.SetTracer(nil)
	err := st.w.Close()
	if err != nil && !st.reported {
		fmt.Fprintf(s.Err, "gio: trace %s: %v\n", st.path, err)
		s.Failed = true
	}
	return err == nil
}
