// Package commands implements qemu-io's commands over the blk block layer:
// a table of commands (name, alias, synopsis, help, flags, argument counts,
// handler), the dispatcher with qemu-io's checks and messages, and the
// session state the commands share.
package commands

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"gio/blk"
	"gio/internal/cvt"
	"gio/internal/getopt"
)

// ProgName prefixes error_report-style messages. qemu-io's own name is
// kept so that expected outputs written for qemu-io (qemu-iotests .out
// files) apply to gio unchanged.
const ProgName = "qemu-io"

// Command is one qemu-io command: data plus a function.
type Command struct {
	Name    string
	Alias   string
	Args    string // synopsis, e.g. "[-abCqv] [-P pattern [-s off] [-l len]] off len"
	Oneline string
	Help    string // extended help, printed after the summary by "help CMD"
	// Flags are the command's options (the getopt option string comes
	// from them); none for commands that parse their words themselves.
	Flags []Flag
	// MinArgs and MaxArgs bound the words after the command name
	// (options included); MaxArgs -1 means unbounded.
	MinArgs, MaxArgs int
	NeedsFile        bool
	// Write commands need write permission on the image.
	Write bool
	// Family groups commands in gio's help listing.
	Family string
	// Run executes the command. args excludes the command word; name is
	// the word as typed. It returns nil, errUsage, or errFailed (message
	// already printed).
	Run func(s *Session, name string, opts []getopt.Opt, args []string) error
	// RawArgs makes the dispatcher skip getopt (alloc, sleep, ...).
	RawArgs bool
	// CheckOpts, when set, checks the values of the options getopt
	// parsed before it stopped at a bad option: qemu-io's getopt loop
	// rejects a bad value (a pattern, a cache mode) as it meets it, so
	// "read -P 0x100 -x 0 1" fails on the pattern, not on -x. It returns
	// nil (the values are good: the getopt error stands), errFailed (a
	// bad value, reported) or errDone (the command ended there, as
	// aio_read -i does).
	CheckOpts func(s *Session, opts []getopt.Opt) error
	// Hidden commands are gio's own: left out of the qemu-io-compatible
	// "help" listing, shown by "help gio".
	Hidden bool
	// GioArgs are gio-only words the command accepts beyond qemu-io's
	// argument count (map -s); any other word is counted as usual.
	GioArgs []string
	// Subs are the subcommand words a RawArgs command takes first
	// (trace start|stop|view), for completion and help.
	Subs []Sub
}

var (
	// errUsage asks the dispatcher to print the command's usage line.
	errUsage = errors.New("usage")
	// errFailed marks a failure whose message was already printed.
	errFailed = errors.New("command failed")
	// errDone (from Command.CheckOpts) ends a command that succeeded.
	errDone = errors.New("command done")
)

// Usage returns "NAME ARGS -- ONELINE" with the given name.
func (c *Command) Usage(name string) string {
	if c.Args == "" && c.Name != "map" {
		return fmt.Sprintf("%s -- %s", name, c.Oneline)
	}
	return fmt.Sprintf("%s %s -- %s", name, c.Args, c.Oneline)
}

// All returns every command, in help order.
func All() []*Command {
	var all []*Command
	all = append(all, ioCommands()...)
	all = append(all, aioCommands()...)
	all = append(all, imageCommands()...)
	all = append(all, debugCommands()...)
	all = append(all, shellCommands()...)
	all = append(all, gioCommands()...)
	all = append(all, benchCommands()...)
	all = append(all, traceCommands()...)
	all = append(all, nbdCommands()...)
	all = append(all, checkCommands()...)
	return all
}

// sharedTable is the table of All, built once: sessions only read it,
// and explore makes a session per schedule.
var sharedTable = sync.OnceValue(func() *Table { return NewTable(All()) })

// Table is a command lookup table.
type Table struct {
	cmds   []*Command
	byName map[string]*Command
}

// NewTable indexes cmds by name and alias; a duplicate is a programming
// error and panics (a test covers the shipped table).
func NewTable(cmds []*Command) *Table {
	t := &Table{cmds: cmds, byName: map[string]*Command{}}
	for _, c := range cmds {
		for _, n := range []string{c.Name, c.Alias} {
			if n == "" {
				continue
			}
			if _, dup := t.byName[n]; dup {
				panic("commands: duplicate command name " + n)
			}
			t.byName[n] = c
		}
	}
	return t
}

