package commands

import (
	"fmt"

	"gio/internal/getopt"
)

func shellCommands() []*Command {
	return []*Command{
		{Name: "help", Alias: "?", Args: "[command]", Oneline: "help for one or all commands",
			MinArgs: 0, MaxArgs: 1, RawArgs: true, Family: "shell", Run: helpCmd},
		{Name: "quit", Alias: "q", Oneline: "exit the program",
			MinArgs: 0, MaxArgs: -1, RawArgs: true, Family: "shell", Run: quitCmd},
	}
}

// helpCmd prints qemu-io's help: every command sorted by name, or one
// command's summary (with the word as typed) and extended help.
func helpCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	if len(args) == 0 {
		for _, c := range s.Table.Commands() {
			if c.Hidden {
				continue
			}
			fmt.Fprintln(s.Out, c.Usage(c.Name))
		}
		fmt.Fprintln(s.Out)
		fmt.Fprintln(s.Out, "Use 'help commandname' for extended help.")
		if s.Interactive {
			// Only at the prompt: piped, the listing stays qemu-io's
			// byte for byte.
			fmt.Fprintln(s.Out, "Use 'help gio' for gio's own commands too (create, record, bench).")
		}
		return nil
	}
	if isHelpGio(args[0]) {
		return helpGio(s)
	}
	c := s.Table.Lookup(args[0])
	if c == nil {
		fmt.Fprintf(s.Out, "command %s not found\n", args[0])
		return errFailed
	}
	fmt.Fprintln(s.Out, c.Usage(args[0]))
	if c.Help != "" {
		fmt.Fprint(s.Out, c.Help)
	}
	return nil
}

func quitCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	s.Quit = true
	return nil
}
