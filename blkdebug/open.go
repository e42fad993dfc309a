package blkdebug

import (
	"errors"
	"io"
	"math"
	"os"
	"strings"

	"gio/blk"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// Driver is the blkdebug driver for library use; its nodes print the
// "blkdebug: Suspended request" lines to os.Stdout. A shell that buffers
// its stdout builds its own with NewDriver.
var Driver = NewDriver(nil)

// NewDriver returns a blkdebug driver whose nodes print their messages to
// out(), called at the moment of printing so that the caller can route
// them into whatever stdout writer is current (nil means os.Stdout).
func NewDriver(out func() io.Writer) *blk.Driver {
	if out == nil {
		out = func() io.Writer { return os.Stdout }
	}
	return &blk.Driver{
		Name:          "blkdebug",
		Protocol:      "blkdebug",
		PassThrough:   true, // a filter: data goes to the image child unchanged
		ParseFilename: parseFilename,
		Open:          func(a *blk.OpenArgs) (blk.Impl, error) { return open(a, out) },
		Options:       options,
		ExactFilename: exactFilename,
	}
}

// parseFilename is blkdebug_parse_filename: "blkdebug:CONFIG:IMAGE", with
// an empty CONFIG meaning none. The image name goes to the x-image option
// (QEMU's internal name for it); Open turns it into the image child. A
// filename without the prefix is the image itself.
func parseFilename(filename string, opts *qdict.Dict) error {
	rest, ok := strings.CutPrefix(filename, "blkdebug:")
	if !ok {
		opts.Set("x-image", filename)
		return nil
	}
	cfg, img, ok := strings.Cut(rest, ":")
	if !ok {
		return blk.Msgf(unix.EINVAL, "blkdebug requires both config file and image path")
	}
	if cfg != "" {
		opts.Set("config", cfg)
	}
	opts.Set("x-image", img)
	return nil
}

// runtimeOpts are blkdebug's plain options (QEMU's runtime_opts, plus
// gio's serialise and rmw-reread); all but the first four are sizes.
var runtimeOpts = []string{"config", "x-image", "serialise", "rmw-reread",
	"align", "max-transfer", "opt-write-zero", "max-write-zero", "opt-discard", "max-discard"}

// options are runtimeOpts for completion, with the image child and the
// permission switches.
var options = func() []blk.Option {
	o := []blk.Option{{Name: "image."}, {Name: "take-child-perms."}, {Name: "unshare-child-perms."}}
	for _, n := range runtimeOpts {
		switch n {
		case "x-image":
		case "serialise", "rmw-reread":
			o = append(o, blk.Option{Name: n, Values: blk.OnOff()})
		default:
			o = append(o, blk.Option{Name: n})
		}
	}
	return o
}()

// exactFilename is blkdebug_refresh_filename: "blkdebug:CONFIG:IMAGE"
// when the image child is a plain file and no option but config changes
// what the node does (align, rules, ... are "strong" options); "" (a
// generated json: name) otherwise.
func exactFilename(n *blk.Node) string {
	own := n.Options()
	config, _ := own.Get("config")
	for _, k := range own.Keys() {
		if k != "config" {
			return ""
		}
	}
	img := n.File()
	if img == nil || img.Node.Driver().Name != "file" {
		return ""
	}
	return "blkdebug:" + config + ":" + img.Node.Filename()
}

// open opens a blkdebug node, with errors in the form the command layer
// prints verbatim.
func open(a *blk.OpenArgs, out func() io.Writer) (blk.Impl, error) {
	b, err := openNode(a, out)
	if err != nil {
		return nil, asBlkError(err)
	}
	return b, nil
}

// openNode is blkdebug_open, step for step, because the step that fails
// first decides the message: runtime options, rules (config file, then
// rule options), child permissions, the image, the limit constraints,
// then the none event.
func openNode(a *blk.OpenArgs, out func() io.Writer) (*node, error) {
	b := &node{
		out:   out,
		self:  a.Node(),
		loop:  a.Loop,
		state: 1,
		rules: make([][]*rule, len(blk.EventNames())),
	}

	// Runtime options, visited in QDict order like qemu_opts_absorb_qdict.
	var present []string
	for _, k := range a.Opts.Keys() {
		for _, r := range runtimeOpts {
			if k == r {
				present = append(present, k)
			}
		}
	}
	var (
		config, ximage       string
		hasConfig, hasXImage bool
		serialise            = true
		rmwReread            = true
		sizes                = map[string]uint64{}
	)
	for _, k := range qdictOrder(present) {
		var err error
		switch k {
		case "config":
			config, hasConfig = a.Opts.TakeString(k)
		case "x-image":
			ximage, hasXImage = a.Opts.TakeString(k)
		case "serialise":
			v, _ := a.Opts.TakeString(k)
			serialise, err = parseBool(k, v)
		case "rmw-reread":
			v, _ := a.Opts.TakeString(k)
			rmwReread, err = parseBool(k, v)
		default:
			// TODO(blkdebug): QEMU prints the warning for hex sizes with a
			// suffix ("0x1k") on stderr at once; blk.OpenArgs has no way
			// to print it yet.
			sizes[k], _, err = a.Opts.TakeSize(k, 0)
		}
		if err != nil {
			return nil, err
		}
	}

	// Rules: the config file, then the inject-error.* / set-state.*
	// options, then add_rule over both.
	store := newOptsStore()
	if hasConfig {
		data, err := readConfig(config)
		if err != nil {
			return nil, err
		}
		if err := store.parseConfig(data); err != nil {
			return nil, err
		}
	}
	od := qdict.New()
	for _, k := range a.Opts.Keys() {
		if strings.HasPrefix(k, "inject-error.") || strings.HasPrefix(k, "set-state.") {
			// Non-scalar JSON values stay behind, to be reported as
			// unsupported options.
			if v, ok := a.Opts.TakeString(k); ok {
				od.Set(k, v)
			}
		}
	}
	for _, l := range configGroups {
		if err := store.parseDictSection(od, l); err != nil {
			return nil, err
		}
	}
	rules, err := store.rules()
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		b.add(r)
	}

	// Child permissions (blkdebug_child_perm): what the image below
	// takes and shares, which its file driver turns into image locks.
	if b.takePerms, err = takePerms(a.Opts, "take-child-perms."); err != nil {
		return nil, err
	}
	if b.unsharePerms, err = takePerms(a.Opts, "unshare-child-perms."); err != nil {
		return nil, err
	}
	a.Flags.TakePerms |= b.takePerms
	a.Flags.UnsharePerms |= b.unsharePerms

	if hasXImage {
		if _, ok := a.Opts.Get("image.filename"); ok {
			return nil, errors.New("Can't specify 'file' and 'filename' options at the same time")
		}
		a.Opts.Set("image.filename", ximage)
	}
	if b.image, err = a.OpenChild("image", true, true); err != nil {
		return nil, err
	}

	// Limit overrides. The image's own alignment counts too: a maximum
	// that is not a multiple of it could not be honoured either. Values
	// are checked as QEMU's uint64_t, then fit in int64 easily.
	align := sizes["align"]
	if align != 0 && (align >= math.MaxInt32 || align&(align-1) != 0) {
		return nil, constraintError("align", align)
	}
	multiple := max(align, uint64(b.image.Node.Limits().RequestAlignment))
	for _, c := range []struct {
		name     string
		multiple uint64
	}{
		{"max-transfer", multiple},
		{"opt-write-zero", multiple},
		{"max-write-zero", max(sizes["opt-write-zero"], multiple)},
		{"opt-discard", multiple},
		{"max-discard", max(sizes["opt-discard"], multiple)},
	} {
		if v := sizes[c.name]; v != 0 && (v >= math.MaxInt32 || v%c.multiple != 0) {
			return nil, constraintError(c.name, v)
		}
	}
	b.align = int64(align)
	b.maxTransfer = int64(sizes["max-transfer"])
	b.optWriteZero = int64(sizes["opt-write-zero"])
	b.maxWriteZero = int64(sizes["max-write-zero"])
	b.optDiscard = int64(sizes["opt-discard"])
	b.maxDiscard = int64(sizes["max-discard"])

	if !serialise {
		a.Node().SetSerialisation(false)
	}
	if !rmwReread {
		a.Node().SetRMWReread(false)
	}
	// The none event fires once, here, so that rules on it are active
	// from the start. Nothing can suspend yet: breakpoints come later.
	b.process(blk.EvNone)
	return b, nil
}

func constraintError(name string, v uint64) error {
	return blk.Msgf(unix.EINVAL, "Cannot meet constraints with %s %d", name, v)
}

// readConfig reads the config file, with QEMU's messages for a file that
// cannot be opened and one that cannot be read (a directory).
func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, blk.Errorf(errnoOf(err), "Could not read blkdebug config file")
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, blk.Errorf(errnoOf(err), "Cannot read config file")
	}
	return data, nil
}

func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EIO
}

// asBlkError gives plain messages blk's error type, so that the command
// layer prints them verbatim ("can't open: Cannot meet constraints ...").
func asBlkError(err error) error {
	var be *blk.Error
	if errors.As(err, &be) {
		return err
	}
	return blk.Msgf(unix.EINVAL, "%s", err.Error())
}
