package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"gio/blk"
	"gio/internal/cvt"
	"gio/internal/fsx"
	"gio/repl"
)

const fsxUsage = `usage: gio fsx [-seed N] [-n COUNT] [-ops N] [-align A] [-size S] [-o FILE] [--no-serialise] [-dir DIR]
       gio fsx -check FILE.gio

Runs seeded random sequences of overlapping aio reads, unaligned writes,
zero writes and discards, with breakpoints, resumes, sleeps and drains,
on a raw image through blkdebug, and checks every read against a model of
what the requests in flight allow. The first failing seed is shrunk and
written as a .gio reproducer that "gio run" replays.
`

// fsxEnv builds sessions as the shell does, so that a sequence behaves
// as the same lines run by "gio run".
var fsxEnv = fsx.Env{NewSession: func(out, errw io.Writer) fsx.Session {
	return env.NewSession(repl.NewStdioWriter(out, false), errw, blk.NewVirtualClock())
}}

// runFsx is "gio fsx".
func runFsx(args []string) int {
	fs := flag.NewFlagSet("gio fsx", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, fsxUsage); fs.PrintDefaults() }
	seed := fs.Int64("seed", 1, "first seed")
	n := fs.Int("n", 100, "number of seeds, for each alignment")
	ops := fs.Int("ops", 60, "random commands per sequence")
	align := fs.Int64("align", 0, "blkdebug align: 1, 512 or 4096 (0: each of them)")
	size := fs.String("size", "64k", "image size")
	out := fs.String("o", "", "reproducer file (default fsx-SEED-ALIGN.gio)")
	noSerialise := fs.Bool("no-serialise", false, "open blkdebug with serialise=off (overlapping read-modify-write loses updates)")
	dir := fs.String("dir", "", "directory for the scratch images (default /dev/shm where it exists, else $TMPDIR)")
	budget := fs.Int("shrink", 2000, "runs the shrinker may spend")
	check := fs.String("check", "", "replay a .gio script under the model and print its failures")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cleanup, err := fsxScratchDir(*dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio fsx: %v\n", err)
		return 2
	}
	defer cleanup()
	if *check != "" {
		return fsxCheck(*check)
	}
	sz, err := cvt.ParseNum(*size)
	if err != nil || sz <= 0 {
		fmt.Fprintf(os.Stderr, "gio fsx: -size %s: not a size\n", *size)
		return 2
	}
	aligns := []int64{1, 512, 4096}
	if *align != 0 {
		if *align < 1 || *align&(*align-1) != 0 || sz%*align != 0 {
			fmt.Fprintf(os.Stderr, "gio fsx: -align %d: a power of two dividing the size\n", *align)
			return 2
		}
		aligns = []int64{*align}
	}
	for _, a := range aligns {
		cfg := fsx.Config{Seed: *seed, Ops: *ops, Align: a, Size: sz, NoSerialise: *noSerialise}
		f, st := fsxEnv.Search(cfg, *n, nil)
		if f == nil {
			fmt.Printf("gio fsx: align %d: %d seeds (%d..%d), %d commands, %d reads checked: no failure (%.1fs)\n",
				a, st.Seeds, *seed, *seed+int64(st.Seeds)-1, st.Commands, st.Reads, st.Elapsed.Seconds())
			continue
		}
		fmt.Printf("gio fsx: align %d: %s (after %d seeds, %.1fs)\n", a, f, st.Seeds, st.Elapsed.Seconds())
		if f.Gen.Result.Harness != nil {
			name := fsxName(*out, f.Seed, a)
			g := f.Gen
			if err := os.WriteFile(name, []byte(fsx.Reproducer(g.Config, g.Setup, g.Body, nil)), 0o644); err == nil {
				fmt.Printf("gio fsx: the sequence is in %s\n", name)
			}
			return 2
		}
		start := time.Now()
		body, failure := fsxEnv.Minimise(f.Gen, *budget)
		name := fsxName(*out, f.Seed, a)
		src := fsx.Reproducer(f.Gen.Config, f.Gen.Setup, body, failure)
		if err := os.WriteFile(name, []byte(src), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "gio fsx: %v\n", err)
			return 2
		}
		fmt.Printf("gio fsx: shrunk %d lines to %d (%.1fs): %s\n", len(f.Gen.Body), len(body), time.Since(start).Seconds(), failure)
		fmt.Printf("gio fsx: reproducer: %s (gio run %s; gio fsx -check %s)\n", name, name, name)
		return 1
	}
	return 0
}

func fsxName(out string, seed, align int64) string {
	if out != "" {
		return out
	}
	return fmt.Sprintf("fsx-%d-%d.gio", seed, align)
}

// fsxScratchDir points the scratch images of "create" at dir, or at a
// fresh directory on /dev/shm: on a disk every sequence ends with an
// fdatasync (closing a written image flushes it), which costs more than
// the sequence itself.
func fsxScratchDir(dir string) (func(), error) {
	if dir == "" {
		if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
			return func() {}, nil
		}
		d, err := os.MkdirTemp("/dev/shm", "gio-fsx-")
		if err != nil {
			return func() {}, nil
		}
		os.Setenv("TMPDIR", d)
		return func() { os.RemoveAll(d) }, nil
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("-dir %s: not a directory", dir)
	}
	os.Setenv("TMPDIR", dir)
	return func() {}, nil
}

// fsxCheck replays a script under the model.
func fsxCheck(path string) int {
	src, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio fsx: %v\n", err)
		return 2
	}
	setup, body, err := fsx.ParseScript(string(src))
	if err != nil {
		fmt.Fprintf(os.Stderr, "gio fsx: %s: %v\n", path, err)
		return 2
	}
	res := fsxEnv.Check(setup, body, nil)
	if res.Harness != nil {
		fmt.Printf("%s: fsx could not follow the run: %v\n", path, res.Harness)
		return 2
	}
	for _, f := range res.Failures {
		fmt.Printf("%s: %s\n", path, f)
	}
	if len(res.Failures) > 0 {
		return 1
	}
	fmt.Printf("%s: %d lines, no failure\n", path, len(body))
	return 0
}
