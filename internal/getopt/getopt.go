// Package getopt reproduces the behaviour of glibc's getopt(3) and
// getopt_long(3) as qemu-io 7.2 uses them, including the exact diagnostic
// texts, so that gio can print byte-identical complaints.
//
// qemu-io parses every shell command's flags with getopt (resetting optind
// per command) and its own command line with getopt_long. Both use GNU
// argument permutation: options may follow positional arguments, "--" ends
// option processing, and a lone "-" is an ordinary positional argument.
//
// The parsers here keep no global state: every call starts afresh, which is
// what qemu-io achieves by resetting optind before each command.
//
// Not emulated: the POSIXLY_CORRECT environment variable, the optstring
// prefixes '+', '-' and ':' (qemu-io uses none of them) and "-W foo". An
// optstring character followed by "::" takes an optional argument, which
// glibc only accepts attached ("-ofoo").
package getopt

import "strings"

// Opt is one option found on a command line, in order of appearance.
type Opt struct {
	// Name is the short option character. For a long option it is the
	// LongOpt.Short of the matched entry (0 for long-only options).
	Name byte
	// Long is the full name of the matched long option ("" when the
	// option was given in short form).
	Long string
	// Arg is the option's argument ("" when it takes none).
	Arg string
}

// LongOpt describes one long option for ParseLong (glibc's struct option).
type LongOpt struct {
	// Name is the option name without the leading "--".
	Name string
	// HasArg reports whether the option requires an argument
	// (required_argument); otherwise it is no_argument.
	HasArg bool
	// Short is the value getopt_long returns for the option, normally the
	// equivalent short option character. Zero means "long-only"; such
	// entries are identified by Opt.Long and are always considered
	// distinct from each other when checking for ambiguous prefixes (as
	// qemu-io gives each of them its own code).
	Short byte
}

// Error is a getopt diagnostic. Its text is exactly what glibc prints on
// stderr (without the trailing newline); the caller prints it and then its
// usage text.
type Error struct {
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// argKind is how an optstring character takes an argument.
type argKind int

const (
	noArg argKind = iota
	requiredArg
	optionalArg
)

// lookupShort finds option character c in optstring. glibc never accepts
// ':' (or ';', reserved for -W) as an option character, whatever the
// optstring says.
func lookupShort(optstring string, c byte) (argKind, bool) {
	if c == ':' || c == ';' {
		return noArg, false
	}
	i := strings.IndexByte(optstring, c)
	if i < 0 {
		return noArg, false
	}
	if i+1 < len(optstring) && optstring[i+1] == ':' {
		if i+2 < len(optstring) && optstring[i+2] == ':' {
			return optionalArg, true
		}
		return requiredArg, true
	}
	return noArg, true
}

// Parse parses args (the words after the command name) against optstring
// the way glibc getopt does for qemu-io's commands. cmd is argv[0], i.e. the
// command word as typed, which glibc uses as the prefix of its messages.
//
// It returns the options in order of appearance and the positional
// arguments in their original order. Parsing stops at the first error,
// which is an *Error:
//
//	CMD: invalid option -- 'x'
//	CMD: option requires an argument -- 'm'
func Parse(cmd string, args []string, optstring string) (opts []Opt, positional []string, err error) {
	return parse(cmd, args, optstring, nil)
}

// ParseLong parses a program command line (args without argv[0]) like glibc
// getopt_long with the given short optstring and long options. prog is the
// program name used in diagnostics ("qemu-io").
//
// Long options may be written "--name=value" or "--name value" and may be
// abbreviated to any unambiguous prefix (an exact match always wins).
// Errors, as *Error, read:
//
//	PROG: unrecognized option '--bogus'
//	PROG: option '--cmd' requires an argument
//	PROG: option '--help' doesn't allow an argument
//	PROG: option '--c' is ambiguous; possibilities: '--cmd' '--copy-on-read' '--cache'
//	PROG: invalid option -- 'x'
//	PROG: option requires an argument -- 'f'
func ParseLong(prog string, args []string, optstring string, longopts []LongOpt) (opts []Opt, positional []string, err error) {
	if longopts == nil {
		// A nil table would make parse treat "--x" as a short cluster;
		// getopt_long with an empty table still treats it as long.
		longopts = []LongOpt{}
	}
	return parse(prog, args, optstring, longopts)
}

// parse is the shared scanner; longopts == nil means plain getopt, where
// "--name" is just a cluster of short options '-', 'n', ...
func parse(prog string, args []string, optstring string, longopts []LongOpt) ([]Opt, []string, error) {
	var opts []Opt
	// Most words are positional: one allocation instead of a growing
	// slice per command.
	positional := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			// GNU permutation: remember it and keep scanning.
			positional = append(positional, a)
			continue
		}
		if longopts != nil && a[1] == '-' {
			o, consumed, err := parseLongOpt(prog, a[2:], args[i+1:], longopts)
			if err != nil {
				return opts, positional, err
			}
			opts = append(opts, o)
			i += consumed
			continue
		}
		// A cluster of short options, possibly ending in an argument.
		for j := 1; j < len(a); j++ {
			c := a[j]
			kind, ok := lookupShort(optstring, c)
			if !ok {
				return opts, positional, &Error{Msg: prog + ": invalid option -- '" + string([]byte{c}) + "'"}
			}
			if kind == noArg {
				opts = append(opts, Opt{Name: c})
				continue
			}
			if j+1 < len(a) {
				// Attached argument: the rest of the word.
				opts = append(opts, Opt{Name: c, Arg: a[j+1:]})
				break
			}
			if kind == optionalArg {
				opts = append(opts, Opt{Name: c})
				break
			}
			if i+1 >= len(args) {
				return opts, positional, &Error{Msg: prog + ": option requires an argument -- '" + string([]byte{c}) + "'"}
			}
			// The next word is the argument whatever it looks like
			// ("-c -c length" takes "-c" as the command).
			i++
			opts = append(opts, Opt{Name: c, Arg: args[i]})
			break
		}
	}
	return opts, positional, nil
}

