package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gio/blk"
	"gio/commands"
	"gio/internal/getopt"
	"gio/repl"
	"gio/trace"
)

// gioUsageText is gio's own part of "gio --help" (at a terminal) and
// "gio help": what gio adds to qemu-io's command line.
const gioUsageText = `gio adds to qemu-io:
  --clock=virtual|real  the loop's clock (virtual unless typing at a terminal)
  --color=auto|always|never
                        colour in the interactive shell
  --record FILE         record the commands typed at the prompt into FILE.gio
  --trace FILE [--trace-format=json|jsonl]
                        write a trace of every request to FILE
  'help gio' at the prompt lists gio's own commands (create, record, bench...)

Subcommands ('gio SUBCOMMAND -h' for each one's options):
  gio run [-x] [--clock=...] [-f FMT] [OPEN-FLAGS] FILE.gio [IMAGE]
                        run a script: FILE:LINE on failures, exit 1 if one failed
  gio test [-update] [-run REGEXP] [PATH...]
                        golden tests: NAME.gio against NAME.out
  gio fsx [-seed N] [-n COUNT] ...
                        seeded random concurrent I/O checked against a model
  gio explore [-p N] [-n MAX] [-t BUDGET] [-j N] [--random] [--crash] [-o REPRO.gio] SCRIPT.gio
                        run a script under every schedule, checked against a model
  gio bench [qemu-img bench options] FILE
                        qemu-img bench on gio's block layer
  gio check [-f FMT] [-r leaks|all] [--output=human|json] [-q] FILE
                        qemu-img check on gio's block layer (exit 0/1/2/3/63)
  gio trace view FILE -o OUT.html
                        render a trace (--trace FILE) as a timeline page
  gio nbd [qemu-nbd options] FILE
                        export FILE over NBD (see docs/nbd.md)
  gio help              this text
`

// subcommands are gio's own first words.
var subcommands = map[string]func(args []string) int{
	"run":     runScript,
	"test":    runTests,
	"bench":   runBench,
	"check":   runCheck,
	"fsx":     runFsx,
	"explore": runExplore,
	"trace":   runTrace,
	"nbd":     runNBD,
	"help":    func([]string) int { fmt.Print(gioUsageText); return 0 },
}

// subcommand finds a subcommand in args: the first word, or the first
// word after gio's own options (--clock, --color), which then go to the
// subcommand ("gio --clock=real run x.gio" is "gio run --clock=real
// x.gio"). A first word ending in .gio is "run".
func subcommand(args []string) (func([]string) int, []string, bool) {
	var lead []string
	i := 0
	for i < len(args) {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "--clock=") || strings.HasPrefix(a, "--color="):
			lead = append(lead, a)
			i++
			continue
		case (a == "--clock" || a == "--color") && i+1 < len(args):
			lead = append(lead, a, args[i+1])
			i += 2
			continue
		}
		break
	}
	if i == len(args) {
		return nil, nil, false
	}
	rest := append(append([]string(nil), args[i+1:]...), lead...)
	if f, ok := subcommands[args[i]]; ok {
		if args[i] != "run" && len(lead) > 0 {
			name := args[i]
			return func([]string) int {
				fmt.Fprintf(os.Stderr, "gio: %s goes with gio run and the shell, not gio %s\n", lead[0], name)
				return 2
			}, nil, true
		}
		return f, rest, true
	}
	if strings.HasSuffix(args[i], ".gio") && !strings.HasPrefix(args[i], "-") {
		return runScript, append([]string{args[i]}, rest...), true
	}
	return nil, nil, false
}

const runUsage = `usage: gio run [-h] [-x] [--clock=virtual|real] [--trace FILE] [-f FMT] [--image-opts]
               [-rsnCkU] [-t CACHE] [-d DISCARD] [-i AIO] FILE.gio [IMAGE]

Runs the script's commands as qemu-io runs piped input, without prompts,
and opens IMAGE first when given (with -f and the open flags, as qemu-io's
command line takes them). Messages on stderr start with FILE:LINE:, a
failed command whose message is on stdout gets a located line on stderr,
and the exit status is 1 when a command failed.

  -x, --echo            print each command ("gio> CMD") before its output
  --trace FILE          write a trace of the requests to FILE (docs/trace.md)
  --trace-format=json|jsonl
                        Chrome Trace Event JSON (default) or JSON lines
  --clock=virtual|real  virtual time (the default) replays sleeps at once
  -h, --help            this text
`

