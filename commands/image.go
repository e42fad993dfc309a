package commands

import (
	"errors"
	"fmt"
	"strings"

	"gio/blk"
	"gio/blk/qdict"
	"gio/internal/cvt"
	"gio/internal/getopt"
)

func imageCommands() []*Command {
	return []*Command{
		{Name: "open", Alias: "o", Args: "[-rsCnkU] [-t cache] [-d discard] [-o options] [path]",
			Oneline: "open the file specified by path", Help: openHelp,
			Flags: openFlags, MinArgs: 1, MaxArgs: -1, Family: "image", Run: openCmd,
			CheckOpts: func(s *Session, opts []getopt.Opt) error { _, err := s.openOpts(opts); return err }},
		{Name: "close", Alias: "c", Oneline: "close the current open file",
			MinArgs: 0, MaxArgs: 0, NeedsFile: true, Family: "image", Run: closeCmd},
		{Name: "reopen", Args: "[(-r|-w)] [-c cache] [-o options]",
			Oneline: "reopens an image with new options", Help: reopenHelp,
			Flags: []Flag{{Letter: 'c', Arg: "cache", Values: CacheModes}, {Letter: 'o', Arg: "options"}, {Letter: 'r'}, {Letter: 'w'}}, MinArgs: 0, MaxArgs: -1, NeedsFile: true, Family: "image", Run: reopenCmd,
			CheckOpts: func(s *Session, opts []getopt.Opt) error { _, err := s.reopenOpts(opts); return err }},
		{Name: "truncate", Alias: "t", Args: "[-m prealloc_mode] off",
			Oneline: "truncates the current file at the given offset",
			Flags:   []Flag{{Letter: 'm', Arg: "prealloc_mode", Values: PreallocModes}}, MinArgs: 1, MaxArgs: 3, NeedsFile: true, Write: true, Family: "image", Run: truncateCmd,
			CheckOpts: func(s *Session, opts []getopt.Opt) error { _, err := s.truncateOpts(opts); return err }},
		{Name: "length", Alias: "l", Oneline: "gets the length of the current file",
			MinArgs: 0, MaxArgs: 0, NeedsFile: true, Family: "image", Run: lengthCmd},
		{Name: "info", Alias: "i", Oneline: "prints information about the current file",
			MinArgs: 0, MaxArgs: 0, NeedsFile: true, Family: "image", Run: infoCmd},
		{Name: "map", Args: "", Oneline: "prints the allocated areas of a file",
			MinArgs: 0, MaxArgs: 0, NeedsFile: true, RawArgs: true, Family: "image", Run: mapCmd,
			GioArgs: []string{"-s", "--output=json", "--output=human"}},
		{Name: "alloc", Alias: "a", Args: "offset [count]",
			Oneline: "checks if offset is allocated in the file",
			MinArgs: 1, MaxArgs: 2, NeedsFile: true, RawArgs: true, Family: "image", Run: allocCmd},
	}
}

// OpenOptions are qemu-io's open flags, shared by the command line and
// the open command.
type OpenOptions struct {
	ReadOnly, Snapshot, NoCache, CopyOnRead, NativeAIO, ForceShare bool
	// Cache, Discard, AIO hold the -t, -d and -i values ("" = default).
	Cache, Discard, AIO string
	Format              string
	Opts                *qdict.Dict
	// EmptyName: the image was named, by an empty string (qemu-io ''),
	// which QEMU opens as a file name and the file driver refuses.
	EmptyName bool
}

// SetAIO records a -i value as bdrv_parse_aio does: "native" and
// "io_uring" add a flag that a later "threads" does not clear, and
// native wins over io_uring.
func (o *OpenOptions) SetAIO(mode string) {
	switch mode {
	case "native":
		o.NativeAIO = true
	case "io_uring":
		o.AIO = mode
	case "threads":
		if o.AIO == "" {
			o.AIO = mode
		}
	}
}