// parseLongOpt handles one "--..." word; body is the text after "--" and
// rest the words after it. It returns the option and how many following
// words it consumed.
func parseLongOpt(prog, body string, rest []string, longopts []LongOpt) (Opt, int, error) {
	name, value, hasValue := strings.Cut(body, "=")

	found := -1
	for k, lo := range longopts {
		if lo.Name == name {
			found = k
			break
		}
	}
	if found < 0 {
		// glibc: the first prefix match is the candidate; any later
		// prefix match that behaves differently makes it ambiguous. The
		// reported set contains the candidate and every differing match,
		// in table order.
		var ambig []int
		for k, lo := range longopts {
			if !strings.HasPrefix(lo.Name, name) {
				continue
			}
			if found < 0 {
				found = k
				continue
			}
			if !sameBehaviour(longopts[found], lo) {
				if ambig == nil {
					ambig = []int{found}
				}
				ambig = append(ambig, k)
			}
		}
		if ambig != nil {
			var b strings.Builder
			b.WriteString(prog + ": option '--" + body + "' is ambiguous; possibilities:")
			for _, k := range ambig {
				b.WriteString(" '--" + longopts[k].Name + "'")
			}
			return Opt{}, 0, &Error{Msg: b.String()}
		}
	}
	if found < 0 {
		return Opt{}, 0, &Error{Msg: prog + ": unrecognized option '--" + body + "'"}
	}
	lo := longopts[found]
	o := Opt{Name: lo.Short, Long: lo.Name}
	switch {
	case hasValue && !lo.HasArg:
		return Opt{}, 0, &Error{Msg: prog + ": option '--" + lo.Name + "' doesn't allow an argument"}
	case hasValue:
		o.Arg = value
		return o, 0, nil
	case lo.HasArg:
		if len(rest) == 0 {
			return Opt{}, 0, &Error{Msg: prog + ": option '--" + lo.Name + "' requires an argument"}
		}
		o.Arg = rest[0]
		return o, 1, nil
	}
	return o, 0, nil
}

// sameBehaviour mirrors glibc's test (has_arg, flag, val all equal) that
// lets two abbreviation matches coexist without an ambiguity error.
func sameBehaviour(a, b LongOpt) bool {
	if a.Short == 0 || b.Short == 0 {
		return false
	}
	return a.HasArg == b.HasArg && a.Short == b.Short
}
