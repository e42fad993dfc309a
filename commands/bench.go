package commands

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"gio/blk"
	"gio/internal/cvt"
	"gio/internal/getopt"
)

// This file is qemu-img bench (img_bench and bench_cb in qemu-img.c):
// the "bench" shell command, on the open image or on a file of its own,
// and the body of "gio bench", which takes qemu-img bench's command line.

func benchCommands() []*Command {
	return []*Command{
		{Name: "bench", Args: benchSynopsis,
			Oneline: "runs qemu-img bench on the open image or on filename (gio only)",
			Help:    benchHelp, Flags: benchFlags, MinArgs: 0, MaxArgs: -1, RawArgs: true, Hidden: true, Family: "gio",
			Run: benchCmd},
	}
}

const benchSynopsis = "[-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] [-n] [--no-drain] [-o offset] [--pattern=pattern] [-q] [-s buffer_size] [-S step_size] [-t cache] [-w] [-U] [filename]"

const benchHelp = `
 sends count read (or, with -w, write) requests of buffer_size bytes, depth
 of them in flight at a time, starting at offset and stepping by step_size
 (wrapping at the end of the image), and prints how long that took, as
 qemu-img bench does. Without filename the open image is used; with one,
 bench opens it on its own (read-only unless -w, cache writeback unless
 -t, as qemu-img bench does) and closes it afterwards.

 -c, -- number of requests (default 75000)
 -d, -- queue depth (default 64)
 -f, -- image format (with filename)
 -i, -- I/O engine (with filename): threads or io_uring run the I/O in
       parallel; without -i the deterministic engine is used
 -n, -- native AIO (with filename)
 -o, -- offset of the first request
 -q, -- quiet (as in qemu-img bench, changes nothing)
 -s, -- request size (default 4096)
 -S, -- step between requests (default: the request size)
 -t, -- cache mode (with filename)
 -w, -- write instead of read
 -U, -- force shared permissions (with filename)
 --pattern=N       -- byte written by -w (default 0)
 --flush-interval=N -- flush after every N requests (-w only)
 --no-drain        -- flush without waiting for the requests in flight

`

// Long-only option codes of bench.
const (
	benchOptFlushInterval = 0x80 + iota
	benchOptImageOpts
	benchOptPattern
	benchOptNoDrain
)

// benchFlags are qemu-img bench's short options (img_bench's getopt
// string); bench parses them itself (RawArgs), with benchLongOpts.
var benchFlags = []Flag{
	{Letter: 'h'}, {Letter: 'c', Arg: "count"}, {Letter: 'd', Arg: "depth"}, {Letter: 'f', Arg: "fmt"},
	{Letter: 'n'}, {Letter: 'i', Arg: "aio", Values: AIOModes}, {Letter: 'o', Arg: "offset"}, {Letter: 'q'},
	{Letter: 's', Arg: "buffer_size"}, {Letter: 'S', Arg: "step_size"}, {Letter: 't', Arg: "cache", Values: CacheModes},
	{Letter: 'w'}, {Letter: 'U'},
}

var benchLongOpts = []getopt.LongOpt{
	{Name: "help", Short: 'h'},
	{Name: "flush-interval", HasArg: true, Short: benchOptFlushInterval},
	{Name: "image-opts", Short: benchOptImageOpts},
	{Name: "pattern", HasArg: true, Short: benchOptPattern},
	{Name: "no-drain", Short: benchOptNoDrain},
	{Name: "force-share", Short: 'U'},
}

// benchConfig is a parsed bench command line (img_bench's locals).
type benchConfig struct {
	count, depth  int
	offset        int64
	bufsize, step int
	pattern       byte
	flushInterval int
	drain         bool
	write         bool
	// Opening an image of its own.
	file      string
	imageOpts bool
	format    string
	cache     string // "" = qemu-img's default, writeback
	aio       string
	native    bool
	share     bool
	// openFlags lists the flags that only make sense with a file name.
	openFlags []string
}

// benchEnv is where bench prints: its program name for error lines
// ("qemu-img" for gio bench, "qemu-io" in the shell).
type benchEnv struct {
	prog     string
	out, err io.Writer
}

func (e benchEnv) errorf(format string, args ...any) {
	fmt.Fprintf(e.err, e.prog+": "+format+"\n", args...)
}

