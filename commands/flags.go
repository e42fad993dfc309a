package commands

import (
	"fmt"
	"strings"

	"gio/blk"
	"gio/internal/getopt"
)

// Flag is one option letter of a command, declared once: the getopt
// option string, completion (repl) and the checks of the command's
// synopsis (a test) all come from the command's Flags. The help texts of
// qemu-io's commands stay qemu-io's verbatim.
type Flag struct {
	Letter byte
	// Arg names the option's argument as the synopsis does ("cache");
	// "" for an option without one.
	Arg string
	// Values are the argument's accepted values, for completion and for
	// Check; nil when any value goes (a number, options).
	Values []string
	// Path marks an argument that is a file name (completion).
	Path bool
	// Desc is the option's line in a help text made by FlagHelp
	// (gio's own commands; qemu-io's keep qemu-io's text verbatim).
	// Further lines after a newline are indented under the first.
	Desc string
	// Long is the option's long name on a program's command line
	// (qemu-io's --cache for open's -t), "" when it has none.
	Long string
	// Keys, for an option string argument ("a=b,c=d"), are the keys it
	// takes (completion); nil for open's and reopen's -o, whose keys
	// are the drivers' runtime options (blk.Driver.Options).
	Keys []blk.Option
}

// Sub is a subcommand of a command that parses its own words (trace
// start, trace view): its flags and what its other words are, declared
// once for completion as Flags are for a command.
type Sub struct {
	Name  string
	Flags []Flag
	// Paths marks a subcommand whose other words are file names.
	Paths bool
}

// SubFor returns the subcommand named name, or nil.
func (c *Command) SubFor(name string) *Sub {
	for i := range c.Subs {
		if c.Subs[i].Name == name {
			return &c.Subs[i]
		}
	}
	return nil
}

// FlagFor returns the subcommand's flag for letter, or nil.
func (s *Sub) FlagFor(letter byte) *Flag {
	for i := range s.Flags {
		if s.Flags[i].Letter == letter {
			return &s.Flags[i]
		}
	}
	return nil
}

// The values of the shared mode options, in QEMU's spelling.
var (
	CacheModes    = []string{"directsync", "none", "off", "unsafe", "writeback", "writethrough"}
	DiscardModes  = []string{"ignore", "off", "on", "unmap"}
	AIOModes      = []string{"io_uring", "native", "threads"}
	PreallocModes = []string{"falloc", "full", "metadata", "off"}
	CreateFormats = []string{"luks", "parallels", "qcow", "qcow2", "qed", "raw", "vdi", "vhdx", "vmdk", "vpc"}
	// TraceFormats are the trace file formats (trace start -f, the
	// program's --trace-format), as package trace parses them.
	TraceFormats = []string{"json", "jsonl"}
)

// OptString is the getopt option string of flags, in their order.
func OptString(flags []Flag) string {
	var b strings.Builder
	for _, f := range flags {
		b.WriteByte(f.Letter)
		if f.Arg != "" {
			b.WriteByte(':')
		}
	}
	return b.String()
}

// FlagHelp is the option part of a help text, in qemu-io's layout
// (" -f, -- description"), one entry per flag with a Desc.
func FlagHelp(flags []Flag) string {
	var b strings.Builder
	for _, f := range flags {
		if f.Desc == "" {
			continue
		}
		fmt.Fprintf(&b, " -%c, -- %s\n", f.Letter, strings.ReplaceAll(f.Desc, "\n", "\n       "))
	}
	return b.String()
}

// FlagFor returns the flag for letter, or nil.
func (c *Command) FlagFor(letter byte) *Flag {
	for i := range c.Flags {
		if c.Flags[i].Letter == letter {
			return &c.Flags[i]
		}
	}
	return nil
}

// valid reports whether v is one of the flag's values (any value when
// the flag lists none).
func (f *Flag) valid(v string) bool {
	if f.Values == nil {
		return true
	}
	for _, w := range f.Values {
		if w == v {
			return true
		}
	}
	return false
}

// openFlags are the options open takes, shared with gio's command line
// (cmd/gio) and "gio run": ApplyOpenFlag interprets them.
var openFlags = []Flag{
	{Letter: 's', Long: "snapshot"}, {Letter: 'n', Long: "nocache"}, {Letter: 'C', Long: "copy-on-read"},
	{Letter: 'r', Long: "read-only"},
	{Letter: 'o', Arg: "options"},
	{Letter: 'k', Long: "native-aio"},
	{Letter: 'i', Arg: "aio", Values: AIOModes, Long: "aio"},
	{Letter: 't', Arg: "cache", Values: CacheModes, Long: "cache"},
	{Letter: 'd', Arg: "discard", Values: DiscardModes, Long: "discard"},
	{Letter: 'U', Long: "force-share"},
}

// OpenImageFlags are open's flags that a program's command line takes
// for the image it opens (all but -o), with their long names.
func OpenImageFlags() []Flag {
	var fs []Flag
	for _, f := range openFlags {
		if f.Letter != 'o' {
			fs = append(fs, f)
		}
	}
	return fs
}

// LongOpts are the getopt_long entries of the flags that have a long
// name, in their order.
func LongOpts(flags []Flag) []getopt.LongOpt {
	var l []getopt.LongOpt
	for _, f := range flags {
		if f.Long != "" {
			l = append(l, getopt.LongOpt{Name: f.Long, HasArg: f.Arg != "", Short: f.Letter})
		}
	}
	return l
}

// ApplyOpenFlag records one of open's flags (all but -o, whose options
// need a session to parse) in o. The error is QEMU's message for a bad
// value ("Invalid cache option: x"). It reports false for a letter that
// is not an open flag.
func (o *OpenOptions) ApplyOpenFlag(letter byte, arg string) (bool, error) {
	switch letter {
	case 's':
		o.Snapshot = true
	case 'n':
		// -n and -t set the same cache flags: the last one wins.
		o.NoCache = true
		o.Cache = "none"
	case 'C':
		o.CopyOnRead = true
	case 'r':
		o.ReadOnly = true
	case 'k':
		o.NativeAIO = true
	case 'U':
		o.ForceShare = true
	case 't':
		if !openFlag('t').valid(arg) {
			return true, fmt.Errorf("Invalid cache option: %s", arg)
		}
		o.Cache = arg
	case 'd':
		if !openFlag('d').valid(arg) {
			return true, fmt.Errorf("Invalid discard option: %s", arg)
		}
		o.Discard = arg
	case 'i':
		if !openFlag('i').valid(arg) {
			return true, fmt.Errorf("Invalid aio option: %s", arg)
		}
		o.SetAIO(arg)
	default:
		return false, nil
	}
	return true, nil
}

func openFlag(letter byte) *Flag {
	for i := range openFlags {
		if openFlags[i].Letter == letter {
			return &openFlags[i]
		}
	}
	panic("commands: no open flag -" + string(letter))
}
