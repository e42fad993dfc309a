package commands

import (
	"fmt"

	"gio/blk"
)

// Methods for a program that drives a session line by line and reads
// what each line printed (internal/fsx): they satisfy fsx.Session, which
// fsx declares so that it need not import this package.

// RunPending delivers the completions that are due now, as the shell
// does before every line.
func (s *Session) RunPending() { s.Loop.RunPending() }

// FlushOutput flushes Out.
func (s *Session) FlushOutput() {
	if s.Flush != nil {
		s.Flush()
	}
}

// Close closes the open image, if any, and removes the session's scratch
// images.
func (s *Session) Close() {
	if s.Img != nil {
		s.CloseImage()
	}
	s.Cleanup()
}

// Mark records the state of the open image and of the session, for
// Rewind (fsx.Rewinder): explore marks the session once the script's
// setup has made and opened the image, and rewinds it before each run
// instead of making a session, an image and a node graph per run. It
// fails when the image cannot be rewound (blk.Backend.Mark) or a trace
// is being written.
func (s *Session) Mark() error {
	if s.Img == nil || s.tracing != nil {
		return fmt.Errorf("%w: no image, or tracing", blk.ErrNotRewindable)
	}
	m, err := s.Img.Mark()
	if err != nil {
		return err
	}
	s.mark = &sessionMark{img: m, on: s.Img, failed: s.Failed}
	return nil
}

// sessionMark is what Mark recorded. The rest of a session is either
// the same for every command (the table, the streams) or set again by
// every command that reads it (lastWords, the sync buffer's bytes).
type sessionMark struct {
	img    *blk.Mark
	on     *blk.Backend
	failed bool
}

// Rewind brings the image and the session back to the mark. It fails
// while requests are in flight, when the image is not the one marked
// (the caller ran open or close), or when a driver could not rewind;
// the session is then to be closed.
func (s *Session) Rewind() error {
	if s.mark == nil || s.Img != s.mark.on || s.tracing != nil {
		return fmt.Errorf("%w: not the image marked", blk.ErrNotRewindable)
	}
	if err := s.mark.img.Rewind(); err != nil {
		return err
	}
	s.Failed = s.mark.failed
	s.lastWords = nil
	return nil
}