// cacheMode parses a -t value into direct, writethrough, no-flush
// (bdrv_parse_cache_mode).
func cacheMode(mode string) (direct, writethrough, noFlush, ok bool) {
	switch mode {
	case "none", "off":
		return true, false, false, true
	case "directsync":
		return true, true, false, true
	case "writeback":
		return false, false, false, true
	case "unsafe":
		return false, false, true, true
	case "writethrough":
		return false, true, false, true
	}
	return false, false, false, false
}

// OpenImage opens name (may be empty) with o, as qemu-io's openfile does,
// printing its errors and the probe warning. It reports success.
func (s *Session) OpenImage(name string, o OpenOptions) bool {
	if s.Img != nil {
		s.errorReport("file open already, try 'help close'")
		return false
	}
	if o.Opts != nil {
		o.Opts = o.Opts.Clone()
		if v, ok := o.Opts.Get("force-share"); ok && o.ForceShare {
			if fs, err := qdict.ParseBool("force-share", v); err == nil && !fs {
				s.errorReport("-U conflicts with image options")
				return false
			}
		}
	}
	given := name
	name = s.resolveScratch(name, o.Opts)
	spec := blk.Spec{Filename: name, Opts: o.Opts, Format: o.Format, WriteThrough: true, EmptyName: o.EmptyName && name == ""}
	spec.Flags.Unmap = true
	if o.NoCache {
		spec.Flags.Direct = true
		spec.WriteThrough = false
	}
	if o.Cache != "" {
		direct, wt, nf, ok := cacheMode(o.Cache)
		if !ok {
			s.errorReport("Invalid cache option: %s", o.Cache)
			return false
		}
		spec.Flags.Direct, spec.WriteThrough, spec.Flags.NoFlush = direct, wt, nf
	}
	if o.Discard != "" {
		unmap, ok := blk.ParseDiscard(o.Discard)
		if !ok {
			s.errorReport("Invalid discard option: %s", o.Discard)
			return false
		}
		spec.Flags.Unmap = unmap
	}
	aio := o.AIO
	if o.NativeAIO {
		// BDRV_O_NATIVE_AIO stays set whatever -i says.
		aio = "native"
	}
	switch aio {
	case "", "threads", "native", "io_uring":
	default:
		s.errorReport("Invalid aio option: %s", aio)
		return false
	}
	spec.Flags.AIO = aio
	spec.Flags.ReadOnly = o.ReadOnly
	spec.Flags.ForceShare = o.ForceShare
	device := ""
	if given != "" || o.EmptyName {
		device = " device " + given
	}
	if aio == "native" && !spec.Flags.Direct {
		s.errorReport("can't open%s: aio=native was specified, but it requires cache.direct=on, which was not specified.", device)
		return false
	}
	if o.ForceShare && !o.ReadOnly && !o.Snapshot {
		// With -s the image is read-only under its overlay: -U is fine.
		s.errorReport("can't open%s: force-share=on can only be used with read-only images", device)
		return false
	}
	overlay := spec.Flags
	overlay.ForceShare = false // the overlay is the writer; -U is the image's
	if o.Snapshot {
		// The image is opened read-only, as a backing file, under a
		// temporary qcow2 overlay that takes the writes.
		spec.Flags.ReadOnly = true
	}
	// The probe warning comes from the raw driver's open, so it is
	// printed even when the open fails afterwards.
	spec.ProbeWarning = func(file *blk.Node) {
		// QEMU names the raw node's file child: a plain file by its
		// file name (its other options are not part of its name),
		// otherwise the name as given, unless options of its own make it
		// a generated json: name.
		shown := probeName(file, given)
		fmt.Fprintf(s.Err, "WARNING: Image format was not specified for '%s' and probing guessed raw.\n"+
			"         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n"+
			"         Specify the 'raw' format explicitly to remove the restrictions.\n", shown)
	}
	img, err := s.Reg.Open(spec, s.Loop)
	if err == nil && o.Snapshot {
		err = s.Reg.AppendTempSnapshot(img, overlay)
	}
	if err == nil && o.CopyOnRead {
		if err = img.SetCopyOnRead(); err != nil {
			img.Close()
		}
	}
	if err != nil {
		s.errorReport("can't open%s: %s", device, errText(err))
		return false
	}
	s.Img = img
	s.openLine = o.openLine(given)
	return true
}

