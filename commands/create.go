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
		{Name: "create", Args: "[-f raw] name size",
			Oneline: "creates a scratch image, removed when gio exits (gio only)",
			Help: `
 creates a sparse scratch image in a private temporary directory; later
 commands (open, -o file.filename=..., blkdebug::name) refer to it by name.
 The directory is removed when gio exits, so a script needs no setup.

 Example:
 'create img 64k' then 'open -o driver=raw,file.align=4k blkdebug::img'
 -f, -- image format (raw)

`,
			Opts: "f:", MinArgs: 2, MaxArgs: 4, Hidden: true, Family: "gio", Run: createCmd},
	}
}

// createCmd makes a sparse scratch image.
func createCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	format := "raw"
	for _, o := range opts {
		format = o.Arg
	}
	if format != "raw" {
		s.errorReport("create: unsupported format '%s' (raw)", format)
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
		d, err := os.MkdirTemp("", "gio-scratch-")
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
		err = f.Truncate(size)
		f.Close()
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
