package blk

import (
	"fmt"
	"io"
	"os"
	"strings"

	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// Driver holds a driver's static facts and its Open function (QEMU's
// BlockDriver, minus the callbacks, which are interfaces on Impl).
type Driver struct {
	// Name is the driver's QEMU name: "file", "raw", "null-co", "blkdebug".
	Name string
	// Format drivers (raw, qcow2) interpret a child's bytes; they are
	// candidates for probing, and their option errors say "Block format".
	Format bool
	// Protocol is the filename prefix the driver owns ("null-co" for
	// "null-co://", "blkdebug" for "blkdebug:..."), if any.
	Protocol string
	// ParseFilename turns a filename into options (protocol drivers).
	ParseFilename func(filename string, opts *qdict.Dict) error
	// ProbeDevice scores how likely a plain file name (one with no
	// protocol prefix) names a device this protocol driver handles
	// (QEMU's bdrv_probe_device: host_device for /dev/sda); 0 means no,
	// and the file driver takes it.
	ProbeDevice func(filename string) int
	// Probe scores how likely head (the first bytes of an image) is in
	// this format; 0 means no.
	Probe func(head []byte) int
	// ProbeName scores a format that only its file name tells (dmg:
	// "*.dmg"), where QEMU's bdrv_probe looks at the filename instead.
	ProbeName func(filename string) int
	// Open opens a node. It must take every option it understands from
	// a.Opts; leftovers are reported as unsupported options.
	Open func(a *OpenArgs) (Impl, error)
	// SupportsBacking marks formats with backing files (qcow2): block
	// status reads an area neither data nor zero in such a node as
	// zeroes when there is no backing file, or past its end.
	SupportsBacking bool
	// PassThrough marks drivers that change nothing when a request
	// enters them but hand it on to a child (raw, blkdebug). A request
	// that has entered only such drivers has not started its I/O, so a
	// wait of the generic layer below them may still be withdrawn
	// (Loop.Withdraw). Formats with state of their own (qcow2) and
	// protocols leave it false.
	PassThrough bool
	// Create formats an empty protocol node as an image of this format
	// (QEMU's bdrv_co_create); nil when the driver cannot create images.
	Create func(co *Co, a *CreateArgs) error
	// CreateFile makes filename an empty file of this protocol, creating
	// it if need be (QEMU's bdrv_create_file with size 0), for formats
	// whose images span several files; nil when the protocol cannot.
	CreateFile func(filename string) error
	// ExactFilename is the driver's part of QEMU's bdrv_refresh_filename:
	// the plain name that opens node n again with the same behaviour
	// ("blkdebug:CONFIG:IMAGE", a file's path), or "" when options of
	// its own make a generated json: name the only faithful one. Nil
	// for drivers whose nodes are named as the user gave them.
	ExactFilename func(n *Node) string
	// NoReopen marks drivers QEMU cannot reopen (no bdrv_reopen_prepare:
	// bochs, cloop, dmg, parallels): every reopen of an image with such a
	// node fails, whatever it would change (Backend.CheckReopen).
	NoReopen bool
	// Options lists the runtime options the driver takes, for the
	// shell's completion only (Open does not consult it). A child is
	// listed as its name with a dot ("image."); "file." for formats and
	// "backing." for formats with backing files are implied.
	Options []Option
}

// imageFormat tells an image format (raw, qcow2, bochs: a driver that
// probes) from the filters that are formats only in blk's sense
// (copy-on-read, compress): QEMU's bdrv_get_info and
// bdrv_co_block_status look through a filter to its child, never below
// an image format.
func (d *Driver) imageFormat() bool { return d.Format && (d.Probe != nil || d.ProbeName != nil) }

// Option is one runtime option of a driver: its name and, when it takes
// one of a few words, those words.
type Option struct {
	Name   string
	Values []string
}

// onOff are the values of a boolean option as QEMU spells them.
var onOff = []string{"off", "on"}

// OnOff returns the values of a boolean option.
func OnOff() []string { return onOff }

// Registry is the set of drivers a program knows. cmd/gio builds one;
// tests build their own.
type Registry struct {
	drivers []*Driver
	// Warn, if set, prints a warning raised while opening (QEMU's
	// warn_report); msg starts with "warning: ", as qdict's warnings do,
	// and the program prefixes its name. See OpenArgs.Warnf.
	Warn func(msg string)
	// Exit, if set, ends the program for a driver that must (quorum's
	// blkverify on a mismatch, as QEMU exits there); the program flushes
	// its output first. Without it, os.Exit.
	Exit func(code int)
	// nodeNames are the node-names of the open nodes (nodename.go).
	nodeNames map[string]bool
	// Stderr, if set, receives what drivers print to stderr without the
	// program's name (QEMU's qcow2 prints corruption events so).
	Stderr io.Writer
	// ReportErr, if set, prints an error a driver meets outside any
	// request, such as a failed write-back at close (QEMU's
	// error_report): the program's name, then the error's text.
	ReportErr func(err error)
	// secrets resolves secret ids (SetSecrets); nil means none defined.
	secrets Secrets
}

// Exit ends the program, as a few QEMU drivers do on an unrecoverable
// inconsistency (see Registry.Exit).
func (a *OpenArgs) Exit(code int) {
	if a.reg.Exit != nil {
		a.reg.Exit(code)
	}
	os.Exit(code)
}

// NewRegistry returns a registry holding drivers.
func NewRegistry(drivers ...*Driver) *Registry { return &Registry{drivers: drivers} }

// Lookup finds a driver by name.
func (r *Registry) Lookup(name string) *Driver {
	for _, d := range r.drivers {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// Drivers returns every registered driver.
func (r *Registry) Drivers() []*Driver { return r.drivers }

// Add registers one more driver (gio explore --crash serves crash images
// from memory so).
func (r *Registry) Add(d *Driver) { r.drivers = append(r.drivers, d) }

// Replace puts d in the place of the registered driver of the same name
// and reports whether there was one. gio explore --crash wraps the file
// driver so, to record what reaches the disk below the format node.
func (r *Registry) Replace(d *Driver) bool {
	for i, old := range r.drivers {
		if old.Name == d.Name {
			r.drivers[i] = d
			return true
		}
	}
	return false
}

// protocolFor is bdrv_find_protocol: a name with a "proto:" prefix (a
// colon before any slash) belongs to the driver owning that protocol,
// and a prefix no driver owns is an error naming it; any other name is
// a file. "file:" is the file driver's own prefix.
func (r *Registry) protocolFor(filename string) (*Driver, error) {
	// find_hdev_driver comes first, as in QEMU: the device driver with
	// the best score for the name wins.
	var best *Driver
	bestScore := 0
	for _, d := range r.drivers {
		if d.ProbeDevice != nil {
			if s := d.ProbeDevice(filename); s > bestScore {
				best, bestScore = d, s
			}
		}
	}
	if best != nil {
		return best, nil
	}
	i := strings.IndexAny(filename, ":/")
	if i < 0 || filename[i] == '/' {
		return r.Lookup("file"), nil
	}
	proto := filename[:i]
	for _, d := range r.drivers {
		if d.Protocol == proto {
			return d, nil
		}
	}
	if proto == "file" {
		return r.Lookup("file"), nil
	}
	// QEMU copies the prefix into a 128-byte buffer.
	if len(proto) > 127 {
		proto = proto[:127]
	}
	return nil, fmt.Errorf("Unknown protocol '%s'", proto)
}

// OpenFlags are the node-wide open settings inherited by children.
type OpenFlags struct {
	ReadOnly   bool
	Direct     bool // cache.direct: O_DIRECT
	NoFlush    bool // cache.no-flush (cache=unsafe)
	Unmap      bool // discard=unmap
	ForceShare bool
	AIO        string // threads, native, io_uring
	// Check opens the image for a consistency check (BDRV_O_CHECK, as
	// qemu-img check does): a format opens what it can of a damaged
	// image and repairs nothing on its own (qcow2: no dirty-image
	// repair, a corrupt image may be opened read/write for -r).
	Check bool
	// TakePerms and UnsharePerms adjust what the nodes below take and
	// share on top of what their parents need (blkdebug's
	// take-child-perms and unshare-child-perms); the file driver locks
	// the result (see Perm).
	TakePerms, UnsharePerms Perm
	// WritablePerms are what the parent takes whenever it is writable,
	// and gives back when it becomes read-only (qcow2: write and resize
	// on its file, bdrv_default_perms_for_storage), so that reopen -r
	// and -w move them as QEMU does.
	WritablePerms Perm
}

// OpenArgs is what a driver's Open receives.
type OpenArgs struct {
	Opts  *qdict.Dict
	Flags OpenFlags
	Loop  *Loop
	node  *Node
	reg   *Registry
	// preopened children by role, for probing (the protocol node is opened
	// before the format is known).
	preopened map[string]*Node
	// warn prints the probe warning (Spec.ProbeWarning).
	warn func(file *Node)
	// noBacking: the options said "backing": null (OpenBacking opens
	// nothing).
	noBacking bool
}

// Warnf reports a warning while opening, such as qdict's deprecation
// warning for a size suffix on a hex number ("warning: Using a multiplier
// suffix on hex numbers is deprecated: 0x1k"); the program decides where
// it goes.
func (a *OpenArgs) Warnf(format string, args ...any) {
	if a.reg.Warn != nil {
		a.reg.Warn(fmt.Sprintf(format, args...))
	}
}

// Stderr is where the driver prints messages QEMU's drivers print to
// stderr themselves; never nil.
func (a *OpenArgs) Stderr() io.Writer {
	if a.reg == nil || a.reg.Stderr == nil {
		return io.Discard
	}
	return a.reg.Stderr
}

// ReportFunc returns the function that reports errors met outside any
// request (Registry.ReportErr); it stays valid after the open.
func (a *OpenArgs) ReportFunc() func(err error) {
	if a.reg == nil || a.reg.ReportErr == nil {
		return func(error) {}
	}
	return a.reg.ReportErr
}

// WarnProbed prints the warning about a probed raw image opened
// writable; the raw driver calls it once its file child is open, where
// raw_open prints it (so it shows even when the open fails later).
func (a *OpenArgs) WarnProbed() {
	if a.warn != nil && a.node.probed && !a.node.readOnly && a.node.file != nil {
		a.warn(a.node.file.Node)
	}
}

// RunSync runs fn as a request on the loop the node opens in (a fresh
// virtual-time loop when the caller gave none), for a driver's reads at
// open.
func (a *OpenArgs) RunSync(name string, fn func(co *Co) error) error {
	loop := a.Loop
	if loop == nil {
		loop = NewLoop(NewVirtualClock())
	}
	return loop.RunSync(name, fn)
}

// ApplyAutoReadOnly is QEMU's bdrv_apply_auto_read_only for the formats
// it can only read (bochs, cloop, dmg): a writable open fails with
// "Image is read-only", before the file is opened.
func (a *OpenArgs) ApplyAutoReadOnly() error {
	if !a.Flags.ReadOnly {
		return Msgf(unix.EACCES, "Image is read-only")
	}
	return nil
}

// OpenStorageChild opens the "file" child of a format that keeps its
// image there (qcow2, qed, vdi...), with what QEMU's
// bdrv_default_perms_for_storage gives such a child: resize taken while
// the node is writable, write and resize taken whenever it is writable
// and shared with no one. a.Flags is as before when it returns.
func (a *OpenArgs) OpenStorageChild() (*Child, error) {
	return a.OpenStorageChildNamed("file", true, true)
}

// SetChildFilename gives the child called name the file name its parent
// found for it (vmdk's extents, named by the descriptor), where QEMU's
// bdrv_fill_options puts a child's file name: a protocol child (no
// driver, or a protocol driver) takes it as its "filename", and its
// options must not name one too; a format child passes it on to its own
// file child. Filename prefixes such as "blkdebug:" are not parsed for a
// child, so a protocol that takes no file name (blkdebug, null-co)
// refuses it at open as an option it does not support.
func (a *OpenArgs) SetChildFilename(name, filename string) error {
	for {
		if drv, ok := a.Opts.Get(name + ".driver"); ok {
			d := a.reg.Lookup(drv)
			if d == nil {
				return nil // the open says "Unknown driver"
			}
			if d.Format {
				name += ".file"
				continue
			}
		}
		if _, ok := a.Opts.Get(name + ".filename"); ok {
			return fmt.Errorf("Can't specify 'file' and 'filename' options at the same time")
		}
		a.Opts.Set(name+".filename", filename)
		return nil
	}
}

// OpenStorageChildNamed opens the child called name (required) with the
// permissions bdrv_default_perms_for_storage gives it: resize taken
// while the node is writable (a data child's writer may grow it),
// write and resize taken whenever it is writable, resize shared with no
// one, and write shared with no one when the child holds metadata. A
// child of guest data alone (vmdk's flat extents, BDRV_CHILD_DATA)
// shares write. a.Flags is as before when it returns.
func (a *OpenArgs) OpenStorageChildNamed(name string, primary, metadata bool) (*Child, error) {
	flags := a.Flags
	defer func() { a.Flags = flags }()
	if !a.Flags.ReadOnly {
		a.Flags.TakePerms |= PermResize
	}
	a.Flags.WritablePerms |= PermWrite | PermResize
	a.Flags.UnsharePerms |= PermResize
	if metadata {
		a.Flags.UnsharePerms |= PermWrite
	}
	return a.OpenChild(name, primary, true)
}

// Node returns the node being opened (to set serialisation and the like).
func (a *OpenArgs) Node() *Node { return a.node }

// OpenChild opens the child called name from the "name." options and
// attaches it as the node's primary child when primary is set. A missing
// child gives QEMU's "A block device must be specified" error when
// required, nil otherwise.
func (a *OpenArgs) OpenChild(name string, primary, required bool) (*Child, error) {
	var cn *Node
	if pre := a.preopened[name]; pre != nil {
		cn = pre
		// Probing opened the protocol before the format was known, with
		// a user's permissions: what the format needs on its file (qcow2
		// takes resize and shares neither write nor resize) is asked
		// now, as QEMU settles it when the child is attached.
		if err := adjustPerms(cn, a.Flags); err != nil {
			return nil, err
		}
	} else {
		copts := a.Opts.ExtractPrefix(name)
		if ref, ok := a.Opts.GetStr(name); ok {
			// bdrv_open_child_bs: a node reference, alone.
			a.Opts.Del(name)
			if copts.Len() != 0 {
				return nil, fmt.Errorf("Cannot reference an existing block device with additional options or a new filename")
			}
			return nil, fmt.Errorf("Cannot find device='%s' nor node-name='%s'", ref, ref)
		}
		if copts.Len() == 0 {
			if required {
				return nil, fmt.Errorf("A block device must be specified for \"%s\"", name)
			}
			return nil, nil
		}
		var err error
		cn, err = a.reg.openNode(copts, a.Flags, a.Loop, false)
		if err != nil {
			return nil, err
		}
		if cn.readOnly && !a.Flags.ReadOnly {
			// A writable parent needs write permission on its child.
			cn.close()
			return nil, Msgf(unix.EPERM, "Block node is read-only")
		}
	}
	c := &Child{Name: name, Node: cn, Parent: a.node}
	a.node.children = append(a.node.children, c)
	if primary {
		a.node.file = c
	}
	return c, nil
}

// OpenImageChild opens the child called name as an image of its own:
// from the "name." options, else from filename, with its format probed
// unless the options name a driver (QEMU's pure data children of
// non-format nodes, such as blkverify's test child). It is required: with
// neither options nor filename, QEMU's "A block device must be
// specified" error.
func (a *OpenArgs) OpenImageChild(name, filename string) (*Child, error) {
	copts := a.Opts.ExtractPrefix(name)
	if copts.Len() == 0 && filename == "" {
		return nil, fmt.Errorf("A block device must be specified for \"%s\"", name)
	}
	var cn *Node
	var err error
	drv, hasDriver := copts.Get("driver")
	protocol := hasDriver && a.reg.Lookup(drv) != nil && !a.reg.Lookup(drv).Format
	switch {
	case filename != "" && (copts.Has("file.filename") || protocol && copts.Has("filename")):
		// bdrv_fill_options: the name and the options both name the file.
		return nil, fmt.Errorf("Can't specify 'file' and 'filename' options at the same time")
	case !hasDriver && copts.Has("filename"):
		// A probed node's own "filename" does not name its file: without
		// a name there is no file to probe; with one, the probed format
		// is left with an option it does not take.
		if filename == "" {
			return nil, fmt.Errorf("Must specify either driver or file")
		}
		copts.Set("file.filename", filename)
		cn, _, err = a.reg.probeAndOpen(copts, a.Flags, a.Loop, nil)
	default:
		cn, err = a.reg.openImage(copts, filename, a.Flags, a.Loop)
	}
	if err != nil {
		return nil, err
	}
	if cn.readOnly && !a.Flags.ReadOnly {
		cn.close()
		return nil, Msgf(unix.EPERM, "Block node is read-only")
	}
	c := &Child{Name: name, Node: cn, Parent: a.node}
	a.node.children = append(a.node.children, c)
	return c, nil
}

// openNode opens one node from its options: the driver named by "driver",
// else the protocol owning "filename".
func (r *Registry) openNode(opts *qdict.Dict, flags OpenFlags, loop *Loop, probed bool) (*Node, error) {
	// bdrv_fill_options reads "driver" and "filename" as strings only: a
	// number or boolean there is as good as absent (and a deduced
	// driver replaces it).
	name, hasDriver := opts.GetStr("driver")
	var d *Driver
	if hasDriver {
		opts.Del("driver")
		if d = r.Lookup(name); d == nil {
			return nil, fmt.Errorf("Unknown driver '%s'", name)
		}
	} else {
		fn, ok := opts.GetStr("filename")
		if !ok {
			return nil, fmt.Errorf("Must specify either driver or file")
		}
		opts.Del("driver")
		var err error
		if d, err = r.protocolFor(fn); err != nil {
			return nil, err
		}
	}
	// A file name is parsed by its protocol (blkdebug:cfg:img, null-co://)
	// only when the protocol was deduced from it, as bdrv_fill_options does;
	// with an explicit driver the filename option is taken literally.
	if fn, ok := opts.Get("filename"); ok && !hasDriver && d.ParseFilename != nil && !d.Format {
		opts.Del("filename")
		if err := d.ParseFilename(fn, opts); err != nil {
			return nil, err
		}
	}
	if fn, ok := opts.Get("filename"); ok && d.Format {
		// A format node named by a file name (blkdebug's image child
		// from "blkdebug::img" with image.driver=qcow2): the name is
		// its file child's, as for the top node.
		opts.Del("filename")
		if err := r.fileChildFromFilename(fn, opts); err != nil {
			return nil, err
		}
	}
	return r.openWith(d, opts, flags, loop, probed, nil, nil)
}

// warn is the probe warning a probed raw driver prints (OpenArgs.WarnProbed).
func (r *Registry) openWith(d *Driver, opts *qdict.Dict, flags OpenFlags, loop *Loop, probed bool, pre map[string]*Node, warn func(*Node)) (*Node, error) {
	// The generic cache options override the inherited flags, for the
	// node and its children (update_flags_from_options; the children get
	// them by bdrv_inherited_options).
	// Their names are whole in messages ("Parameter 'cache.direct'...").
	takeCache := func(key string, def bool) (bool, error) {
		v, ok := opts.Get(key)
		if !ok {
			return def, nil
		}
		opts.Del(key)
		return qdict.ParseBool(key, v)
	}
	direct, err := takeCache("cache.direct", flags.Direct)
	if err != nil {
		return nil, err
	}
	noFlush, err := takeCache("cache.no-flush", flags.NoFlush)
	if err != nil {
		return nil, err
	}
	flags.Direct, flags.NoFlush = direct, noFlush
	// The generic read-only option overrides the inherited flag, for the
	// node and its children (update_flags_from_options).
	ro, err := opts.TakeBool("read-only", flags.ReadOnly)
	if err != nil {
		return nil, err
	}
	flags.ReadOnly = ro
	// force-share is generic too (bdrv_open_common), inherited by the
	// children, and only for read-only nodes.
	fs, err := opts.TakeBool("force-share", flags.ForceShare)
	if err != nil {
		return nil, err
	}
	if fs && !flags.ReadOnly {
		return nil, Msgf(unix.EINVAL, "force-share=on can only be used with read-only images")
	}
	flags.ForceShare = fs
	// discard and detect-zeroes are generic too (bdrv_open_common); the
	// children inherit the discard mode as they do -d's.
	unmap, detectZeroes, err := takeDiscardOptions(opts, flags.Unmap)
	if err != nil {
		return nil, err
	}
	flags.Unmap = unmap
	// "backing": null, or the deprecated "backing": "", means no backing
	// file (BDRV_O_NO_BACKING, bdrv_open_inherit); backing.* options
	// then stay unused, and are refused as such.
	noBacking := false
	if v, kind, ok := opts.Lookup("backing"); ok && (kind == qdict.Null || kind == qdict.String && v == "") {
		if kind == qdict.String && r.Warn != nil {
			r.Warn(`warning: Use of "backing": "" is deprecated; use "backing": null instead`)
		}
		opts.Del("backing")
		noBacking = true
	}
	n := newNode(d, d.Name)
	if err := r.takeNodeName(n, opts); err != nil {
		return nil, err
	}
	n.readOnly = flags.ReadOnly
	n.noFlush = flags.NoFlush
	// QEMU's nodes below a format default to discard=unmap
	// (bdrv_inherited_options); gio follows that under a check, whose
	// frees (qcow2's QCOW2_DISCARD_ALWAYS) punch holes in the file.
	n.discardOn = flags.Unmap || flags.Check && !flags.ReadOnly
	n.detectZeroes = detectZeroes
	n.probed = probed
	n.filename, _ = opts.Get("filename")
	n.openOpts = opts.Clone()
	a := &OpenArgs{Opts: opts, Flags: flags, Loop: loop, node: n, reg: r, preopened: pre, warn: warn, noBacking: noBacking}
	impl, err := d.Open(a)
	if err != nil {
		n.close()
		return nil, err
	}
	n.setImpl(impl)
	_, backingRef := opts.GetStr("backing")
	if !noBacking && !d.SupportsBacking && (backingRef || opts.HasPrefix("backing")) {
		// bdrv_open_backing_file, before the unused options are named.
		n.close()
		return nil, Msgf(unix.EINVAL, "Driver doesn't support backing files")
	}
	if keys := opts.Keys(); len(keys) > 0 {
		n.close()
		if d.Format {
			return nil, fmt.Errorf("Block format '%s' does not support the option '%s'", d.Name, keys[0])
		}
		return nil, fmt.Errorf("Block protocol '%s' doesn't support the option '%s'", d.Name, keys[0])
	}
	n.refreshLimits()
	// With resize permission (a format parent such as qcow2 takes it on
	// its file) QEMU lets the length be anything.
	if flags.TakePerms&PermResize == 0 {
		if err := n.checkWritableLength(loop); err != nil {
			n.close()
			return nil, err
		}
	}
	return n, nil
}

func closeChildren(n *Node) {
	for _, c := range n.children {
		c.Node.close()
	}
	n.children = nil
}

func (n *Node) close() {
	if n.impl != nil {
		n.impl.Close()
	}
	closeChildren(n)
	if n.releaseName != nil {
		n.releaseName()
		n.releaseName = nil
	}
}

// Spec says what to open, however the user spelled it.
type Spec struct {
	Filename string      // path, "json:{...}", "null-co://", "blkdebug:cfg:img"; may be empty
	Opts     *qdict.Dict // -o / --image-opts options (may be nil)
	Format   string      // -f
	// EmptyName says Filename is an empty name given as one, not none.
	EmptyName bool
	Flags     OpenFlags
	// WriteThrough makes every write FUA (qemu-io's default cache mode).
	WriteThrough bool
	// ProbeWarning, if set, is called when probing picked raw for a
	// writable image, as soon as the raw node is open (QEMU's raw_open
	// prints its warning there, even if the open fails later).
	// It gets the file node, whose name the warning shows.
	ProbeWarning func(file *Node)
}

// Open opens an image as a Backend: JSON filenames are expanded, a format
// is probed when none is named (Backend.Probed says so), and the node
// graph is built from the options.
func (r *Registry) Open(spec Spec, loop *Loop) (*Backend, error) {
	opts := qdict.New()
	if spec.Opts != nil {
		opts = spec.Opts.Clone()
	}
	filename := spec.Filename
	if strings.HasPrefix(filename, "json:") {
		jd, err := qdict.ParseJSON(filename[len("json:"):])
		if err != nil {
			return nil, err
		}
		for _, k := range opts.Keys() {
			v, _ := opts.Get(k)
			jd.Set(k, v)
		}
		opts = jd
		filename = ""
	}
	if spec.Format != "" {
		opts.Set("driver", spec.Format)
	}
	drvName, hasDriver := opts.GetStr("driver")
	if !hasDriver {
		// A "driver" that is no string: bdrv_open_inherit probes as
		// without one and puts the probed name in its place.
		opts.Del("driver")
	}
	var d *Driver
	if hasDriver {
		if d = r.Lookup(drvName); d == nil {
			return nil, fmt.Errorf("Unknown driver '%s'", drvName)
		}
	}
	if filename != "" || spec.EmptyName && spec.Filename == "" {
		// bdrv_fill_options: a protocol cannot take both; a format
		// leaves a "filename" option of its own to fail as unsupported.
		if _, dup := opts.Get("filename"); dup && d != nil && !d.Format {
			return nil, fmt.Errorf("Can't specify 'file' and 'filename' options at the same time")
		}
		var err error
		if d != nil && !d.Format {
			err = setFilename(d, filename, opts)
		} else {
			err = r.fileChildFromFilename(filename, opts)
		}
		if err != nil {
			return nil, err
		}
	} else if _, ref := opts.GetStr("file"); d == nil && ref {
		// Probing would open the node the reference names (gio has no
		// other nodes to name).
		ref, _ := opts.GetStr("file")
		if opts.HasPrefix("file") {
			return nil, fmt.Errorf("Cannot reference an existing block device with additional options or a new filename")
		}
		return nil, fmt.Errorf("Cannot find device='%s' nor node-name='%s'", ref, ref)
	} else if d == nil && !opts.HasPrefix("file") {
		// Probing needs a file child; a top-level "filename" option
		// does not name one.
		return nil, fmt.Errorf("Must specify either driver or file")
	}
	var root *Node
	var err error
	probed := false
	if d != nil {
		opts.Del("driver")
		root, err = r.openWith(d, opts, spec.Flags, loop, false, nil, nil)
	} else {
		root, probed, err = r.probeAndOpen(opts, spec.Flags, loop, spec.ProbeWarning)
	}
	if err != nil {
		return nil, err
	}
	if root.readOnly && !spec.Flags.ReadOnly {
		// read-only=on, but the user asked for a writable image.
		root.close()
		return nil, Msgf(unix.EPERM, "Block node is read-only")
	}
	b := &Backend{Root: root, loop: loop, writeThrough: spec.WriteThrough, probed: probed, flags: spec.Flags, userWrite: !root.readOnly}
	return b, nil
}

// fileChildFromFilename gives a format node's file name to its file
// child, parsed by the protocol that owns its prefix, unless the child's
// own options name a file already.
func (r *Registry) fileChildFromFilename(filename string, opts *qdict.Dict) error {
	if _, ok := opts.GetStr("file"); ok {
		// bdrv_open_child_bs: a reference to a node and a file name.
		return fmt.Errorf("Cannot reference an existing block device with additional options or a new filename")
	}
	child := opts.ExtractPrefix("file")
	if child.Has("filename") {
		// The file child's bdrv_fill_options: a protocol child (named
		// or deduced) takes the name as its "filename", which the
		// options must not give as well.
		var proto *Driver
		if dn, ok := child.GetStr("driver"); ok {
			proto = r.Lookup(dn)
		}
		for _, k := range child.Keys() {
			v, kind, _ := child.Lookup(k)
			opts.SetKind("file."+k, v, kind)
		}
		if proto == nil || !proto.Format {
			return fmt.Errorf("Can't specify 'file' and 'filename' options at the same time")
		}
		return nil
	}
	var proto *Driver
	if dn, ok := child.Get("driver"); ok {
		proto = r.Lookup(dn)
	}
	if proto == nil {
		var err error
		if proto, err = r.protocolFor(filename); err != nil {
			return err
		}
		if _, ok := child.Get("driver"); !ok {
			child.Set("driver", proto.Name)
		}
	}
	err := setFilename(proto, filename, child)
	for _, k := range child.Keys() {
		v, _ := child.Get(k)
		opts.Set("file."+k, v)
	}
	return err
}

// setFilename hands a file name to protocol driver d: parsed when the
// driver has a filename syntax, else as its "filename" option.
func setFilename(d *Driver, filename string, opts *qdict.Dict) error {
	if d.ParseFilename != nil {
		return d.ParseFilename(filename, opts)
	}
	opts.Set("filename", filename)
	return nil
}

// adjustPerms gives the data nodes from n down what a parent opened
// after them needs (PermTaker.ParentPerms).
func adjustPerms(n *Node, flags OpenFlags) error {
	if flags.TakePerms == 0 && flags.UnsharePerms == 0 && flags.WritablePerms == 0 {
		return nil
	}
	return eachDataNode(n, func(n *Node) error {
		if n.ops.perm == nil {
			return nil
		}
		return n.ops.perm.ParentPerms(flags)
	})
}

// probeAndOpen opens the protocol layer, reads its first bytes and picks
// the format with the highest probe score (raw when none claims it).
func (r *Registry) probeAndOpen(opts *qdict.Dict, flags OpenFlags, loop *Loop, warn func(*Node)) (*Node, bool, error) {
	popts := opts.ExtractPrefix("file")
	proto, err := r.openNode(popts, flags, loop, false)
	if err != nil {
		return nil, false, err
	}
	head := make([]byte, 2048)
	var rerr error
	co := loop.Spawn("probe", func(co *Co) {
		l, err := proto.Length(co)
		if err != nil {
			rerr = err
			return
		}
		head = head[:min(int64(len(head)), l)]
		rerr = proto.PRead(co, 0, head, 0)
	})
	if err := loop.RunUntil("probe", co.Done); err != nil {
		rerr = err
	}
	if rerr != nil {
		proto.close()
		return nil, false, Errorf(ErrnoOf(rerr), "Could not read image for determining its format")
	}
	var best *Driver
	bestScore := 0
	for _, d := range r.drivers {
		s := 0
		switch {
		case !d.Format:
		case d.Probe != nil:
			s = d.Probe(head)
		case d.ProbeName != nil:
			s = d.ProbeName(proto.Filename())
		}
		if s > bestScore {
			best, bestScore = d, s
		}
	}
	if best == nil {
		best = r.Lookup("raw")
	}
	if best == nil {
		proto.close()
		return nil, false, fmt.Errorf("Could not determine image format")
	}
	n, err := r.openWith(best, opts, flags, loop, best.Name == "raw", map[string]*Node{"file": proto}, warn)
	if err != nil {
		proto.close()
		return nil, false, err
	}
	return n, best.Name == "raw", nil
}

// ProbeBlocksWrite reports whether writing buf at offset 0 of a probed
// raw image must be refused because the data would probe as another
// format (QEMU's raw_probe_blocksize restriction on block 0).
func (r *Registry) ProbeBlocksWrite(buf []byte) bool {
	for _, d := range r.drivers {
		if d.Format && d.Probe != nil && d.Name != "raw" && d.Probe(buf) > 0 {
			return true
		}
	}
	return false
}

// ProbesAsOtherFormat reports whether buf, written to the start of a
// probed raw image, would make it probe as another format.
func (a *OpenArgs) ProbesAsOtherFormat(buf []byte) bool { return a.reg.ProbeBlocksWrite(buf) }
