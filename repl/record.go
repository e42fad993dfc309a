package repl

import (
	"fmt"
	"os"
	"strings"
	"time"

	"gio/commands"
)

// recorder appends the lines typed at the prompt to a .gio script, so
// that a session that found a bug becomes a regression test: "gio test
// -update FILE" writes its .out. It implements commands.Recorder.
type recorder struct {
	s    *commands.Session
	f    *os.File
	path string
	now  func() time.Time
}

var _ commands.Recorder = (*recorder)(nil)

func newRecorder(s *commands.Session) *recorder {
	return &recorder{s: s, now: time.Now}
}

// Start implements commands.Recorder.
func (r *recorder) Start(path string) error {
	if r.f != nil {
		if err := r.Stop(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	when := r.now().Format("2006-01-02 15:04")
	var head string
	if st.Size() == 0 {
		head = fmt.Sprintf("# Recorded by gio from an interactive session on %s.\n"+
			"# Replay it with \"gio run %s\"; make it a regression test with\n"+
			"# \"gio test -update %s\", which writes the expected output beside it.\n", when, path, path)
	} else {
		head = fmt.Sprintf("\n# Recording continued on %s.\n", when)
	}
	if setup := r.s.ReplayLines(); len(setup) > 0 {
		if st.Size() == 0 {
			head += "# What the session had done before the recording began:\n" + strings.Join(setup, "\n") + "\n"
		} else {
			head += "# The image open at this point was opened as: " + setup[len(setup)-1] + "\n"
		}
	}
	if _, err := f.WriteString(head); err != nil {
		f.Close()
		return err
	}
	r.f, r.path = f, path
	return nil
}

// Stop implements commands.Recorder.
func (r *recorder) Stop() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f, r.path = nil, ""
	return err
}

// Path implements commands.Recorder.
func (r *recorder) Path() string { return r.path }

// Line appends a line as typed (less trailing spaces, which completion
// leaves), unless it is empty or a record command.
// A failing write stops the recording with a message rather than
// losing lines silently.
func (r *recorder) Line(line string) {
	if r.f == nil {
		return
	}
	w := commands.SplitLine(line)
	if len(w) == 0 || w[0] == "record" {
		return
	}
	if _, err := r.f.WriteString(strings.TrimRight(line, " ") + "\n"); err != nil {
		fmt.Fprintf(r.s.Err, "gio: record: %v (recording stopped)\n", err)
		r.f.Close()
		r.f, r.path = nil, ""
	}
}