// parseBench parses bench's arguments as img_bench does, printing its
// messages. ok is false when bench must stop (help counts as success:
// exit reports the status then).
func parseBench(e benchEnv, args []string) (c benchConfig, ok bool, exit int) {
	c = benchConfig{count: 75000, depth: 64, bufsize: 4096, drain: true}
	opts, pos, err := getopt.ParseLong(e.prog, args, OptString(benchFlags), benchLongOpts)
	if err != nil {
		e.errorf("%s", benchGetoptMessage(err.Error(), args))
		fmt.Fprintf(e.err, "Try 'qemu-img --help' for more information\n")
		return c, false, 1
	}
	for _, o := range opts {
		switch o.Name {
		case 'h':
			fmt.Fprintf(e.out, "bench %s\n", benchSynopsis)
			return c, false, 0
		case 'c':
			v, ok := parseULong(o.Arg)
			if !ok || v > math.MaxInt32 {
				e.errorf("Invalid request count specified")
				return c, false, 1
			}
			c.count = int(v)
		case 'd':
			v, ok := parseULong(o.Arg)
			if !ok || v > math.MaxInt32 {
				e.errorf("Invalid queue depth specified")
				return c, false, 1
			}
			c.depth = int(v)
		case 'f':
			c.format = o.Arg
			c.openFlags = append(c.openFlags, "-f")
		case 'n':
			c.native = true
			c.openFlags = append(c.openFlags, "-n")
		case 'i':
			switch o.Arg {
			case "native":
				c.native = true
			case "threads", "io_uring":
				if o.Arg == "io_uring" || c.aio == "" {
					c.aio = o.Arg
				}
			default:
				e.errorf("Invalid aio option: %s", o.Arg)
				return c, false, 1
			}
			c.openFlags = append(c.openFlags, "-i")
		case 'o':
			v, ok := cvtnumFull(e, "offset", o.Arg, 0, math.MaxInt64)
			if !ok {
				return c, false, 1
			}
			c.offset = v
		case 'q':
		case 's':
			v, ok := cvtnumFull(e, "buffer size", o.Arg, 0, math.MaxInt32)
			if !ok {
				return c, false, 1
			}
			c.bufsize = int(v)
		case 'S':
			v, ok := cvtnumFull(e, "step_size", o.Arg, 0, math.MaxInt32)
			if !ok {
				return c, false, 1
			}
			c.step = int(v)
		case 't':
			if _, _, _, ok := cacheMode(o.Arg); !ok {
				e.errorf("Invalid cache mode")
				return c, false, 1
			}
			c.cache = o.Arg
			c.openFlags = append(c.openFlags, "-t")
		case 'w':
			c.write = true
		case 'U':
			c.share = true
			c.openFlags = append(c.openFlags, "-U")
		case benchOptPattern:
			v, ok := parseULong(o.Arg)
			if !ok || v > 0xff {
				e.errorf("Invalid pattern byte specified")
				return c, false, 1
			}
			c.pattern = byte(v)
		case benchOptFlushInterval:
			v, ok := parseULong(o.Arg)
			if !ok || v > math.MaxInt32 {
				e.errorf("Invalid flush interval specified")
				return c, false, 1
			}
			c.flushInterval = int(v)
		case benchOptNoDrain:
			c.drain = false
		case benchOptImageOpts:
			c.imageOpts = true
			c.openFlags = append(c.openFlags, "--image-opts")
		}
	}
	switch len(pos) {
	case 1:
		c.file = pos[0]
	case 0:
		c.file = ""
	default:
		e.errorf("Expecting one image file name")
		fmt.Fprintf(e.err, "Try 'qemu-img --help' for more information\n")
		return c, false, 1
	}
	if !c.write && c.flushInterval != 0 {
		e.errorf("--flush-interval is only available in write tests")
		return c, false, 1
	}
	if c.flushInterval != 0 && c.flushInterval < c.depth {
		e.errorf("Flush interval can't be smaller than depth")
		return c, false, 1
	}
	return c, true, 0
}

