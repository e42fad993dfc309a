package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gio/blk/qdict"
	"gio/internal/getopt"
)

func gioCommands() []*Command {
	return []*Command{
		{Name: "create", Args: "[-f raw|qcow2|luks] [-o options] name size",
			Oneline: "creates a scratch image, removed when gio exits (gio only)",
			Help: `
 creates a sparse scratch image in a private temporary directory; later
 commands (open, -o file.filename=..., blkdebug::name) refer to it by name.
 The directory is removed when gio exits, so a script needs no setup.

 Example:
 'create img 64k' then 'open -o driver=raw,file.align=4k blkdebug::img'
 'create -f qcow2 base 1M', then
 'create -f qcow2 -o cluster_size=4k,backing_file=base top 1M'
 -f, -- image format (raw, qcow2 or luks)
 -o, -- creation options, as qemu-img create -o takes them (qcow2:
       cluster_size, compat, refcount_bits, backing_file, backing_fmt,
       encrypt.format=luks|aes and encrypt.*; luks: key-secret, cipher-alg,
       cipher-mode, ivgen-alg, ivgen-hash-alg, hash-alg, iter-time;
       a backing file without backing_fmt has its format probed)

`,
			Opts: "f:o:", MinArgs: 2, MaxArgs: 6, Hidden: true, Family: "gio", Run: createCmd},
		recordCommand(),
	}
}

// createCmd makes a sparse scratch image.
func createCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	format := "raw"
	var copts *qdict.Dict
	for _, o := range opts {
		switch o.Name {
		case 'f':
			format = o.Arg
		case 'o':
			d, ok := s.ParseOptions(o.Arg)
			if !ok {
				return errFailed
			}
			if copts == nil {
				copts = d
			} else {
				for _, k := range d.Keys() {
					v, _ := d.Get(k)
					copts.Set(k, v)
				}
			}
		}
	}
	if format != "raw" && format != "qcow2" && format != "luks" {
		s.errorReport("create: unsupported format '%s' (raw, qcow2, luks)", format)
		return errFailed
	}
	if format == "raw" && copts != nil && copts.Len() > 0 {
		s.errorReport("create: raw takes no creation options")
		return errFailed
	}
	if len(args) != 2 {
		return errUsage
	}
	size, ok := s.num(args[1])
	if !ok {
		return errFailed
	}
	if strings.ContainsAny(args[0], "/:,") {
		s.errorReport("create: '%s': scratch image names cannot contain '/', ':' or ','", args[0])
		return errFailed
	}
	if s.scratchDir == "" {
		d, err := os.MkdirTemp(scratchBase(), "gio-scratch-")
		if err != nil {
			s.errorReport("create: %v", err)
			return errFailed
		}
		s.scratchDir = d
		s.scratch = map[string]string{}
	}
	path := filepath.Join(s.scratchDir, args[0])
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err == nil {
		if format == "raw" {
			err = f.Truncate(size)
		}
		f.Close()
	}
	if err == nil && format != "raw" {
		// Backing files named in the options are resolved next to the
		// image, where scratch images live.
		err = s.Reg.Create(format, path, size, copts, s.Loop)
	}
	if err != nil {
		s.errorReport("create: %s: %s", args[0], errText(err))
		return errFailed
	}
	s.scratch[args[0]] = path
	return nil
}

// resolveScratch replaces scratch image names by their paths in a
// filename (plain, or after a "proto:" prefix such as blkdebug::name) and
// in option values.
func (s *Session) resolveScratch(name string, opts *qdict.Dict) string {
	if len(s.scratch) == 0 {
		return name
	}
	if p, ok := s.scratch[name]; ok {
		name = p
	} else if i := strings.LastIndexByte(name, ':'); i >= 0 {
		if p, ok := s.scratch[name[i+1:]]; ok {
			name = name[:i+1] + p
		}
	}
	if opts != nil {
		for _, k := range opts.Keys() {
			v, _ := opts.Get(k)
			if p, ok := s.scratch[v]; ok && (k == "filename" || strings.HasSuffix(k, ".filename") || strings.HasSuffix(k, "config")) {
				opts.Set(k, p)
			}
		}
	}
	return name
}

// Cleanup removes the scratch directory.
func (s *Session) Cleanup() {
	if s.scratchDir != "" {
		os.RemoveAll(s.scratchDir)
		s.scratchDir = ""
	}
}

var _ = fmt.Sprint

// scratchBase is where scratch images live: $GIO_SCRATCH_DIR, else a
// tmpfs (/dev/shm) when there is one, because scratch images are thrown
// away at exit and syncing them to a disk only costs time; else the
// system temporary directory.
func scratchBase() string {
	if d := os.Getenv("GIO_SCRATCH_DIR"); d != "" {
		return d
	}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", ".gio-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return ""
}
