package repl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"

	"gio/commands"

	"github.com/chzyer/readline"
)

// Options configure the interactive shell.
type Options struct {
	// HistoryFile overrides the history's place (HistoryPath otherwise);
	// "-" keeps no history file.
	HistoryFile string
	// Record, if set, records the session into this .gio file from the
	// start (--record).
	Record string
}

// HistoryLimit caps the history file, in lines.
const HistoryLimit = 10000

// HistoryPath is where the history of interactive sessions is kept:
// $XDG_STATE_HOME/gio/history, else ~/.local/state/gio/history; "" when
// neither can be found.
func HistoryPath(getenv func(string) string) string {
	if x := getenv("XDG_STATE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "gio", "history")
	}
	home := getenv("HOME")
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".local", "state", "gio", "history")
}

// RunInteractive runs the shell on the terminal: readline editing with
// history, completion, "did you mean" for mistyped commands, Ctrl-C to
// abandon a line or interrupt a long command, Ctrl-D on an empty line to
// quit. Without a terminal on both stdin and stdout it reads lines plainly.
func RunInteractive(s *commands.Session, out *StdioWriter, o Options) {
	rec := newRecorder(s)
	s.Recorder = rec
	s.Interactive = true
	defer rec.Stop()
	s.Suggest = func(word string, candidates []string) {
		if n := suggest(word, candidates); n != "" {
			fmt.Fprintf(s.Err, "gio: did you mean \"%s\"?\n", n)
		}
	}
	if o.Record != "" {
		if err := rec.Start(o.Record); err != nil {
			fmt.Fprintf(s.Err, "gio: record: %v\n", err)
		}
	}
	if !IsTerminal(os.Stdin) || !IsTerminal(os.Stdout) {
		// Without readline Ctrl-C ends gio, as it ends qemu-io;
		// the scratch images go with it.
		defer commands.CleanupOnSignals(os.Interrupt)()
		runPlain(s, out, rec)
		return
	}
	hist := o.HistoryFile
	switch hist {
	case "":
		hist = HistoryPath(os.Getenv)
	case "-":
		hist = ""
	}
	if hist != "" {
		if err := os.MkdirAll(filepath.Dir(hist), 0o700); err != nil {
			fmt.Fprintf(s.Err, "gio: history: %v\n", err)
			hist = ""
		}
	}
	rl, err := readline.NewEx(&readline.Config{
		Prompt:            InteractivePrompt,
		HistoryFile:       hist,
		HistoryLimit:      HistoryLimit,
		HistorySearchFold: true,
		AutoComplete:      &completer{s: s},
		InterruptPrompt:   "^C",
		EOFPrompt:         "\n", // readline's spelling of "just a newline"
	})
	if err != nil {
		fmt.Fprintf(s.Err, "gio: readline: %v\n", err)
		defer commands.CleanupOnSignals(os.Interrupt)()
		runPlain(s, out, rec)
		return
	}
	defer rl.Close()

	// SIGINT arrives only while a command runs: readline turns the
	// terminal's signal keys off while it edits a line, and reads Ctrl-C
	// as "abandon this line" itself.
	stop := trapInterrupts(s, exitInterrupted)
	defer stop()
	for !s.Quit {
		// What the last command left running (aio requests) runs
		// before the prompt; a Ctrl-C during the command or now stops
		// it too, as it would stop the command itself.
		s.Loop.RunDue()
		out.Flush()
		s.Loop.ClearInterrupt()
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			continue
		}
		if err != nil { // io.EOF: Ctrl-D on an empty line
			break
		}
		rec.Line(line)
		s.Loop.ClearInterrupt()
		s.Execute(line)
		out.Flush()
	}
}

// trapInterrupts turns SIGINT into a loop interrupt for as long as the
// shell runs: the command in progress stops at its next wait or chunk
// and the prompt comes back. The terminal has already echoed "^C"; a
// newline ends that line as a shell's would. A second SIGINT before the
// prompt is back means the first did not work: gio then exits (status
// 130, as a shell reports death by SIGINT), scratch images removed,
// rather than ignore it.
func trapInterrupts(s *commands.Session, exit func()) (stop func()) {
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	var stopped atomic.Bool
	signal.Notify(sigs, os.Interrupt)
	go func() {
		for {
			select {
			case <-sigs:
				if stopped.Load() {
					continue
				}
				if s.Loop.Interrupted() {
					exit()
					continue
				}
				s.Loop.Interrupt()
				os.Stdout.WriteString("\n")
			case <-done:
				return
			}
		}
	}()
	return func() {
		stopped.Store(true)
		signal.Stop(sigs)
		close(done)
	}
}

// exitInterrupted ends gio on a second Ctrl-C.
func exitInterrupted() {
	os.Stderr.WriteString("\ngio: interrupted again before the prompt came back: exiting\n")
	commands.RemoveScratchDirs()
	os.Exit(130)
}

// runPlain reads lines from a terminal stdin when stdout is not one (or
// readline cannot start): prompt, no editing, no colour codes unless
// asked for.
func runPlain(s *commands.Session, out *StdioWriter, rec *recorder) {
	r := bufio.NewReader(os.Stdin)
	for !s.Quit {
		s.Loop.RunDue()
		fmt.Fprint(out, InteractivePrompt)
		out.Flush()
		line, err := r.ReadString('\n')
		if err != nil && line == "" {
			if err == io.EOF {
				fmt.Fprintln(out)
			}
			return
		}
		if n := len(line); n > 0 && line[n-1] == '\n' {
			line = line[:n-1]
		}
		rec.Line(line)
		s.Execute(line)
	}
}