// benchGetoptMessage turns glibc's getopt_long diagnostic into what
// qemu-img prints for it (its optstring starts with ':', so glibc stays
// silent and qemu-img names the offending word itself).
func benchGetoptMessage(msg string, args []string) string {
	_, rest, _ := strings.Cut(msg, ": ")
	switch {
	case strings.HasPrefix(rest, "option requires an argument -- '"):
		return fmt.Sprintf("missing argument for option '-%s'", strings.Trim(rest[len("option requires an argument -- "):], "'"))
	case strings.HasPrefix(rest, "option '") && strings.HasSuffix(rest, "' requires an argument"):
		return "missing argument for option " + strings.TrimSuffix(strings.TrimPrefix(rest, "option "), " requires an argument")
	case strings.HasPrefix(rest, "invalid option -- '"):
		c := strings.Trim(rest[len("invalid option -- "):], "'")
		for _, a := range args {
			if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a[1:], c) {
				return fmt.Sprintf("unrecognized option '%s'", a)
			}
		}
		return fmt.Sprintf("unrecognized option '-%s'", c)
	case strings.HasPrefix(rest, "unrecognized option '"):
		return rest
	case strings.HasPrefix(rest, "option '") && strings.HasSuffix(rest, "' doesn't allow an argument"):
		for _, a := range args {
			if name, _, found := strings.Cut(a, "="); found && strings.HasPrefix(rest, "option '"+name) {
				return fmt.Sprintf("unrecognized option '%s'", a)
			}
		}
	}
	return rest
}

