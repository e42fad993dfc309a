package repl

import (
	"io"
)

// StdioWriter buffers like C stdio, because qemu-io's byte-exact output
// under "2>&1" depends on it: on a terminal lines are flushed as they end;
// otherwise output leaves in whole 4096-byte blocks (and at explicit
// flushes: every prompt, exit, sigraise), so stderr text can land between
// blocks exactly where it does with qemu-io.
type StdioWriter struct {
	w    io.Writer
	buf  []byte
	line bool
	err  error
}

const stdioBlock = 4096

// NewStdioWriter returns a writer over w; lineBuffered selects terminal
// behaviour.
func NewStdioWriter(w io.Writer, lineBuffered bool) *StdioWriter {
	return &StdioWriter{w: w, buf: make([]byte, 0, stdioBlock), line: lineBuffered}
}

// Write buffers p, emitting full blocks (or, line buffered, everything up
// to the last newline).
func (s *StdioWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := stdioBlock - len(s.buf)
		k := min(room, len(p))
		s.buf = append(s.buf, p[:k]...)
		p = p[k:]
		if len(s.buf) == stdioBlock {
			s.Flush()
		}
	}
	if s.line {
		s.Flush()
	}
	return n, s.err
}

// Flush writes out everything buffered.
func (s *StdioWriter) Flush() {
	if len(s.buf) == 0 {
		return
	}
	if _, err := s.w.Write(s.buf); err != nil && s.err == nil {
		s.err = err
	}
	s.buf = s.buf[:0]
}
