package main

import (
	_ "embed"
	"errors"
	"fmt"
	"gio/internal/cutils"
	"io"
	"os"
	"strings"
	"syscall"

	"gio/commands"
	"gio/internal/cvt"
)

// QEMU's -T option (trace_opt_parse). gio emits none of QEMU's trace
// events, but it takes the option as qemu-io 7.2 does, so that a command
// line with -T behaves the same: "-T help" lists the event names qemu-io
// 7.2 knows, a name that is none of them is warned about, an events= file
// is read line by line, and a file= log is created (empty: nothing is
// ever traced into it). gio's own request trace is --trace FILE.

// qemuTraceEvents is the list "qemu-io -T help" prints (Debian's qemu-io
// 7.2), one name a line.
//
//go:embed qemu-trace-events.txt
var qemuTraceEvents string

// qemuTrace is what the -T options asked for.
type qemuTrace struct {
	logFile string // file=: the last one counts
}

// traceOpt is one name=value of a -T argument.
type traceOpt struct{ name, value string }

// parseTraceOpts is QEMU's opts_do_parse for the "trace" option list
// (enable, events, file; the first option may go without "enable="):
// "a,,b" is a comma, a bare name is a deprecated flag, "help" or "?" as
// a later option asks for the list of options (help reported true).
func parseTraceOpts(arg string, warn func(string)) (opts []traceOpt, help bool, err error) {
	// opts_parse_id: the first "id" (no implicit first option here; a
	// bare "id" is id=on) must be an identifier, before anything else.
	for p := arg; p != ""; {
		var name, value string
		if n := strings.IndexAny(p, "=,"); n >= 0 && p[n] == '=' {
			name = p[:n]
			value, p = cutils.OptValue(p[n+1:])
		} else {
			name, p = cutils.OptValue(p)
			value = "on"
			if strings.HasPrefix(name, "no") {
				name, value = name[2:], "off"
			}
		}
		if name == "id" {
			if !wellFormedID(value) {
				return nil, false, fmt.Errorf("Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.")
			}
			break
		}
	}
	first := true
	for p := arg; p != ""; {
		n := strings.IndexAny(p, "=,")
		var o traceOpt
		if n < 0 || p[n] != '=' {
			if first {
				o.name = "enable"
				o.value, p = cutils.OptValue(p)
			} else {
				o.name, p = cutils.OptValue(p)
				if o.name == "help" || o.name == "?" {
					return nil, true, nil
				}
				given := o.name
				o.value = "on"
				if rest, ok := strings.CutPrefix(o.name, "no"); ok {
					o.name, o.value = rest, "off"
				}
				warn(fmt.Sprintf("warning: short-form boolean option '%s' deprecated\nPlease use %s=%s instead", given, o.name, o.value))
			}
		} else {
			o.name = p[:n]
			o.value, p = cutils.OptValue(p[n+1:])
		}
		first = false
		if o.name == "id" {
			continue
		}
		switch o.name {
		case "enable", "events", "file":
		default:
			return nil, false, fmt.Errorf("Invalid parameter '%s'", o.name)
		}
		opts = append(opts, o)
	}
	return opts, false, nil
}

// last returns the value of the last option called name.
func lastOpt(opts []traceOpt, name string) (string, bool) {
	for i := len(opts) - 1; i >= 0; i-- {
		if opts[i].name == name {
			return opts[i].value, true
		}
	}
	return "", false
}

// option handles one -T argument; stop says the program ends with code.
func (t *qemuTrace) option(arg string, out, errw io.Writer) (code int, stop bool) {
	flush := func() {
		if f, ok := out.(interface{ Flush() error }); ok {
			f.Flush()
		}
	}
	opts, help, err := parseTraceOpts(arg, func(w string) {
		flush()
		fmt.Fprintf(errw, "%s: %s\n", commands.ProgName, w)
	})
	if help {
		fmt.Fprint(out, "trace options:\n  enable=<str>\n  events=<str>\n  file=<str>\n")
		return 1, true
	}
	if err != nil {
		flush()
		fmt.Fprintf(errw, "%s: %v\n", commands.ProgName, err)
		return 1, true
	}
	if v, ok := lastOpt(opts, "enable"); ok {
		if code, stop := t.enable(v, "", out, errw); stop {
			return code, true
		}
	}
	if fn, ok := lastOpt(opts, "events"); ok {
		data, err := os.ReadFile(fn)
		if err != nil && !errors.Is(err, syscall.EISDIR) {
			// (fopen opens a directory; reading it gives no line.)
			flush()
			fmt.Fprintf(errw, "%s:%s: %s\n", commands.ProgName, fn, cvt.Strerror(err))
			return 1, true
		}
		for i, line := range strings.SplitAfter(string(data), "\n") {
			line = strings.TrimSuffix(line, "\n")
			if line == "" || line[0] == '#' {
				continue
			}
			if code, stop := t.enable(line, fmt.Sprintf("%s:%d:", fn, i+1), out, errw); stop {
				return code, true
			}
		}
	}
	if fn, ok := lastOpt(opts, "file"); ok {
		t.logFile = fn
	}
	return 0, false
}

// enable is trace_enable_events for one pattern: "help" lists the
// events and ends the program; a name without wildcards that is no
// event is warned about (loc is the events file's "FILE:LINE:").
func (t *qemuTrace) enable(pattern, loc string, out, errw io.Writer) (int, bool) {
	if pattern == "help" || pattern == "?" {
		fmt.Fprint(out, qemuTraceEvents)
		return 0, true
	}
	name := strings.TrimPrefix(pattern, "-")
	if strings.ContainsAny(name, "*?[") {
		return 0, false
	}
	for _, ev := range strings.Split(qemuTraceEvents, "\n") {
		if ev != "" && ev == name {
			return 0, false
		}
	}
	if f, ok := out.(interface{ Flush() error }); ok {
		f.Flush()
	}
	prefix := commands.ProgName + ": "
	if loc != "" {
		prefix = commands.ProgName + ":" + loc + " "
	}
	fmt.Fprintf(errw, "%swarning: trace event '%s' does not exist\n", prefix, name)
	return 0, false
}

// start creates the file= log (qemu_set_log_filename), as qemu-io does
// after its options whether or not anything is traced.
func (t *qemuTrace) start(errw io.Writer) bool {
	if t.logFile == "" {
		return true
	}
	f, err := os.OpenFile(t.logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		fmt.Fprintf(errw, "%s: Error opening logfile %s: %s\n", commands.ProgName, t.logFile, cvt.Strerror(err))
		return false
	}
	return f.Close() == nil
}

// wellFormedID is QEMU's id_wellformed: a letter, then letters, digits,
// '-', '.' and '_'.
func wellFormedID(id string) bool {
	if id == "" || !isLetter(id[0]) {
		return false
	}
	for i := 1; i < len(id); i++ {
		c := id[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
