// Package repl is where command lines come from: -c arguments, piped
// stdin, script files and the interactive terminal. It owns output
// buffering, the prompt and colour; commands only write to the session's
// writers.
package repl

import (
	"bufio"
	"io"

	"gio/commands"
)

// Prompt is qemu-io's prompt, printed before every line read from a
// non-terminal stdin (iotests' filters strip it).
const Prompt = "qemu-io> "

// RunCommands runs -c commands in order until one quits. The loop is not
// polled between commands, exactly as qemu-io does not: completions of
// aio requests show up during the next command that waits, or at exit.
func RunCommands(s *commands.Session, cmds []string) {
	for _, c := range cmds {
		if s.Quit {
			return
		}
		s.Execute(c)
	}
}

// maxLine is qemu-io's line chunk: longer lines are split into pieces of
// this many bytes, each run as its own command line.
const maxLine = 1023

// RunStdin reads commands from a non-terminal reader, printing the
// prompt (and flushing stdout) before each read, as qemu-io does. Before
// reading, the loop runs what is already scheduled (bottom halves, such as
// the completions of requests that finished during submission), as
// qemu-io's main loop does while it waits for input; thread-pool I/O
// completes only when a later command waits (sleep, aio_flush, a sync
// request) or at exit, which is what qemu-io shows with piped input.
func RunStdin(s *commands.Session, out *StdioWriter, in io.Reader) {
	r := bufio.NewReaderSize(in, 64*1024)
	for !s.Quit {
		out.Write([]byte(Prompt))
		out.Flush()
		s.Loop.RunPending()
		line, ok := readChunk(r)
		if !ok {
			return
		}
		s.Execute(line)
	}
}

// readChunk reads up to maxLine bytes or through the next newline, and
// strips only the newline (a '\r' stays part of the line, as in qemu-io).
func readChunk(r *bufio.Reader) (string, bool) {
	var b []byte
	for len(b) < maxLine {
		c, err := r.ReadByte()
		if err != nil {
			return string(b), len(b) > 0
		}
		if c == '\n' {
			return string(b), true
		}
		b = append(b, c)
	}
	return string(b), true
}
