package main

import (
	"os"

	"gio/blk"
	"gio/commands"
	"gio/repl"
)

// runBench is "gio bench [qemu-img bench options] filename": qemu-img
// bench's command line, output and exit status, on gio's block layer.
// stdout is buffered like C stdio (so, piped, "qemu-img: Failed request"
// on stderr comes before the "Sending" line, as with qemu-img).
func runBench(args []string) int {
	out := repl.NewStdioWriter(os.Stdout, repl.IsTerminal(os.Stdout))
	defer out.Flush()
	s := env.NewSession(out, os.Stderr, blk.NewRealClock())
	defer s.Cleanup()
	return commands.BenchMain(s, args)
}

// runCheck is "gio check [qemu-img check options] filename": qemu-img
// check's command line, report and exit status on gio's block layer.
func runCheck(args []string) int {
	out := repl.NewStdioWriter(os.Stdout, repl.IsTerminal(os.Stdout))
	defer out.Flush()
	s := env.NewSession(out, os.Stderr, blk.NewRealClock())
	defer s.Cleanup()
	s.Flush = out.Flush
	return commands.CheckMain(s, args)
}