// openLine is the open command that opens name with o again (for a
// recording that starts with the image open).
func (o OpenOptions) openLine(name string) string {
	w := []string{"open"}
	for _, f := range []struct {
		on   bool
		flag string
	}{{o.ReadOnly, "-r"}, {o.Snapshot, "-s"}, {o.CopyOnRead, "-C"}, {o.NativeAIO, "-k"}, {o.ForceShare, "-U"}} {
		if f.on {
			w = append(w, f.flag)
		}
	}
	for _, f := range []struct{ flag, v string }{{"-t", o.Cache}, {"-d", o.Discard}, {"-i", o.AIO}} {
		if f.v != "" {
			w = append(w, f.flag, f.v)
		}
	}
	var kv []string
	if o.Format != "" {
		kv = append(kv, "driver="+o.Format)
	}
	if o.Opts != nil {
		for _, k := range o.Opts.Keys() {
			v, _ := o.Opts.Get(k)
			kv = append(kv, k+"="+strings.ReplaceAll(v, ",", ",,"))
		}
	}
	if len(kv) > 0 {
		w = append(w, "-o", strings.Join(kv, ","))
	}
	if name != "" {
		w = append(w, name)
	}
	return strings.Join(w, " ")
}

// ReplayLines are the lines that bring a new session to this one's
// state: the create commands that made its images, then the open of the
// image that is open (none when no image is open).
func (s *Session) ReplayLines() []string {
	if s.Img == nil {
		return nil
	}
	return append(append([]string(nil), s.createLines...), s.openLine)
}

// probeName is the name QEMU gives the probed raw node's file child in
// its warning (bdrv_refresh_filename): the driver's exact file name when
// it has one (blk.Driver.ExactFilename), else a generated json: name of
// all the node's options; a driver without the hook keeps the name as
// given.
func probeName(file *blk.Node, given string) string {
	if exact := file.Driver().ExactFilename; exact != nil {
		if name := exact(file); name != "" {
			return name
		}
	} else if given != "" {
		return given
	}
	return "json:" + file.FullOptions().JSON(file.ChildNames()...)
}

// openCmd is qemu-io's open_f.
func openCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	o, err := s.openOpts(opts)
	if err != nil {
		return err
	}
	if s.ImageOpts && len(args) == 1 {
		d, ok := s.ParseOptions(args[0])
		if !ok {
			return errFailed
		}
		o.Opts = d
		args = nil
	}
	var path string
	switch len(args) {
	case 0:
	case 1:
		path = args[0]
	default:
		return errUsage
	}
	if !s.OpenImage(path, o) {
		return errFailed
	}
	return nil
}

// openOpts reads open's options in order, failing (reported) at the
// first bad value as open_f's getopt loop does; it is open's CheckOpts.
func (s *Session) openOpts(opts []getopt.Opt) (OpenOptions, error) {
	var o OpenOptions
	for _, op := range opts {
		if known, err := o.ApplyOpenFlag(op.Name, op.Arg); known {
			if err != nil {
				s.errorReport("%v", err)
				return o, errFailed
			}
			continue
		}
		switch op.Name {
		case 'o':
			if s.ImageOpts {
				fmt.Fprintln(s.Out, "--image-opts and 'open -o' are mutually exclusive")
				return o, errFailed
			}
			d, ok := s.ParseOptions(op.Arg)
			if !ok {
				return o, errFailed
			}
			if o.Opts == nil {
				o.Opts = d
			} else {
				for _, k := range d.Keys() {
					v, _ := d.Get(k)
					o.Opts.Set(k, v)
				}
			}
		}
	}
	return o, nil
}

// ParseOptions parses a -o / --image-opts string, printing warnings and
// errors as qemu_opts_parse_noisily does.
func (s *Session) ParseOptions(str string) (*qdict.Dict, bool) {
	return s.parseOptionsReporting(str, s.errorReport)
}

