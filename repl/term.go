package repl

import (
	"bufio"
	"fmt"
	"os"

	"gio/commands"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// InteractivePrompt is gio's prompt at a terminal.
const InteractivePrompt = "gio> "

// RunInteractive reads commands from the terminal.
func RunInteractive(s *commands.Session, out *StdioWriter) {
	r := bufio.NewReader(os.Stdin)
	for !s.Quit {
		fmt.Fprint(out, InteractivePrompt)
		out.Flush()
		s.Loop.Poll()
		line, err := r.ReadString('\n')
		if err != nil && line == "" {
			fmt.Fprintln(out)
			return
		}
		if n := len(line); n > 0 && line[n-1] == '\n' {
			line = line[:n-1]
		}
		s.Execute(line)
	}
}
