package commands

import (
	"fmt"
	"io"
	"os"

	"gio/blk"
	"gio/internal/explore"
	"gio/internal/fsx"
	"gio/internal/getopt"
)

// exploreCommand is "gio explore" at the prompt.
func exploreCommand() *Command {
	return &Command{Name: "explore", Args: "[-p N] [-n MAX] [-t BUDGET] [-j N] [--random] [--schedule S] [-o file] file.gio",
		Oneline: "runs a script under every schedule, checked against a model (gio only)",
		Help:    "\n runs the script as 'gio explore' does ('explore -h' lists the options).\n\n",
		MinArgs: 1, MaxArgs: -1, RawArgs: true, Hidden: true, Family: "gio",
		Run: exploreCmd}
}

func exploreCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	if s.NewSubSession == nil {
		fmt.Fprintln(s.Err, "gio: explore: sessions cannot be made here")
		return errFailed
	}
	o, err := explore.ParseArgs(args)
	if err != nil {
		fmt.Fprintf(s.Err, "gio: explore: %v\n", err)
		return errFailed
	}
	var src []byte
	if !o.Help {
		if src, err = os.ReadFile(o.Script); err != nil {
			fmt.Fprintf(s.Err, "gio: explore: %v\n", err)
			return errFailed
		}
	}
	e := explore.Env{NewSession: func(out, errw io.Writer, ch blk.Chooser) fsx.Session {
		sub := s.NewSubSession(out, errw)
		sub.Loop.SetChooser(ch)
		return sub
	}}
	write := func(name string, data []byte) error { return os.WriteFile(name, data, 0o644) }
	if e.Command(o, o.Script, string(src), s.Out, s.Err, write) != 0 {
		return errFailed
	}
	return nil
}