// parseOptionsReporting is ParseOptions printing with report (gio's
// own commands print with gio's name).
func (s *Session) parseOptionsReporting(str string, report func(format string, args ...any)) (*qdict.Dict, bool) {
	d, warnings, err := qdict.ParseKeyValue(str)
	for _, w := range warnings {
		report("%s", w)
	}
	if err != nil {
		report("%s", err)
		return nil, false
	}
	return d, true
}

// CloseImage drains, flushes and closes the image. Where qemu-io would
// hang (requests suspended at a breakpoint nobody can resume any more),
// the image is closed anyway and the requests are dropped: they never
// complete. That is said on stderr, naming each one; the close itself
// succeeded, so it is not a failure.
func (s *Session) CloseImage() bool {
	if s.Img == nil {
		return true
	}
	if !s.stopNBD() {
		return false
	}
	err := s.Img.Close()
	s.Img = nil
	s.openLine = ""
	var st *blk.ErrStuck
	if errors.As(err, &st) {
		fmt.Fprintf(s.Err, "gio: image closed; dropped requests that can never complete: %s\n", strings.Join(st.Waiters, "; "))
		return true
	}
	return err == nil
}

func closeCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	if !s.CloseImage() {
		return errFailed
	}
	return nil
}

// reopenCmd is qemu-io's reopen_f: read-only state and cache mode can
// change; driver options cannot.
func reopenCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	ro := s.Img.ReadOnly()
	r, err := s.reopenOpts(opts)
	if err != nil {
		return err
	}
	hasRW, cache, ropts := r.hasRW, r.cache, r.opts
	if hasRW {
		ro = r.ro
	}
	if len(args) != 0 {
		return errUsage
	}
	if err := s.Img.CheckReopen(); err != nil {
		s.errorReport("%s", errText(err))
		return errFailed
	}
	if ro {
		// reopen_f gives up the write permission before a reopen
		// without BDRV_O_RDWR, and does not take it back should the
		// reopen fail.
		s.Img.DropUserWrite()
	}
	// bdrv_can_set_read_only refuses read-only with copy-on-read on.
	corCheck := func(newRO bool) bool {
		if newRO && !s.Img.ReadOnly() && s.Img.CopyOnRead() {
			s.errorReport("Can't set node '%s' to r/o with copy-on-read enabled", s.Img.Root.MessageName())
			return false
		}
		return true
	}
	var commit, commitDiscard func()
	change := map[string]bool{} // cache.direct, cache.no-flush
	if ropts == nil && !corCheck(ro) {
		return errFailed
	}
	if ropts != nil {
		if ropts.Has("read-only") && hasRW {
			s.errorReport("Cannot set both -r/-w and 'read-only'")
			return errFailed
		}
		if !reopenGeneric(s, ropts, cache != "", change) {
			return errFailed
		}
		if ropts.Has("discard") || ropts.Has("detect-zeroes") {
			// The node's discard and detect-zeroes modes change at
			// commit (bdrv_reopen_prepare and _commit). qcow2's
			// pass-discard-request keeps its value (a gio limit).
			unmap, dz, err := s.Img.Root.TakeReopenDiscard(ropts)
			if err != nil {
				s.errorReport("%s", errText(err))
				return errFailed
			}
			root := s.Img.Root
			commitDiscard = func() { root.SetDiscard(unmap, dz) }
		}
		newRO := ro
		if v, ok := ropts.Get("read-only"); ok && !hasRW {
			newRO = v == "on" || v == "true" || v == "yes"
		}
		if !corCheck(newRO) {
			return errFailed
		}
		c, err := prepareReopenTree(s.Img.Root, ropts, newRO)
		if err != nil {
			s.errorReport("%s", errText(err))
			return errFailed
		}
		commit = c
		for _, k := range ropts.Keys() {
			v, _ := ropts.Get(k)
			switch k {
			case "read-only":
				if hasRW {
					s.errorReport("Cannot set both -r/-w and 'read-only'")
					return errFailed
				}
				ro = v == "on" || v == "true" || v == "yes"
			default:
				// A child's option is checked by the child's own reopen,
				// which names it without the prefix ("file.align" is
				// 'align'), after the node's own options.
				s.errorReport("Cannot change the option '%s'", reopenKey(s.Img.Root, ropts.HashOrderKeys()))
				return errFailed
			}
		}
	}
	if err := s.Loop.Drain("reopen"); err != nil {
		return s.stuck(err)
	}
	if ro && !s.Img.ReadOnly() {
		// Going read-only flushes what was written, as bdrv_reopen does
		// (ignoring a failure). A flush that cannot finish fails the
		// reopen before anything changed; the flush itself changes no
		// data, whenever it completes.
		co := s.Loop.Spawn("reopen flush", func(co *blk.Co) { _ = s.Img.Flush(co) })
		if err := s.Loop.RunUntil(co.Name(), co.Done); err != nil {
			if e := s.stuck(err); e != nil {
				return e
			}
			s.errorReport("%s", errText(err))
			return errFailed
		}
	}
	if ro && !s.Img.ReadOnly() && s.Img.HoldsWrite() {
		// The user kept its write permission ("-o read-only=on"
		// without -r): the permission update fails the reopen.
		s.errorReport("Read-only block node '%s' cannot support read-write users", s.Img.Root.MessageName())
		return errFailed
	}
	if cache != "" {
		direct, _, nf, _ := cacheMode(cache)
		change["cache.direct"], change["cache.no-flush"] = direct, nf
	}
	// O_DIRECT changes first, undone should the read-only change fail.
	oldDirect := s.Img.Flags().Direct
	direct, changeDirect := change["cache.direct"]
	if changeDirect {
		if err := s.Img.SetDirect(direct); err != nil {
			s.errorReport("%s", errText(err))
			return errFailed
		}
	}
	if err := s.Img.SetReadOnly(ro); err != nil {
		if changeDirect {
			_ = s.Img.SetDirect(oldDirect)
		}
		s.errorReport("%s", errText(err))
		return errFailed
	}
	if commit != nil {
		commit()
	}
	if commitDiscard != nil {
		commitDiscard()
	}
	if cache != "" {
		_, wt, _, _ := cacheMode(cache)
		s.Img.SetWriteThrough(wt)
	}
	if nf, ok := change["cache.no-flush"]; ok {
		s.Img.SetNoFlush(nf)
	}
	return nil
}

