package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"

	"gio/blk"
	"gio/commands"
	"gio/internal/getopt"
	"gio/nbdserver"
	"gio/repl"
)

const nbdUsage = `Usage: gio nbd [OPTION]... FILE
Exports FILE over NBD, as qemu-nbd does, with gio's block layer.

  -p, --port=PORT           port to listen on (default 10809)
  -b, --bind=IFACE          interface to bind to (default 127.0.0.1)
  -k, --socket=PATH         path to the unix socket (instead of TCP)
  -x, --export-name=NAME    export name (default "")
  -D, --description=TEXT    export description
  -r, --read-only           export read-only
  -t, --persistent          don't exit on the last connection
  -e, --shared=NUM          serve up to NUM clients at once (default 1, 0 = unlimited)
  -A, --allocation-depth    expose the allocation depth (qemu:allocation-depth)
  -f, --format=FORMAT       image format
      --image-opts          treat FILE as an option string
      --object=...          (no objects are supported)
  -n, --nocache             disable host cache
      --cache=MODE          cache mode (default writeback)
      --aio=MODE            aio mode (threads, native, io_uring)
      --discard=MODE        discard mode (ignore, unmap)
      --fork                fork off the server once it listens
      --pid-file=PATH       write the server's pid to PATH
  -v, --verbose, -T, --trace=...  accepted, ignored
  -h, --help                this text
Once it listens, gio nbd prints nothing; with --fork the parent exits then.
`

const (
	nbdOptImageOpts = 0x80 + iota
	nbdOptObject
	nbdOptCache
	nbdOptAIO
	nbdOptDiscard
	nbdOptFork
	nbdOptPidFile
)

var nbdLongOpts = []getopt.LongOpt{
	{Name: "help", Short: 'h'},
	{Name: "port", HasArg: true, Short: 'p'},
	{Name: "bind", HasArg: true, Short: 'b'},
	{Name: "socket", HasArg: true, Short: 'k'},
	{Name: "export-name", HasArg: true, Short: 'x'},
	{Name: "description", HasArg: true, Short: 'D'},
	{Name: "read-only", Short: 'r'},
	{Name: "persistent", Short: 't'},
	{Name: "shared", HasArg: true, Short: 'e'},
	{Name: "allocation-depth", Short: 'A'},
	{Name: "format", HasArg: true, Short: 'f'},
	{Name: "nocache", Short: 'n'},
	{Name: "verbose", Short: 'v'},
	{Name: "trace", HasArg: true, Short: 'T'},
	{Name: "image-opts", Short: nbdOptImageOpts},
	{Name: "object", HasArg: true, Short: nbdOptObject},
	{Name: "cache", HasArg: true, Short: nbdOptCache},
	{Name: "aio", HasArg: true, Short: nbdOptAIO},
	{Name: "discard", HasArg: true, Short: nbdOptDiscard},
	{Name: "fork", Short: nbdOptFork},
	{Name: "pid-file", HasArg: true, Short: nbdOptPidFile},
}

// readyFDEnv names the descriptor on which a --fork child reports that
// it listens.
const readyFDEnv = "GIO_NBD_READY_FD"

// runNBD is "gio nbd": qemu-nbd's command line over gio's block layer.
func runNBD(args []string) int {
	const prog = "gio nbd"
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "%s: %s\n", prog, fmt.Sprintf(format, a...))
		return 1
	}
	opts, pos, err := getopt.ParseLong(prog, args, "hp:b:k:x:D:rte:Af:nvT:", nbdLongOpts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var (
		so        nbdserver.Options
		o         = commands.OpenOptions{Cache: "writeback"}
		port      = 10809
		bind      = "127.0.0.1"
		sock      string
		imageOpts bool
		fork      bool
		pidFile   string
	)
	so.MaxClients = 1
	for _, op := range opts {
		switch op.Name {
		case 'h':
			fmt.Print(nbdUsage)
			return 0
		case 'p':
			p, err := strconv.Atoi(op.Arg)
			if err != nil || p < 0 || p > 65535 {
				return fail("Invalid port '%s'", op.Arg)
			}
			port = p
		case 'b':
			bind = op.Arg
		case 'k':
			sock = op.Arg
		case 'x':
			so.Name = op.Arg
		case 'D':
			so.Description = op.Arg
		case 'r':
			so.ReadOnly = true
			o.ReadOnly = true
		case 't':
			so.Persistent = true
		case 'e':
			n, err := strconv.Atoi(op.Arg)
			if err != nil || n < 0 {
				return fail("Invalid shared device number '%s'", op.Arg)
			}
			so.MaxClients = n
		case 'A':
			so.AllocDepth = true
		case 'f':
			o.Format = op.Arg
		case 'n':
			o.Cache = "none"
		case nbdOptCache:
			o.Cache = op.Arg
		case nbdOptAIO:
			o.SetAIO(op.Arg)
		case nbdOptDiscard:
			o.Discard = op.Arg
		case nbdOptImageOpts:
			imageOpts = true
		case nbdOptObject:
			return fail("Parameter 'qom-type' does not accept value '%s'", op.Arg)
		case nbdOptFork:
			fork = true
		case nbdOptPidFile:
			pidFile = op.Arg
		}
	}
	if len(pos) != 1 {
		return fail("Expected exactly one file name argument")
	}
	if sock != "" && (port != 10809 || bind != "127.0.0.1") {
		return fail("-p and -b are not compatible with -k")
	}
	if fork {
		return forkNBD(args)
	}
	if o.AIO == "" && !o.NativeAIO {
		// qemu-nbd's default: remote requests do their I/O in parallel
		// on the thread pool (a server promises no order anyway).
		o.SetAIO("threads")
	}
	out := repl.NewStdioWriter(os.Stdout, false)
	defer out.Flush()
	s := env.NewSession(out, os.Stderr, blk.NewRealClock())
	defer s.Cleanup()
	ok := false
	if imageOpts {
		if d, good := s.ParseOptions(pos[0]); good {
			o.Opts = d
			ok = s.OpenImage("", o)
		}
	} else {
		ok = s.OpenImage(pos[0], o)
	}
	if !ok {
		return 1
	}
	defer s.CloseImage()
	ln, err := nbdserver.Listen(sock, bind, port)
	if err != nil {
		return fail("%v", err)
	}
	srv, err := nbdserver.Start(s.Img, ln, so)
	if err != nil {
		ln.Close()
		return fail("%v", err)
	}
	if pidFile != "" {
		os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644)
		defer os.Remove(pidFile)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			srv.RequestStop()
		}
	}()
	if fd := os.Getenv(readyFDEnv); fd != "" {
		if n, err := strconv.Atoi(fd); err == nil {
			f := os.NewFile(uintptr(n), "ready")
			f.Write([]byte("ready\n"))
			f.Close()
		}
	}
	err = s.Loop.RunUntil("nbd server", func() bool { return srv.StopRequested() || srv.Finished() })
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	}
	if err := srv.Close(); err != nil {
		return fail("%v", err)
	}
	return 0
}

// forkNBD runs the server as a child and returns once it listens (or
// has failed), as qemu-nbd --fork does.
func forkNBD(args []string) int {
	var rest []string
	for _, a := range args {
		if a != "--fork" {
			rest = append(rest, a)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio nbd: %v\n", err)
		return 1
	}
	cmd := exec.Command(os.Args[0], append([]string{"nbd"}, rest...)...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "gio nbd: %v\n", err)
		return 1
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	r.Close()
	if line != "ready\n" {
		cmd.Wait()
		return 1
	}
	cmd.Process.Release()
	return 0
}
