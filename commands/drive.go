package commands

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