// reopenOptions are reopen's options.
type reopenOptions struct {
	hasRW, ro bool // -r or -w given; which
	cache     string
	opts      *qdict.Dict
}

// reopenOpts reads reopen's options in order, failing (reported) at the
// first bad one as reopen_f's getopt loop does; it is reopen's CheckOpts.
func (s *Session) reopenOpts(opts []getopt.Opt) (reopenOptions, error) {
	var r reopenOptions
	for _, o := range opts {
		switch o.Name {
		case 'c':
			if _, _, _, ok := cacheMode(o.Arg); !ok {
				s.errorReport("Invalid cache option: %s", o.Arg)
				return r, errFailed
			}
			r.cache = o.Arg
		case 'o':
			d, ok := s.ParseOptions(o.Arg)
			if !ok {
				return r, errFailed
			}
			if r.opts == nil {
				r.opts = d
				break
			}
			// Every -o goes into the same QemuOpts (reopen_opts
			// merges its lists): a later value of a key wins.
			for _, k := range d.Keys() {
				v, kind, _ := d.Lookup(k)
				r.opts.SetKind(k, v, kind)
			}
		case 'r', 'w':
			if r.hasRW {
				s.errorReport("Only one -r/-w option may be given")
				return r, errFailed
			}
			r.hasRW = true
			r.ro = o.Name == 'r'
		}
	}
	return r, nil
}

// truncateOpts reads truncate's -m, failing (reported) on a bad mode; it
// is truncate's CheckOpts.
func (s *Session) truncateOpts(opts []getopt.Opt) (blk.Prealloc, error) {
	prealloc := blk.PreallocOff
	for _, o := range opts {
		p, ok := blk.ParsePrealloc(o.Arg)
		if !ok {
			s.errorReport("Invalid preallocation mode '%s'", o.Arg)
			return prealloc, errFailed
		}
		prealloc = p
	}
	return prealloc, nil
}

