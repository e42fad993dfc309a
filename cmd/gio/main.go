// Command gio is a qemu-io-compatible debugging shell over gio's own block
// layer. Its command line is qemu-io's; see README.md for what it adds.
package main

import (
	"fmt"
	"io"
	"os"

	"gio/blk"
	"gio/blk/drivers/blkverify"
	"gio/blk/drivers/bochs"
	"gio/blk/drivers/cloop"
	"gio/blk/drivers/compress"
	"gio/blk/drivers/cor"
	"gio/blk/drivers/dmg"
	"gio/blk/drivers/file"
	"gio/blk/drivers/luks"
	"gio/blk/drivers/nbd"
	"gio/blk/drivers/null"
	"gio/blk/drivers/parallels"
	"gio/blk/drivers/preallocate"
	"gio/blk/drivers/qcow"
	"gio/blk/drivers/qcow2"
	"gio/blk/drivers/qed"
	"gio/blk/drivers/quorum"
	"gio/blk/drivers/raw"
	"gio/blk/drivers/vdi"
	"gio/blk/drivers/vhdx"
	"gio/blk/drivers/vmdk"
	"gio/blk/drivers/vpc"
	"gio/blkdebug"
	"gio/commands"
	"gio/internal/getopt"
	"gio/repl"
)

const version = "0.1.0"

const usageText = `Usage: qemu-io [OPTIONS]... [-c STRING]... [file]
QEMU Disk exerciser

  --object OBJECTDEF   define an object such as 'secret' for
                       passwords and/or encryption keys
  --image-opts         treat file as option string
  -c, --cmd STRING     execute command with its arguments
                       from the given string
  -f, --format FMT     specifies the block driver to use
  -r, --read-only      export read-only
  -s, --snapshot       use snapshot file
  -n, --nocache        disable host cache, short for -t none
  -C, --copy-on-read   enable copy-on-read
  -m, --misalign       misalign allocations for O_DIRECT
  -k, --native-aio     use kernel AIO implementation
                       (Linux only, prefer use of -i)
  -i, --aio=MODE       use AIO mode (threads, native or io_uring)
  -t, --cache=MODE     use the given cache mode for the image
  -d, --discard=MODE   use the given discard mode for the image
  -T, --trace [[enable=]<pattern>][,events=<file>][,file=<file>]
                       specify tracing options
                       see qemu-img(1) man page for full description
  -U, --force-share    force shared permissions
  -h, --help           display this help and exit
  -V, --version        output version information and exit

See 'qemu-io -c help' for information on available commands.

See <https://qemu.org/contribute/report-a-bug> for how to report bugs.
More information on the QEMU project at <https://qemu.org>.
`

// Long-only option codes.
const (
	optImageOpts = 0x80 + iota
	optObject
	optClock
	optColor
	optRecord
	optTrace
	optTraceFormat
)

var longOpts = []getopt.LongOpt{
	{Name: "help", Short: 'h'},
	{Name: "version", Short: 'V'},
	{Name: "cmd", HasArg: true, Short: 'c'},
	{Name: "format", HasArg: true, Short: 'f'},
	{Name: "read-only", Short: 'r'},
	{Name: "snapshot", Short: 's'},
	{Name: "nocache", Short: 'n'},
	{Name: "copy-on-read", Short: 'C'},
	{Name: "misalign", Short: 'm'},
	{Name: "native-aio", Short: 'k'},
	{Name: "discard", HasArg: true, Short: 'd'},
	{Name: "cache", HasArg: true, Short: 't'},
	{Name: "trace", HasArg: true, Short: optTrace}, // gio's trace file; -T is QEMU's
	{Name: "trace-format", HasArg: true, Short: optTraceFormat},
	{Name: "object", HasArg: true, Short: optObject},
	{Name: "aio", HasArg: true, Short: 'i'},
	{Name: "image-opts", Short: optImageOpts},
	{Name: "force-share", Short: 'U'},
	{Name: "clock", HasArg: true, Short: optClock},
	{Name: "color", HasArg: true, Short: optColor},
	{Name: "record", HasArg: true, Short: optRecord},
}

func main() {
	stopSignals := commands.CleanupOnSignals(commands.TerminatingSignals...)
	defer stopSignals()
	tuneGC()
	stop := startProfile()
	code := run(os.Args[1:])
	stop()
	os.Exit(code)
}

// env is the shell's view of this program: gio's drivers.
var env = repl.Env{NewRegistry: func(out io.Writer) *blk.Registry {
	r := newRegistry(out)
	r.Exit = func(code int) {
		// A driver ends the program (quorum blkverify): what was
		// printed so far goes out first, as exit() flushes stdio.
		if f, ok := out.(interface{ Flush() }); ok {
			f.Flush()
		}
		os.Exit(code)
	}
	return r
}}

func newRegistry(out io.Writer) *blk.Registry {
	drivers := []*blk.Driver{file.Driver, file.HostDevice, file.HostCDROM, raw.Driver, cor.Driver, compress.Driver, quorum.Driver, blkverify.Driver, preallocate.Driver, qcow2.Driver, luks.Driver, vdi.Driver, vpc.Driver, vhdx.Driver, qed.Driver, qcow.Driver, vmdk.Driver, bochs.Driver, cloop.Driver, dmg.Driver, parallels.Driver, null.CoDriver, null.AIODriver,
		blkdebug.NewDriver(func() io.Writer { return out })}
	return withSecrets(blk.NewRegistry(append(drivers, nbd.Drivers...)...))
}

