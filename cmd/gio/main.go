// Command gio is a qemu-io-compatible debugging shell over gio's own block
// layer. Its command line is qemu-io's; see README.md for what it adds.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gio/blk"
	"gio/blk/drivers/cor"
	"gio/blk/drivers/file"
	"gio/blk/drivers/nbd"
	"gio/blk/drivers/null"
	"gio/blk/drivers/qcow2"
	"gio/blk/drivers/raw"
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
	{Name: "trace", HasArg: true, Short: 'T'},
	{Name: "object", HasArg: true, Short: optObject},
	{Name: "aio", HasArg: true, Short: 'i'},
	{Name: "image-opts", Short: optImageOpts},
	{Name: "force-share", Short: 'U'},
	{Name: "clock", HasArg: true, Short: optClock},
	{Name: "color", HasArg: true, Short: optColor},
	{Name: "record", HasArg: true, Short: optRecord},
}

func main() {
	tuneGC()
	stop := startProfile()
	code := run(os.Args[1:])
	stop()
	os.Exit(code)
}

// env is the shell's view of this program: gio's drivers.
var env = repl.Env{NewRegistry: func(out io.Writer) *blk.Registry {
	r := blk.NewRegistry(file.Driver, raw.Driver, qcow2.Driver, null.CoDriver, null.AIODriver,
		blkdebug.NewDriver(func() io.Writer { return out }))
	for _, d := range nbd.Drivers {
		r.Register(d)
	}
	r.Register(cor.Driver)
	return r
}}

func run(args []string) int {
	if len(args) > 0 {
		switch {
		case args[0] == "run":
			return runScript(args[1:])
		case args[0] == "test":
			return runTests(args[1:])
		case args[0] == "bench":
			return runBench(args[1:])
		case args[0] == "fsx":
			return runFsx(args[1:])
		case args[0] == "nbd":
			return runNBD(args[1:])
		case strings.HasSuffix(args[0], ".gio") && !strings.HasPrefix(args[0], "-"):
			return runScript(args)
		}
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
	)
	report := func(format string, a ...any) int {
		out.Flush()
		fmt.Fprintf(errw, commands.ProgName+": "+format+"\n", a...)
		return 1
	}
	for _, op := range opts {
		switch op.Name {
		case 'h':
			fmt.Fprint(out, usageText)
			return 0
		case 'V':
			fmt.Fprintf(out, "gio version %s (qemu-io 7.2 compatible)\n", version)
			return 0
		case 'c':
			cmds = append(cmds, op.Arg)
		case 'f':
			o.Format = op.Arg
		case 'r':
			o.ReadOnly = true
		case 's':
			o.Snapshot = true
		case 'n':
			// -n and -t set the same cache flags: the last one wins.
			o.NoCache = true
			o.Cache = "none"
		case 'C':
			o.CopyOnRead = true
		case 'm':
		case 'k':
			o.NativeAIO = true
		case 'd':
			switch op.Arg {
			case "ignore", "off", "unmap", "on":
				o.Discard = op.Arg
			default:
				return report("Invalid discard option: %s", op.Arg)
			}
		case 't':
			switch op.Arg {
			case "none", "off", "directsync", "writeback", "unsafe", "writethrough":
				o.Cache = op.Arg
			default:
				return report("Invalid cache option: %s", op.Arg)
			}
		case 'i':
			switch op.Arg {
			case "threads", "native", "io_uring":
				o.SetAIO(op.Arg)
			default:
				return report("Invalid aio option: %s", op.Arg)
			}
		case 'T':
			// QEMU trace events: accepted, there are none to enable.
		case 'U':
			o.ForceShare = true
		case optImageOpts:
			imageOpts = true
		case optObject:
			return report("Parameter 'qom-type' does not accept value '%s'", op.Arg)
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
		}
	}
	if len(pos) > 1 {
		fmt.Fprint(out, usageText)
		return 1
	}
	if o.Format != "" && imageOpts {
		return report("--image-opts and -f are mutually exclusive")
	}
	interactive := len(cmds) == 0 && stdinTTY
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
		repl.EnableColour(s, out)
	}
	if record != "" && !interactive {
		fmt.Fprintln(errw, "gio: --record records interactive sessions only; ignored")
	}
	s.ImageOpts = imageOpts
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
		img := ""
		if len(pos) == 1 {
			img = pos[0]
		}
		repl.RunInteractive(s, out, repl.Options{Record: record, Image: img})
	default:
		repl.RunStdin(s, out, os.Stdin)
	}
	if !s.CloseImage() {
		s.Failed = true
	}
	out.Flush()
	if s.Failed {
		return 1
	}
	return 0
}

// runScript is "gio run FILE.gio [image]": the script's commands with
// errors located as FILE:LINE, exit status 1 when a command failed.
func runScript(args []string) int {
	if len(args) < 1 || len(args) > 2 {
		fmt.Fprintln(os.Stderr, "usage: gio run FILE.gio [image]")
		return 2
	}
	src, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio: %v\n", err)
		return 1
	}
	image := ""
	if len(args) == 2 {
		image = args[1]
	}
	if !env.RunScript(args[0], string(src), image, os.Stdout, os.Stderr, true) {
		return 1
	}
	return 0
}

// runTests is "gio test [-update] [-run REGEXP] [PATH...]": golden tests.
func runTests(args []string) int {
	fs := flag.NewFlagSet("gio test", flag.ContinueOnError)
	update := fs.Bool("update", false, "rewrite the .out files")
	runRE := fs.String("run", "", "only scripts whose file name matches this regexp")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var re *regexp.Regexp
	if *runRE != "" {
		var err error
		if re, err = regexp.Compile(*runRE); err != nil {
			fmt.Fprintf(os.Stderr, "gio test: -run: %v\n", err)
			return 2
		}
	}
	paths := fs.Args()
	if len(paths) == 0 {
		paths = []string{"scripts"}
	}
	scripts, err := repl.FindScripts(paths, re)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio test: %v\n", err)
		return 2
	}
	passed, failed := 0, 0
	for _, r := range env.RunGolden(scripts, *update) {
		if r.Passed {
			passed++
			continue
		}
		failed++
		fmt.Printf("FAIL %s\n%s", r.Script, r.Diff)
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}