// parseULong is qemu_strtoul(s, NULL, 0, &v): C strtoul in base 0 (so
// "010" is 8 and "-1" wraps), leading white space allowed, nothing after
// the number, no overflow.
func parseULong(s string) (uint64, bool) {
	i := 0
	for i < len(s) && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	base := uint64(10)
	if i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && i+2 < len(s) && hexDigit(s[i+2]) >= 0 {
		base = 16
		i += 2
	} else if i < len(s) && s[i] == '0' {
		base = 8
	}
	start := i
	var v uint64
	for ; i < len(s); i++ {
		d := hexDigit(s[i])
		if d < 0 || uint64(d) >= base {
			break
		}
		if v > (math.MaxUint64-uint64(d))/base {
			return 0, false
		}
		v = v*base + uint64(d)
	}
	if i == start || i != len(s) {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// cvtnumFull is qemu-img's cvtnum_full: a size with suffixes, between min
// and max, with its two kinds of complaint.
func cvtnumFull(e benchEnv, name, value string, lo, hi int64) (int64, bool) {
	v, warn, err := cvt.ParseNumWarn(value)
	if warn != "" {
		fmt.Fprintf(e.err, "%s: warning: %s\n", e.prog, warn)
	}
	if err != nil && !isTooLarge(err) {
		e.errorf("Invalid %s specified. You may use k, M, G, T, P or E suffixes for", name)
		e.errorf("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.")
		return 0, false
	}
	if err != nil || v < lo || v > hi {
		e.errorf("Invalid %s specified. Must be between %d and %d.", name, lo, hi)
		return 0, false
	}
	return v, true
}

func isTooLarge(err error) bool {
	pe, ok := err.(*cvt.ParseError)
	return ok && pe.Err == cvt.ErrTooLarge
}

// benchCmd is the shell's bench: on the open image, or on a file of its
// own when one is named.
func benchCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	e := benchEnv{prog: ProgName, out: s.Out, err: s.Err}
	c, ok, exit := parseBench(e, args)
	if !ok {
		if exit == 0 {
			return nil // -h
		}
		return errFailed
	}
	if c.file == "" {
		if s.Img == nil {
			fmt.Fprintf(s.Err, "no file open, try 'help open'\n")
			return errFailed
		}
		if len(c.openFlags) > 0 {
			fmt.Fprintf(s.Err, "gio: bench: %s: only with a file name, which bench then opens itself\n", strings.Join(c.openFlags, ", "))
			return errFailed
		}
		if c.write && s.Img.ReadOnly() {
			s.errorReport("Block node is read-only")
			return errFailed
		}
		if !runBench(e, s.Loop, s.Img, c) {
			return errFailed
		}
		return nil
	}
	if BenchFile(s, e.prog, c) != 0 {
		return errFailed
	}
	return nil
}

// BenchMain is "gio bench ARGS": qemu-img bench's command line, messages
// and exit status, on a session of its own.
func BenchMain(s *Session, args []string) int {
	e := benchEnv{prog: "qemu-img", out: s.Out, err: s.Err}
	c, ok, exit := parseBench(e, args)
	if !ok {
		return exit
	}
	if c.file == "" {
		e.errorf("Expecting one image file name")
		fmt.Fprintf(e.err, "Try 'qemu-img --help' for more information\n")
		return 1
	}
	return BenchFile(s, e.prog, c)
}

// BenchFile opens c.file as img_open does for qemu-img bench, runs the
// benchmark and closes the image.
func BenchFile(s *Session, prog string, c benchConfig) int {
	e := benchEnv{prog: prog, out: s.Out, err: s.Err}
	img, ok := openBenchImage(s, e, c)
	if !ok {
		return 1
	}
	ok = runBench(e, s.Loop, img, c)
	if err := img.Close(); err != nil {
		s.stuck(err)
		ok = false
	}
	if !ok {
		return 1
	}
	return 0
}

// openBenchImage opens the image with qemu-img's defaults: read-only
// unless writing, cache writeback (not writethrough), no discard.
func openBenchImage(s *Session, e benchEnv, c benchConfig) (*blk.Backend, bool) {
	spec := blk.Spec{Format: c.format}
	name := c.file
	if c.imageOpts {
		d, ok := s.ParseOptions(c.file)
		if !ok {
			return nil, false
		}
		spec.Opts = d
		name = ""
	} else {
		name = s.resolveScratch(name, nil)
	}
	spec.Filename = name
	if c.cache != "" {
		direct, wt, nf, _ := cacheMode(c.cache)
		spec.Flags.Direct, spec.WriteThrough, spec.Flags.NoFlush = direct, wt, nf
	}
	spec.Flags.AIO = c.aio
	if c.native {
		spec.Flags.AIO = "native"
	}
	spec.Flags.ReadOnly = !c.write
	spec.Flags.ForceShare = c.share
	fail := func(msg string) (*blk.Backend, bool) {
		e.errorf("Could not open '%s': %s", c.file, msg)
		return nil, false
	}
	if spec.Flags.AIO == "native" && !spec.Flags.Direct {
		return fail("aio=native was specified, but it requires cache.direct=on, which was not specified.")
	}
	if c.share && c.write {
		return fail("force-share=on can only be used with read-only images")
	}
	spec.ProbeWarning = func(file *blk.Node) {
		shown := c.file
		if file.Driver().Name == "file" {
			shown = file.Filename()
		}
		fmt.Fprintf(e.err, "WARNING: Image format was not specified for '%s' and probing guessed raw.\n"+
			"         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n"+
			"         Specify the 'raw' format explicitly to remove the restrictions.\n", shown)
	}
	img, err := s.Reg.Open(spec, s.Loop)
	if err != nil {
		return fail(errText(err))
	}
	return img, true
}

// benchRun is qemu-img's BenchData plus what gio's lanes share. Every
// field is touched only under the scheduler token.
type benchRun struct {
	img      *blk.Backend
	loop     *blk.Loop
	n        int // requests not yet completed
	inFlight int
	offset   int64
	step     int64
	size     int64 // image size: offsets wrap here
	write    bool

	flushInterval int
	drain         bool
	// held stops submissions until the drained flush is done (bench_cb
	// returning without submitting).
	held    bool
	waiters []*blk.Co

	err    error
	errMsg string
	end    time.Time
	// active counts the lanes and flush requests still running.
	active int
}

// spawn starts one of the run's requests.
func (b *benchRun) spawn(name string, fn func(co *blk.Co)) {
	b.active++
	b.loop.Spawn(name, func(co *blk.Co) {
		defer func() { b.active-- }()
		fn(co)
	})
}

// finish waits for the run's requests still in flight (the final flush,
// lanes stopping after a failure), as blk_unref's drain does for
// qemu-img, so that no request of the run outlives the command.
func (b *benchRun) finish() {
	b.wakeAll()
	_ = b.loop.RunUntil("bench", func() bool { return b.active == 0 })
}

// runBench runs the benchmark on img and prints qemu-img bench's lines.
// It reports success; a failed request is printed as qemu-img prints it
// (which then exits) and ends the run.
//
// qemu-img submits a request per completion from its callback. gio runs
// depth lanes instead: each is one request coroutine that submits, waits
// for its I/O, completes (the same bookkeeping as bench_cb) and submits
// again. The requests in flight, their offsets and the flushes are those
// of qemu-img, without a coroutine start per request.
func runBench(e benchEnv, loop *blk.Loop, img *blk.Backend, c benchConfig) bool {
	var size int64
	var lerr error
	co := loop.Spawn("bench: length", func(co *blk.Co) { size, lerr = img.Length(co) })
	if err := loop.RunUntil(co.Name(), co.Done); err != nil {
		lerr = err
	}
	if lerr != nil {
		e.errorf("%s", errText(lerr))
		return false
	}
	step := c.step
	if step == 0 {
		step = c.bufsize
	}
	op := "read"
	if c.write {
		op = "write"
	}
	fmt.Fprintf(e.out, "Sending %d %s requests, %d bytes each, %d in parallel (starting at offset %d, step size %d)\n",
		c.count, op, c.bufsize, c.depth, c.offset, step)
	if c.flushInterval != 0 {
		fmt.Fprintf(e.out, "Sending flush every %d requests\n", c.flushInterval)
	}
	b := &benchRun{img: img, loop: loop, n: c.count, offset: c.offset, step: int64(step), size: size,
		write: c.write, flushInterval: c.flushInterval, drain: c.drain}
	lanes := min(c.depth, c.count)
	buf := img.BlockAlign(lanes * c.bufsize)
	if c.pattern != 0 {
		for i := range buf {
			buf[i] = c.pattern
		}
	}
	start := time.Now()
	for i := 0; i < lanes; i++ {
		lb := buf[i*c.bufsize : (i+1)*c.bufsize : (i+1)*c.bufsize]
		b.spawn(fmt.Sprintf("bench lane %d", i), func(co *blk.Co) { b.lane(co, lb) })
	}
	if b.n > 0 && lanes == 0 {
		// qemu-img waits forever for requests it never sends.
		fmt.Fprintf(e.err, "gio: bench: queue depth 0 sends no request, so the run can never complete\n")
		return false
	}
	err := loop.RunUntil("bench", func() bool { return b.n == 0 || b.err != nil })
	if errors.Is(err, blk.ErrInterrupted) || errors.Is(b.err, blk.ErrInterrupted) {
		// The lanes still in flight stop at their next turn.
		b.fail("Interrupted", blk.ErrInterrupted)
		fmt.Fprintf(e.err, "gio: bench interrupted: %d of %d requests done\n", c.count-b.n, c.count)
		return false
	}
	if b.err == nil && err != nil {
		fmt.Fprintf(e.err, "gio: %s\n", errText(err))
		return false
	}
	end := b.end
	if c.count == 0 {
		end = time.Now()
	}
	if b.err != nil {
		e.errorf("%s: %s", b.errMsg, cvt.Strerror(b.err))
		// The lanes still in flight stop at their next completion.
		b.finish()
		return false
	}
	elapsed := end.Sub(start)
	fmt.Fprintf(e.out, "Run completed in %3.3f seconds.\n", elapsed.Seconds())
	b.finish()
	return true
}

// lane submits requests until none is left to submit.
func (b *benchRun) lane(co *blk.Co, buf []byte) {
	for {
		for b.held && b.err == nil {
			b.waiters = append(b.waiters, co)
			co.Park("bench: waits for the drained flush")
		}
		if b.err != nil || b.n <= b.inFlight {
			return
		}
		if b.loop.Interrupted() {
			// Ctrl-C: no new request. runBench marks the run failed
			// too, but only once the loop hands control back to it.
			b.fail("Interrupted", blk.ErrInterrupted)
			return
		}
		off := b.offset
		b.inFlight++
		b.offset += b.step
		if b.size > 0 {
			b.offset %= b.size
		}
		var err error
		if b.write {
			err = b.img.PWrite(co, off, buf, 0)
		} else {
			err = b.img.PRead(co, off, buf)
		}
		if err != nil {
			b.fail("Failed request", err)
			return
		}
		b.complete(co)
	}
}

// complete is the completion half of bench_cb.
func (b *benchRun) complete(co *blk.Co) {
	remaining := b.n - b.inFlight
	b.n--
	b.inFlight--
	if b.n == 0 {
		b.end = time.Now()
	}
	if b.flushInterval == 0 || remaining%b.flushInterval != 0 {
		return
	}
	if !b.drain {
		b.spawn("bench flush", func(co *blk.Co) {
			if err := b.img.Flush(co); err != nil {
				b.fail("Failed flush request", err)
			}
		})
		return
	}
	b.held = true
	if b.inFlight > 0 {
		return // the last request in flight flushes
	}
	if err := b.img.Flush(co); err != nil {
		b.fail("Failed request", err)
	}
	b.held = false
	b.wakeAll()
}

func (b *benchRun) fail(msg string, err error) {
	if b.err == nil {
		b.err, b.errMsg = err, msg
	}
}

func (b *benchRun) wakeAll() {
	for _, w := range b.waiters {
		w.Wake()
	}
	b.waiters = b.waiters[:0]
}