// runLongOpts are gio run's long options: its own, then open's.
var runLongOpts = append([]getopt.LongOpt{
	{Name: "help", Short: 'h'},
	{Name: "echo", Short: 'x'},
	{Name: "format", HasArg: true, Short: 'f'},
	{Name: "clock", HasArg: true, Short: optClock},
	{Name: "color", HasArg: true, Short: optColor},
	{Name: "image-opts", Short: optImageOpts},
	{Name: "trace", HasArg: true, Short: optTrace},
	{Name: "trace-format", HasArg: true, Short: optTraceFormat},
}, commands.LongOpts(commands.OpenImageFlags())...)

// runScript is "gio run": a script's commands, errors located as
// FILE:LINE, exit status 1 when a command failed, 2 for a usage error.
func runScript(args []string) int {
	opts, pos, err := getopt.ParseLong("gio run", args, "hxf:"+commands.OptString(commands.OpenImageFlags()), runLongOpts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n%s", err, runUsage)
		return 2
	}
	var (
		so        repl.ScriptOptions
		imageOpts bool
	)
	for _, op := range opts {
		if known, err := so.Open.ApplyOpenFlag(op.Name, op.Arg); known {
			if err != nil {
				fmt.Fprintf(os.Stderr, "gio run: %v\n", err)
				return 2
			}
			continue
		}
		switch op.Name {
		case 'h':
			fmt.Print(runUsage)
			return 0
		case 'x':
			so.Echo = true
		case 'f':
			so.Open.Format = op.Arg
		case optImageOpts:
			imageOpts = true
		case optTrace:
			so.TraceFile = op.Arg
		case optTraceFormat:
			if _, err := trace.ParseFormat(op.Arg); err != nil {
				fmt.Fprintf(os.Stderr, "gio run: %v\n", err)
				return 2
			}
			so.TraceFormat = op.Arg
		case optColor:
			// Script output is never painted; accepted so that the
			// option may precede any subcommand.
		case optClock:
			switch op.Arg {
			case "virtual":
			case "real":
				so.Clock = blk.NewRealClock()
			default:
				fmt.Fprintf(os.Stderr, "gio run: invalid clock option: %s (virtual or real)\n", op.Arg)
				return 2
			}
		}
	}
	if len(pos) < 1 || len(pos) > 2 {
		fmt.Fprint(os.Stderr, runUsage)
		return 2
	}
	if len(pos) == 1 && (so.Open != commands.OpenOptions{} || imageOpts) {
		fmt.Fprintln(os.Stderr, "gio run: -f, --image-opts and the open flags apply to an IMAGE argument; there is none")
		return 2
	}
	if imageOpts && so.Open.Format != "" {
		fmt.Fprintln(os.Stderr, "gio run: --image-opts and -f are mutually exclusive")
		return 2
	}
	src, err := os.ReadFile(pos[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio run: %v\n", err)
		return 1
	}
	if len(pos) == 2 {
		so.Image = pos[1]
		so.ImageOpts = imageOpts
	}
	so.Prefix = true
	if !env.RunScriptOpts(pos[0], string(src), os.Stdout, os.Stderr, so) {
		return 1
	}
	return 0
}

const testUsage = `usage: gio test [-h] [-update] [-run REGEXP] [PATH...]

Runs each NAME.gio (PATH: files or directories, default scripts) as
"gio run" does and compares its output, stdout and stderr together,
byte for byte (report timings are virtual time), with NAME.out beside
it. -update rewrites the
.out files from this run instead. Exit status 1 when a script fails or
none ran.
`

// runTests is "gio test": golden tests.
func runTests(args []string) int {
	fs := flag.NewFlagSet("gio test", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, testUsage) }
	update := fs.Bool("update", false, "rewrite the .out files")
	runRE := fs.String("run", "", "only scripts whose file name matches this regexp")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
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
	if len(scripts) == 0 {
		what := strings.Join(paths, " ")
		if re != nil {
			what += " matching -run " + *runRE
		}
		fmt.Fprintf(os.Stderr, "gio test: no script (*.gio) in %s: nothing ran\n", what)
		return 1
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