// truncateCmd is qemu-io's truncate_f. qemu-io 7.2 crashes on
// "truncate -m MODE" with no offset; gio prints the usage line.
func truncateCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	prealloc, err := s.truncateOpts(opts)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return errUsage
	}
	size, warn, err := cvt.ParseNumWarn(args[0])
	if warn != "" {
		fmt.Fprintf(s.Err, "%s: warning: %s\n", ProgName, warn)
	}
	if err != nil {
		// qemu-io names argv[1] here, which is the option when one was
		// given ("-- -m"); reproduced for byte compatibility.
		shown := s.lastWords[0]
		fmt.Fprintln(s.Out, strings.Replace(err.Error(), "-- "+args[0], "-- "+shown, 1))
		return errFailed
	}
	return s.runSync("truncate", func(co *blk.Co) error { return s.Img.Truncate(co, size, prealloc) }, func(err error) error {
		if err != nil {
			s.errorReport("%s", errText(err))
			return errFailed
		}
		return nil
	})
}

func lengthCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	var l int64
	return s.runSync("length", func(co *blk.Co) (err error) { l, err = s.Img.Length(co); return }, func(err error) error {
		if err != nil {
			fmt.Fprintf(s.Out, "getlength: %s\n", errText(err))
			return errFailed
		}
		fmt.Fprintln(s.Out, cvt.Size(float64(l)))
		return nil
	})
}

// infoCmd is qemu-io's info_f: protocol and filter drivers have both a
// format and a protocol name, so theirs prints twice.
func infoCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	d := s.Img.Root.Driver()
	fmt.Fprintf(s.Out, "format name: %s\n", d.Name)
	if !d.Format {
		fmt.Fprintf(s.Out, "format name: %s\n", d.Name)
	}
	info, err := s.Img.Info()
	if err != nil {
		return errFailed
	}
	fmt.Fprintf(s.Out, "cluster size: %s\n", cvt.Size(float64(info.ClusterSize)))
	fmt.Fprintf(s.Out, "vm state offset: %s\n", cvt.Size(float64(info.VMStateOffset)))
	if len(info.Specific) > 0 {
		fmt.Fprintln(s.Out, "Format specific information:")
		for _, l := range info.Specific {
			fmt.Fprintf(s.Out, "    %s\n", l)
		}
	}
	return nil
}

// mapCmd is qemu-io's map_f, or with -s / --output=json gio's
// qemu-img-map-style block status (see mapStatus).
func mapCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	if len(args) > 0 {
		json := false
		for _, a := range args {
			json = json || a == "--output=json"
		}
		return mapStatusCmd(s, json)
	}
	var length int64
	var lerr error
	var lines []string
	return s.runSync("map", func(co *blk.Co) error {
		length, lerr = s.Img.Length(co)
		if lerr != nil {
			return nil
		}
		for off, left := int64(0), length; left > 0; {
			if co.Loop().Interrupted() {
				return blk.ErrInterrupted
			}
			alloc, n, err := mapIsAllocated(co, s.Img, off, left)
			if err != nil {
				return err
			}
			if n == 0 {
				return errUnexpectedEnd
			}
			what := "not allocated"
			if alloc {
				what = "    allocated"
			}
			lines = append(lines, fmt.Sprintf("%s (0x%x) bytes %s at offset %s (0x%x)",
				cvt.Size(float64(n)), n, what, cvt.Size(float64(off)), off))
			off += n
			left -= n
		}
		return nil
	}, func(err error) error {
		if lerr != nil {
			s.errorReport("Failed to query image length: %s", errText(lerr))
			return errFailed
		}
		for _, l := range lines {
			fmt.Fprintln(s.Out, l)
		}
		if err == errUnexpectedEnd {
			s.errorReport("Unexpected end of image")
			return errFailed
		}
		if err != nil {
			s.errorReport("Failed to get allocation status: %s", errText(err))
			return errFailed
		}
		return nil
	})
}

