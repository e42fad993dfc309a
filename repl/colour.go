package repl

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"gio/commands"

	"github.com/fatih/color"
)

// Colour lives here and nowhere else: commands write plain text, and the
// shell paints whole lines on their way to a terminal. Piped output never
// passes through a colourWriter unless --color=always asks for it.

// ColourMode is the value of --color.
type ColourMode int

// The --color values.
const (
	ColourAuto ColourMode = iota
	ColourAlways
	ColourNever
)

// ParseColourMode parses --color's value: auto, always or never (and
// the usual synonyms yes/force, no/none).
func ParseColourMode(s string) (ColourMode, error) {
	switch s {
	case "auto", "tty", "if-tty":
		return ColourAuto, nil
	case "always", "yes", "force":
		return ColourAlways, nil
	case "never", "no", "none":
		return ColourNever, nil
	}
	return ColourAuto, fmt.Errorf("invalid colour mode '%s' (auto, always or never)", s)
}

// UseColour decides whether output is painted. --color=never and
// --color=always win; otherwise colour is on only for the interactive
// shell on a terminal, and off with NO_COLOR set (https://no-color.org)
// or TERM=dumb.
func UseColour(mode ColourMode, interactive, stdoutTTY bool, getenv func(string) string) bool {
	switch mode {
	case ColourNever:
		return false
	case ColourAlways:
		return true
	}
	return interactive && stdoutTTY && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// lineKind is what a line of output is, for painting.
type lineKind int

const (
	plainLine lineKind = iota
	errorLine
	warningLine
	suspendedLine
	resumingLine
	hintLine
)

// palette paints each kind of line; EnableColor makes the choice ours,
// not fatih/color's own terminal detection.
var palette = map[lineKind]*color.Color{
	errorLine:     forced(color.FgRed),
	warningLine:   forced(color.FgYellow),
	suspendedLine: forced(color.FgMagenta),
	resumingLine:  forced(color.FgCyan),
	hintLine:      forced(color.Bold),
}

func forced(a ...color.Attribute) *color.Color {
	c := color.New(a...)
	c.EnableColor()
	return c
}

// classifyStdout recognises blkdebug's breakpoint lines and the failures
// qemu-io reports on stdout ("read failed: ...").
func classifyStdout(line string, prev lineKind) lineKind {
	switch {
	case strings.HasPrefix(line, "blkdebug: Suspended"):
		return suspendedLine
	case strings.HasPrefix(line, "blkdebug: Resuming"):
		return resumingLine
	case strings.Contains(line, " failed: "),
		strings.HasPrefix(line, "Pattern verification failed"),
		strings.HasPrefix(line, "Could not "):
		return errorLine
	}
	return plainLine
}

// classifyStderr: everything on stderr is an error except warnings
// (whose indented continuation lines keep the warning's colour) and
// gio's hints.
func classifyStderr(line string, prev lineKind) lineKind {
	switch {
	case strings.HasPrefix(line, "gio: did you mean"):
		return hintLine
	case strings.Contains(line, "warning:"), strings.HasPrefix(line, "WARNING:"):
		return warningLine
	case strings.HasPrefix(line, " ") && prev == warningLine:
		return warningLine
	}
	return errorLine
}

// colourWriter paints each line by its kind as it passes. It streams: a
// partial line is written at once (painted by what it has so far) and
// its rest keeps the same kind, so nothing is held back.
type colourWriter struct {
	w        io.Writer
	classify func(line string, prev lineKind) lineKind
	mid      bool     // the current line's start was already written
	kind     lineKind // the current line's kind
	prev     lineKind // the previous complete line's kind
	buf      []byte
}

func newColourWriter(w io.Writer, classify func(string, lineKind) lineKind) *colourWriter {
	return &colourWriter{w: w, classify: classify}
}

func (c *colourWriter) Write(p []byte) (int, error) {
	n := len(p)
	c.buf = c.buf[:0]
	for len(p) > 0 {
		seg, nl := p, false
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			seg, nl, p = p[:i], true, p[i+1:]
		} else {
			p = nil
		}
		if !c.mid {
			c.kind = c.classify(string(seg), c.prev)
		}
		if st := palette[c.kind]; st != nil && len(seg) > 0 {
			c.buf = append(c.buf, st.Sprint(string(seg))...)
		} else {
			c.buf = append(c.buf, seg...)
		}
		if nl {
			c.buf = append(c.buf, '\n')
			c.prev, c.mid = c.kind, false
		} else if len(seg) > 0 {
			c.mid = true
		}
	}
	if _, err := c.w.Write(c.buf); err != nil {
		return 0, err
	}
	return n, nil
}

// EnableColour paints the session's output from now on: stdout (out and
// everything printing through it, blkdebug included) and, with
// paintErr, stderr. paintErr says whether stderr is painted: it is a
// terminal, or
// --color=always. A stderr redirected to a file (gio 2>err at a
// terminal) gets no escape codes.
func EnableColour(s *commands.Session, out *StdioWriter, paintErr bool) {
	out.Flush()
	out.w = newColourWriter(out.w, classifyStdout)
	if paintErr {
		s.Err = newColourWriter(s.Err, classifyStderr)
	}
}
