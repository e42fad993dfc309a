package commands

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gio/blk"
	"gio/blk/qdict"
	"gio/internal/getopt"

	"golang.org/x/sys/unix"
)

// createFlags are create's options; its help lists them from here.
var createFlags = []Flag{
	{Letter: 'f', Arg: "fmt", Values: CreateFormats, Desc: "image format (raw, qcow2, qed, qcow, luks, vdi, vpc, vmdk, parallels, vhdx)"},
	{Letter: 'o', Arg: "options", Keys: createOptions, Desc: "creation options, as qemu-img create -o takes them (qcow2:\n" +
		"cluster_size, compat, refcount_bits, backing_file, backing_fmt,\n" +
		"preallocation, data_file, data_file_raw,\n" +
		"encrypt.format=luks|aes, encrypt.key-secret and the luks options\n" +
		"with an encrypt. prefix; luks: key-secret, cipher-alg, cipher-mode,\n" +
		"ivgen-alg, ivgen-hash-alg, hash-alg, iter-time; vdi: static;\n" +
		"vpc: subformat, force_size; vhdx: subformat, log_size,\n" +
		"block_size, block_state_zero; qed: cluster_size, table_size,\n" +
		"backing_file, backing_fmt; qcow: backing_file, backing_fmt,\n" +
		"encrypt.format=aes, encrypt.key-secret; vmdk: subformat\n" +
		"(monolithicSparse, monolithicFlat, streamOptimized, twoGbMaxExtentSparse,\n" +
		"twoGbMaxExtentFlat: extents made beside the descriptor), zeroed_grain,\n" +
		"adapter_type, hwversion, toolsversion, compat6, backing_file,\n" +
		"backing_fmt (a vmdk image); parallels: cluster_size;\n" +
		"a backing file\n" +
		"without backing_fmt has its format probed)"},
}

func gioCommands() []*Command {
	return []*Command{
		{Name: "create", Args: "[-f fmt] [-o options] name|path size",
			Oneline: "creates a scratch image, removed when gio exits, or an image file (gio only)",
			Help: `
 creates a sparse image. A plain name (no '/') makes a scratch image in a
 private temporary directory: later commands (open, -o file.filename=...,
 blkdebug::name) refer to it by that name, which then hides any file of
 the same name in the working directory (create warns when it does). The
 directory is removed when gio exits, also on SIGTERM, SIGHUP and the
 like, so a script needs no setup. A path with a '/' (./x.img,
 images/x.img) makes a real file that stays, as qemu-img create does.
 create refuses to overwrite an image file that is open.

 Example:
 'create img 64k' then 'open -o driver=raw,file.align=4k blkdebug::img'
 'create -f qcow2 base 1M', then
 'create -f qcow2 -o cluster_size=4k,backing_file=base top 1M'
` + FlagHelp(createFlags) + "\n",
			Flags: createFlags, MinArgs: 2, MaxArgs: 6, Hidden: true, Family: "gio", Run: createCmd},
		recordCommand(),
		exploreCommand(),
	}
}

// createOptions are the creation options create -o takes (qcow2's, as
// qemu-img create -o names them).
var createOptions = []blk.Option{{Name: "cluster_size"}, {Name: "compat", Values: []string{"0.10", "1.1", "v2", "v3"}},
	{Name: "refcount_bits"}, {Name: "backing_file"}, {Name: "backing_fmt", Values: CreateFormats},
	{Name: "lazy_refcounts", Values: blk.OnOff()},
	{Name: "preallocation", Values: []string{"off", "metadata", "falloc", "full"}}, {Name: "data_file"}, {Name: "data_file_raw", Values: blk.OnOff()},
	{Name: "encrypt.format", Values: []string{"aes", "luks"}}, {Name: "encrypt.key-secret"}, {Name: "encrypt.iter-time"},
	{Name: "key-secret"}, {Name: "cipher-alg"}, {Name: "cipher-mode", Values: []string{"cbc", "ctr", "ecb", "xts"}},
	{Name: "ivgen-alg", Values: []string{"essiv", "plain", "plain64"}}, {Name: "ivgen-hash-alg"}, {Name: "hash-alg"}, {Name: "iter-time"},
	{Name: "static", Values: blk.OnOff()}, {Name: "subformat", Values: []string{"dynamic", "fixed", "monolithicFlat", "monolithicSparse", "streamOptimized", "twoGbMaxExtentFlat", "twoGbMaxExtentSparse"}}, {Name: "force_size", Values: blk.OnOff()}, {Name: "table_size"},
	{Name: "log_size"}, {Name: "block_size"}, {Name: "block_state_zero", Values: blk.OnOff()}}