var errUnexpectedEnd = fmt.Errorf("unexpected end of image")

// mapIsAllocated merges consecutive answers with the same allocation
// state (qemu-io's map_is_allocated).
func mapIsAllocated(co *blk.Co, img *blk.Backend, off, bytes int64) (bool, int64, error) {
	first, num, err := img.IsAllocated(co, off, bytes)
	if err != nil {
		return false, 0, err
	}
	pnum := num
	for bytes > 0 {
		off += num
		bytes -= num
		if bytes == 0 {
			break
		}
		a, n, err := img.IsAllocated(co, off, bytes)
		if err != nil || a != first || n == 0 {
			break
		}
		num = n
		pnum += n
	}
	return first, pnum, nil
}

// allocCmd is qemu-io's alloc_f: no alignment checks, no length limit,
// count clipped to the image.
func allocCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	start, ok := s.num(args[0])
	if !ok {
		return errFailed
	}
	count := int64(512)
	if len(args) == 2 {
		if count, ok = s.num(args[1]); !ok {
			return errFailed
		}
	}
	var sum int64
	return s.runSync("alloc", func(co *blk.Co) error {
		off, remaining := start, count
		for remaining > 0 {
			if co.Loop().Interrupted() {
				return blk.ErrInterrupted
			}
			alloc, n, err := s.Img.IsAllocated(co, off, remaining)
			if err != nil {
				return err
			}
			off += n
			remaining -= n
			if alloc {
				sum += n
			}
			if n == 0 {
				count -= remaining
				remaining = 0
			}
		}
		return nil
	}, func(err error) error {
		if err != nil {
			fmt.Fprintf(s.Out, "is_allocated failed: %s\n", errText(err))
			return errFailed
		}
		fmt.Fprintf(s.Out, "%d/%d bytes allocated at offset %s\n", sum, count, cvt.Size(float64(start)))
		return nil
	})
}

// reopenKey names the option bdrv_reopen_prepare complains about first.
// Options of a child ("file.align") are handed to that child's reopen,
// which names them without the prefix ('align'); the top node checks its
// own options before its children do.
// prepareReopenTree lets the drivers take their reopen options, the
// node's own first, then each child's under its prefix ("file.x"), as
// bdrv_reopen_prepare does down the queue; the options no driver takes
// stay in ropts. The returned commit applies them all. After an error
// nothing has changed.
func prepareReopenTree(n *blk.Node, ropts *qdict.Dict, readOnly bool) (func(), error) {
	var commits []func()
	commitAll := func() {
		for _, c := range commits {
			c()
		}
	}
	if r, ok := n.Impl().(blk.OptionReopener); ok {
		c, err := r.PrepareReopen(ropts, readOnly)
		if err != nil {
			return nil, err
		}
		commits = append(commits, c)
	}
	for _, ch := range n.Children() {
		if ch.Name == "backing" || !ropts.HasPrefix(ch.Name) {
			continue
		}
		sub := ropts.ExtractPrefix(ch.Name)
		c, err := prepareReopenTree(ch.Node, sub, readOnly)
		for _, k := range sub.Keys() {
			v, kind, _ := sub.Lookup(k)
			ropts.SetKind(ch.Name+"."+k, v, kind)
		}
		if err != nil {
			return nil, err
		}
		commits = append(commits, c)
	}
	return commitAll, nil
}

func reopenKey(root *blk.Node, keys []string) string {
	best, bestDepth := "", -1
	for _, k := range keys {
		if k == "read-only" {
			continue
		}
		n, depth := root, 0
	descend:
		for {
			for _, c := range n.Children() {
				if rest, ok := strings.CutPrefix(k, c.Name+"."); ok {
					n, k, depth = c.Node, rest, depth+1
					continue descend
				}
			}
			break
		}
		if bestDepth < 0 || depth < bestDepth {
			best, bestDepth = k, depth
		}
	}
	return best
}
