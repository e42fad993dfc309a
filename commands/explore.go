package commands

import (
	"fmt"

	"gio/internal/getopt"
)

// exploreCommand is "gio explore" at the prompt. The program supplies
// it (Session.Explore): exploring builds sessions of its own, which
// commands cannot.
func exploreCommand() *Command {
	return &Command{Name: "explore", Args: "[-p N] [-n MAX] [-t BUDGET] [-j N] [--random] [--schedule S] [-o file] file.gio",
		Oneline: "runs a script under every schedule, checked against a model (gio only)",
		Help:    "\n runs the script as 'gio explore' does ('explore -h' lists the options).\n\n",
		MinArgs: 1, MaxArgs: -1, RawArgs: true, Hidden: true, Family: "gio",
		Run: exploreCmd}
}

func exploreCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	if s.Explore == nil {
		fmt.Fprintln(s.Err, "gio: explore: not available in this program")
		return errFailed
	}
	if s.Explore(args, s.Out, s.Err) != 0 {
		return errFailed
	}
	return nil
}