// Lookup finds a command by exact name or alias.
func (t *Table) Lookup(name string) *Command { return t.byName[name] }

// Commands returns the commands sorted by name (qemu-io's help order).
func (t *Table) Commands() []*Command {
	cs := append([]*Command(nil), t.cmds...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	return cs
}

// Names returns every name and alias (for completion).
func (t *Table) Names() []string {
	var ns []string
	for n := range t.byName {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// SplitLine splits a command line the way qemu-io does: on spaces only,
// runs collapsed; tabs and quotes are ordinary characters.
func SplitLine(line string) []string {
	// One allocation per line: 20000 piped commands all stay in the
	// peak RSS while their requests are in flight (see patternBuf).
	n := 0
	for w := range strings.SplitSeq(line, " ") {
		if w != "" {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	words := make([]string, 0, n)
	for w := range strings.SplitSeq(line, " ") {
		if w != "" {
			words = append(words, w)
		}
	}
	return words
}

// Execute runs one command line. It reports whether the command
// succeeded; failures are also recorded in s.Failed.
func (s *Session) Execute(line string) bool {
	words := SplitLine(line)
	if len(words) == 0 {
		return true
	}
	ok := s.dispatch(words)
	if !ok {
		s.Failed = true
	}
	return ok
}

func (s *Session) dispatch(words []string) bool {
	name, args := words[0], words[1:]
	c := s.Table.Lookup(name)
	if c == nil {
		fmt.Fprintf(s.Err, "command \"%s\" not found\n", name)
		if s.Suggest != nil {
			s.Suggest(name, s.commandNames())
		}
		return false
	}
	if c.NeedsFile && s.Img == nil {
		fmt.Fprintf(s.Err, "no file open, try 'help open'\n")
		return false
	}
	s.lastWords = args
	if (len(args) < c.MinArgs || (c.MaxArgs >= 0 && len(args) > c.MaxArgs)) && !onlyGioArgs(c, args) {
		switch {
		case c.MaxArgs < 0:
			fmt.Fprintf(s.Err, "bad argument count %d to %s, expected at least %d arguments\n", len(args), name, c.MinArgs)
		case c.MinArgs == c.MaxArgs:
			fmt.Fprintf(s.Err, "bad argument count %d to %s, expected %d arguments\n", len(args), name, c.MinArgs)
		default:
			fmt.Fprintf(s.Err, "bad argument count %d to %s, expected between %d and %d arguments\n", len(args), name, c.MinArgs, c.MaxArgs)
		}
		return false
	}
	if c.Write && s.Img != nil && s.Img.ReadOnly() {
		s.errorReport("Block node is read-only")
		return false
	}
	if c.Write && s.Img != nil {
		// qemu-io adds what the command needs to the image's
		// permissions (and keeps it): write, and resize for truncate.
		// Another user of the image may object (image locks).
		need := blk.PermWrite
		if c.Name == "truncate" {
			need |= blk.PermResize
		}
		if err := s.Img.TakePerm(need); err != nil {
			s.errorReport("%s", errText(err))
			return false
		}
	}
	var opts []getopt.Opt
	pos := args
	if !c.RawArgs {
		var err error
		opts, pos, err = getopt.Parse(c.Name, args, OptString(c.Flags))
		if err != nil {
			if c.CheckOpts != nil {
				switch e := c.CheckOpts(s, opts); e {
				case errDone:
					return true
				case nil:
				default:
					return false
				}
			}
			// getopt names the command as typed ("r: invalid option").
			msg := err.Error()
			if name != c.Name && strings.HasPrefix(msg, c.Name+":") {
				msg = name + msg[len(c.Name):]
			}
			fmt.Fprintln(s.Err, msg)
			s.usage(c)
			return false
		}
	}
	err := c.Run(s, name, opts, pos)
	switch {
	case err == nil:
		return true
	case errors.Is(err, errUsage):
		s.usage(c)
	case errors.Is(err, errFailed):
	default:
		s.errorReport("%s", err)
	}
	return false
}

// commandNames lists the command names, aliases left out.
func (s *Session) commandNames() []string {
	var ns []string
	for _, c := range s.Table.cmds {
		ns = append(ns, c.Name)
	}
	return ns
}

func onlyGioArgs(c *Command, args []string) bool {
	if len(c.GioArgs) == 0 || len(args) == 0 {
		return false
	}
	for _, a := range args {
		found := false
		for _, g := range c.GioArgs {
			found = found || a == g
		}
		if !found {
			return false
		}
	}
	return true
}

func (s *Session) usage(c *Command) { fmt.Fprintln(s.Out, c.Usage(c.Name)) }

// errorReport prints an error_report-style line on stderr.
func (s *Session) errorReport(format string, args ...any) {
	fmt.Fprintf(s.Err, ProgName+": "+format+"\n", args...)
}

// Session is the state commands share: the streams, the open image, the
// loop, the sticky failure flag.
type Session struct {
	Out io.Writer // stdout (buffered like C stdio by the shell)
	Err io.Writer // stderr, unbuffered
	// Flush flushes Out (before sigraise, at exit).
	Flush func()
	Table *Table
	Reg   *blk.Registry
	Loop  *blk.Loop
	Img   *blk.Backend
	// ImageOpts is set by --image-opts: open's path is an option string.
	ImageOpts bool
	Failed    bool
	Quit      bool
	// Interactive is set by the interactive shell: "help" then points
	// to "help gio".
	Interactive bool
	// Suggest, if set, is called with an unknown word and the words it
	// may have meant: a command name, a blkdebug event (the shell prints
	// a "did you mean"). It is unset outside the interactive shell, where
	// the output stays qemu-io's.
	Suggest func(word string, candidates []string)
	// Recorder is the interactive shell's recorder (the record command);
	// nil outside interactive mode.
	Recorder Recorder
	// MisalignBuffers mirrors qemu-io -m (no visible effect).
	MisalignBuffers bool
	// Explore, if set, is "gio explore" with its arguments (the explore
	// command); it returns gio explore's exit status.
	Explore func(args []string, out, errw io.Writer) int
	// lastWords are the words after the command name as typed.
	lastWords []string
	// scratchDir holds images made by create; scratch maps their names
	// to paths.
	scratchDir string
	scratch    map[string]string
	// createLines are the create commands that succeeded, as typed,
	// and openLine the open command equivalent to how the open image
	// was opened (ReplayLines).
	createLines []string
	openLine    string
	// ioBuf is the buffer synchronous read and write commands reuse
	// (syncBuf in iobuf.go).
	ioBuf []byte
	// tracing is the trace being written (trace.go), nil when off.
	tracing *traceState
	// dump, if set, takes the data of "read -v" and "aio_read -v"
	// instead of qemu-io's hex dump (SetDump).
	dump func(w io.Writer, off int64, data []byte)
	// mark is the state Rewind goes back to (drive.go).
	mark *sessionMark
}

// SetDump makes "read -v", "readv -v" and "aio_read -v" hand their data
// to f, which writes what stands for the hex dump on w (the session's
// Out, in the dump's place among the other lines), instead of printing
// the dump. fsx and explore read the data back from their own records:
// formatting and parsing hex dumps was a quarter of explore's time. f
// must not keep data (the session reuses the buffer); nil restores the
// hex dump.
func (s *Session) SetDump(f func(w io.Writer, off int64, data []byte)) { s.dump = f }

// hexDump prints read -v's data: qemu-io's hex dump, unless SetDump
// said otherwise.
func (s *Session) hexDump(off int64, data []byte) {
	if s.dump != nil {
		s.dump(s.Out, off, data)
		return
	}
	cvt.HexDump(s.Out, off, data)
}

// NewSession returns a session with the standard command table.
func NewSession(out, errw io.Writer, reg *blk.Registry, loop *blk.Loop) *Session {
	s := &Session{Out: out, Err: errw, Flush: func() {}, Table: sharedTable(), Reg: reg, Loop: loop}
	if reg != nil {
		// Drivers' open-time warnings, as QEMU's warn_report prints them.
		reg.Warn = func(msg string) { s.errorReport("%s", msg) }
		reg.Stderr = errw
		reg.ReportErr = func(err error) { s.errorReport("%s", errText(err)) }
	}
	return s
}