// createCmd makes a sparse image: a scratch image for a plain name, a
// real file for a path.
func createCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	format := "raw"
	var copts *qdict.Dict
	for _, o := range opts {
		switch o.Name {
		case 'f':
			format = o.Arg
		case 'o':
			d, ok := s.parseOptionsReporting(o.Arg, func(format string, args ...any) { gioError(s, format, args...) })
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
	if !slices.Contains(CreateFormats, format) {
		gioError(s, "create: unsupported format '%s' (%s)", format, strings.Join(CreateFormats, ", "))
		return errFailed
	}
	if format == "raw" && copts != nil && copts.Len() > 0 {
		gioError(s, "create: raw takes no creation options")
		return errFailed
	}
	if len(args) != 2 {
		return errUsage
	}
	size, ok := s.num(args[1])
	if !ok {
		return errFailed
	}
	target := args[0]
	scratch := !strings.Contains(target, "/")
	var path string
	if scratch {
		if strings.ContainsAny(target, ":,") {
			gioError(s, "create: '%s': scratch image names cannot contain ':' or ','", target)
			return errFailed
		}
		if s.scratchDir == "" {
			d, err := os.MkdirTemp(scratchBase(), ScratchPrefix)
			if err != nil {
				gioError(s, "create: %v", err)
				return errFailed
			}
			s.scratchDir = d
			s.scratch = map[string]string{}
			registerScratch(d)
		}
		path = filepath.Join(s.scratchDir, target)
	} else {
		path = target
	}
	if s.Img != nil && isOpenFile(s.Img.Root, path) {
		gioError(s, "create: '%s' is the open image (or one of its files); close it first", target)
		return errFailed
	}
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
		if errors.Is(err, unix.EFBIG) {
			// qemu-img create's own wording for every format.
			err = fmt.Errorf("The image size is too large for file format '%s'", format)
		}
	}
	if err != nil {
		gioError(s, "create: %s: %s", target, errText(err))
		return errFailed
	}
	line := "create " + strings.Join(s.lastWords, " ")
	if !slices.Contains(s.createLines, line) {
		s.createLines = append(s.createLines, line)
	}
	if scratch {
		if _, known := s.scratch[target]; !known {
			if _, err := os.Stat(target); err == nil {
				gioError(s, "create: scratch image '%s' hides the file ./%s from now on; 'create ./%s SIZE' makes a real file", target, target, target)
			}
		}
		s.scratch[target] = path
	}
	return nil
}

// gioError prints a message of gio's own (no qemu-io counterpart), with
// gio's name.
func gioError(s *Session, format string, args ...any) {
	fmt.Fprintf(s.Err, "gio: "+format+"\n", args...)
}

// isOpenFile reports whether path is a file of the graph under n.
func isOpenFile(n *blk.Node, path string) bool {
	st, err := os.Stat(path)
	if err != nil || n == nil {
		return false
	}
	var walk func(n *blk.Node) bool
	walk = func(n *blk.Node) bool {
		if fn := n.Filename(); fn != "" && n.Driver().Name == "file" {
			if fst, err := os.Stat(fn); err == nil && os.SameFile(st, fst) {
				return true
			}
		}
		for _, c := range n.Children() {
			if walk(c.Node) {
				return true
			}
		}
		return false
	}
	return walk(n)
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

// Cleanup ends a trace still being written and removes the scratch
// directory.
func (s *Session) Cleanup() {
	s.StopTrace()
	if s.scratchDir != "" {
		unregisterScratch(s.scratchDir)
		// The images the session made, then the directory: two calls
		// where RemoveAll makes a dozen (explore cleans up a session per
		// schedule). Anything else in there takes the long way.
		for _, p := range s.scratch {
			os.Remove(p)
		}
		if os.Remove(s.scratchDir) != nil {
			os.RemoveAll(s.scratchDir)
		}
		s.scratchDir = ""
	}
}
