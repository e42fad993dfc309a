package commands

import (
	"fmt"
	"sort"

	"gio/internal/getopt"
)

// This file holds the commands and hooks that exist for gio's interactive
// shell only: record, "help gio", and what completion needs to know.

// Recorder appends the command lines typed at the interactive prompt to a
// .gio script. The repl package implements it; Session.Recorder is nil
// outside interactive mode, where there is nothing typed to record.
type Recorder interface {
	// Start appends from now on to path, creating it with a header
	// comment when it is new. A recording already running is stopped.
	Start(path string) error
	// Stop ends the recording.
	Stop() error
	// Path is the file being recorded to, "" when not recording.
	Path() string
}

const recordHelp = `
 appends every command typed at the interactive prompt to a .gio script

 Example:
 'record bug.gio' then reproduce the problem, 'record off', and
 'gio test -update bug.gio' writes bug.out: the session is now a
 regression test. 'record' alone says where the recording goes.

 Lines are appended as they are entered (record lines themselves are
 not). Start gio with --record FILE to record a whole session.

`

func recordCommand() *Command {
	return &Command{Name: "record", Args: "[file|off]",
		Oneline: "records the commands typed at the prompt into a .gio script (gio only)",
		Help:    recordHelp, MinArgs: 0, MaxArgs: 1, RawArgs: true, Hidden: true, Family: "gio",
		Run: recordCmd}
}

func recordCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	r := s.Recorder
	if r == nil {
		fmt.Fprintln(s.Err, "gio: record: only commands typed at an interactive prompt are recorded")
		return errFailed
	}
	switch {
	case len(args) == 0:
		if p := r.Path(); p != "" {
			fmt.Fprintf(s.Out, "recording to %s\n", p)
		} else {
			fmt.Fprintln(s.Out, "not recording")
		}
	case args[0] == "off":
		p := r.Path()
		if p == "" {
			fmt.Fprintln(s.Err, "gio: record: not recording")
			return errFailed
		}
		if err := r.Stop(); err != nil {
			fmt.Fprintf(s.Err, "gio: record: %v\n", err)
			return errFailed
		}
		fmt.Fprintf(s.Out, "recorded to %s\n", p)
	default:
		if err := r.Start(args[0]); err != nil {
			fmt.Fprintf(s.Err, "gio: record: %v\n", err)
			return errFailed
		}
		fmt.Fprintf(s.Out, "recording to %s\n", args[0])
	}
	return nil
}

// helpGio is "help gio" (or "help -g"): every command, gio's own
// included, grouped by family in table order, each with its alias.
func helpGio(s *Session) error {
	var families []string
	byFamily := map[string][]*Command{}
	for _, c := range s.Table.cmds {
		if _, ok := byFamily[c.Family]; !ok {
			families = append(families, c.Family)
		}
		byFamily[c.Family] = append(byFamily[c.Family], c)
	}
	for i, f := range families {
		if i > 0 {
			fmt.Fprintln(s.Out)
		}
		switch f {
		case "":
			f = "other"
		case "gio":
			f = "gio (not in qemu-io)"
		}
		fmt.Fprintf(s.Out, "%s:\n", f)
		for _, c := range byFamily[families[i]] {
			u := c.Usage(c.Name)
			if c.Alias != "" {
				u += fmt.Sprintf(" (alias %s)", c.Alias)
			}
			fmt.Fprintf(s.Out, "  %s\n", u)
		}
	}
	fmt.Fprintln(s.Out)
	fmt.Fprintln(s.Out, "Use 'help commandname' for extended help; 'help' alone is qemu-io's listing.")
	return nil
}

// isHelpGio reports whether help's argument asks for gio's listing.
func isHelpGio(arg string) bool { return arg == "gio" || arg == "-g" }

// ScratchNames returns the names of the scratch images made by create,
// sorted (for completion).
func (s *Session) ScratchNames() []string {
	names := make([]string, 0, len(s.scratch))
	for n := range s.scratch {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