// qemuIOVersionText is what qemu-io -V prints: the qemu-io gio follows
// (Debian 12's 7.2.22).
const qemuIOVersionText = "qemu-io version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n" +
	"Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n"

func run(args []string) int {
	if sub, rest, ok := subcommand(args); ok {
		// Subcommands read no commands from a terminal: Ctrl-C ends
		// them, and their scratch images go too.
		defer commands.CleanupOnSignals(os.Interrupt)()
		return sub(rest)
	}
	stdoutTTY := repl.IsTerminal(os.Stdout)
	stdinTTY := repl.IsTerminal(os.Stdin)
	out := repl.NewStdioWriter(os.Stdout, stdoutTTY)
	errw := os.Stderr
	defer out.Flush()

	opts, pos, err := getopt.ParseLong(commands.ProgName, args, "hVc:d:f:rsnCmki:t:T:U", longOpts)
	if err != nil {
		fmt.Fprintln(errw, err)
		fmt.Fprint(out, usageText)
		return 1
	}
	var (
		cmds      []string
		o         commands.OpenOptions
		imageOpts bool
		clock     = ""
		colour    = repl.ColourAuto
		record    string
		tr        traceFlags
		qtrace    qemuTrace
	)
	report := func(format string, a ...any) int {
		out.Flush()
		fmt.Fprintf(errw, commands.ProgName+": "+format+"\n", a...)
		return 1
	}
	for _, op := range opts {
		if known, err := o.ApplyOpenFlag(op.Name, op.Arg); known {
			if err != nil {
				return report("%v", err)
			}
			continue
		}
		switch op.Name {
		case 'h':
			fmt.Fprint(out, usageText)
			if stdoutTTY {
				// At a terminal gio's own section follows; piped, the
				// text stays qemu-io's byte for byte (scripts compare it).
				fmt.Fprint(out, "\n"+gioUsageText)
			}
			return 0
		case 'V':
			// As -h: piped, qemu-io 7.2's text byte for byte (the
			// version gio answers as); at a terminal gio's own too.
			fmt.Fprint(out, qemuIOVersionText)
			if stdoutTTY {
				fmt.Fprintf(out, "gio version %s (qemu-io 7.2 compatible)\n", version)
			}
			return 0
		case 'c':
			cmds = append(cmds, op.Arg)
		case 'f':
			o.Format = op.Arg
		case 'm':
		case 'T':
			if code, stop := qtrace.option(op.Arg, out, errw); stop {
				return code
			}
		case optImageOpts:
			imageOpts = true
		case optObject:
			if code, stop := addObject(op.Arg, out); stop {
				return code
			}
		case optClock:
			if op.Arg != "virtual" && op.Arg != "real" {
				return report("Invalid clock option: %s (virtual or real)", op.Arg)
			}
			clock = op.Arg
		case optColor:
			// Colour is for the interactive shell; piped output never
			// has it unless --color=always.
			m, err := repl.ParseColourMode(op.Arg)
			if err != nil {
				return report("%v", err)
			}
			colour = m
		case optRecord:
			record = op.Arg
		case optTrace:
			tr.file = op.Arg
		case optTraceFormat:
			tr.format = op.Arg
		}
	}
	if len(pos) > 1 {
		fmt.Fprint(out, usageText)
		return 1
	}
	if !qtrace.start(errw) {
		return 1
	}
	if o.Format != "" && imageOpts {
		return report("--image-opts and -f are mutually exclusive")
	}
	interactive := len(cmds) == 0 && stdinTTY
	if !interactive {
		// The interactive shell takes Ctrl-C as "interrupt the
		// command"; anywhere else it ends gio, scratch images included.
		defer commands.CleanupOnSignals(os.Interrupt)()
	}
	if clock == "" {
		clock = "virtual"
		if interactive {
			clock = "real"
		}
	}
	var c blk.Clock = blk.NewVirtualClock()
	if clock == "real" {
		c = blk.NewRealClock()
	}
	s := env.NewSession(out, errw, c)
	defer s.Cleanup()
	if repl.UseColour(colour, interactive, stdoutTTY, os.Getenv) {
		repl.EnableColour(s, out, colour == repl.ColourAlways || repl.IsTerminal(os.Stderr))
	}
	if record != "" && !interactive {
		fmt.Fprintln(errw, "gio: --record records interactive sessions only; ignored")
	}
	s.ImageOpts = imageOpts
	if !tr.start(s) {
		return 1
	}
	// stderr is unbuffered; flushing stdout first is not what qemu-io
	// does, so stderr text goes straight out.
	if len(pos) == 1 {
		ok := true
		if imageOpts {
			d, good := s.ParseOptions(pos[0])
			if !good {
				return 1
			}
			o.Opts = d
			ok = s.OpenImage("", o)
		} else {
			o.EmptyName = pos[0] == ""
			ok = s.OpenImage(pos[0], o)
		}
		if !ok {
			return 1
		}
	}
	switch {
	case len(cmds) > 0:
		repl.RunCommands(s, cmds)
	case stdinTTY:
		repl.RunInteractive(s, out, repl.Options{Record: record})
	default:
		repl.RunStdin(s, out, os.Stdin)
	}
	if !s.CloseImage() {
		s.Failed = true
	}
	s.StopTrace()
	out.Flush()
	if s.Failed {
		return 1
	}
	return 0
}
