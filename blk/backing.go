package blk

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// OpenBacking opens the "backing" child of a format node whose image
// names a backing file (QEMU's bdrv_open_backing_file). filename is the
// name stored in the image, resolved against base (the image's own file
// name) when relative; format is the stored backing format, or "" to
// probe. "backing.*" options override or complete what the image says,
// and "backing=" (an empty reference) opens no backing file at all. The
// child is opened read-only. It returns nil when there is nothing to open.
func (a *OpenArgs) OpenBacking(filename, format, base string) (*Child, error) {
	if pre := a.preopened["backing"]; pre != nil {
		// Snapshot mode's overlay (AppendTempSnapshot): the backing
		// node is the image already open.
		c := &Child{Name: "backing", Node: pre, Parent: a.node}
		a.node.children = append(a.node.children, c)
		return c, nil
	}
	if a.noBacking {
		return nil, nil
	}
	if ref, ok := a.Opts.GetStr("backing"); ok {
		// A reference to another node (bdrv_open_child_bs): gio's graph
		// has none to offer.
		a.Opts.Del("backing")
		if a.Opts.HasPrefix("backing") {
			return nil, fmt.Errorf("Could not open backing file: Cannot reference an existing block device with additional options or a new filename")
		}
		return nil, fmt.Errorf("Could not open backing file: Cannot find device='%s' nor node-name='%s'", ref, ref)
	}
	copts := a.Opts.ExtractPrefix("backing")
	if copts.Len() == 0 && filename == "" {
		return nil, nil
	}
	flags := a.Flags
	flags.ReadOnly = true
	if rest, ok := strings.CutPrefix(filename, "json:"); ok {
		// A json: backing file name holds the backing node's options,
		// below those given as backing.* (bdrv_fill_options).
		jd, err := qdict.ParseJSON(rest)
		if err != nil {
			return nil, PrefixError("Could not open backing file: ", err)
		}
		for _, k := range jd.Keys() {
			if !copts.Has(k) {
				v, kind, _ := jd.Lookup(k)
				copts.SetKind(k, v, kind)
			}
		}
		filename = ""
	}
	if filename != "" {
		filename = CombinePath(base, filename)
	}
	_, hasDriver := copts.Get("driver")
	if !hasDriver && format != "" {
		copts.Set("driver", format)
	}
	cn, err := a.reg.openImage(copts, filename, flags, a.Loop)
	if err != nil {
		return nil, PrefixError("Could not open backing file: ", err)
	}
	c := &Child{Name: "backing", Node: cn, Parent: a.node}
	a.node.children = append(a.node.children, c)
	return c, nil
}

// openImage opens a node that is an image in its own right (a backing
// file, blkverify's test child): its format is probed unless copts name
// a driver. filename, if not empty, names the image's file, unless
// copts name one already.
func (r *Registry) openImage(copts *qdict.Dict, filename string, flags OpenFlags, loop *Loop) (*Node, error) {
	_, hasDriver := copts.Get("driver")
	_, hasFile := copts.Get("filename")
	if !hasFile && !copts.HasPrefix("file") && filename != "" {
		if hasDriver {
			if d := r.Lookup(mustGet(copts, "driver")); d != nil && !d.Format {
				copts.Set("filename", filename)
			} else {
				copts.Set("file.filename", filename)
			}
		} else {
			copts.Set("file.filename", filename)
		}
	}
	if hasDriver {
		return r.openNode(copts, flags, loop, false)
	}
	if fn, ok := copts.Get("filename"); ok {
		copts.Del("filename")
		copts.Set("file.filename", fn)
	}
	cn, _, err := r.probeAndOpen(copts, flags, loop, nil)
	return cn, err
}

func mustGet(d *qdict.Dict, key string) string {
	v, _ := d.Get(key)
	return v
}

// CombinePath resolves a backing file name against the image's own name
// (QEMU's path_combine): absolute names and names with a protocol prefix
// stay as they are, relative ones are taken from the image's directory.
func CombinePath(base, name string) string {
	if name == "" || filepath.IsAbs(name) || hasProtocolPrefix(name) || base == "" {
		return name
	}
	i := strings.LastIndexByte(base, '/')
	if i < 0 {
		return name
	}
	return base[:i+1] + name
}

func hasProtocolPrefix(path string) bool {
	i := strings.IndexAny(path, ":/")
	return i >= 0 && path[i] == ':'
}

// Backing returns the node's "backing" child node, or nil.
func (n *Node) Backing() *Node { return n.backing() }

// BaseFilename returns the first file name found walking down the primary
// children from n: the name relative backing files are resolved against.
func (n *Node) BaseFilename() string {
	for c := n; c != nil; {
		if c.filename != "" {
			return c.filename
		}
		if c.file == nil {
			return ""
		}
		c = c.file.Node
	}
	return ""
}

// CreateArgs is what a format driver's Create receives: a writable,
// empty protocol node to format, the virtual size, and the creation
// options (QEMU's -o), which Create must take.
type CreateArgs struct {
	File *Node
	Size int64
	Opts *qdict.Dict
	reg  *Registry
	loop *Loop
	// more are the files CreateFile opened, readOnly those OpenFile
	// opened: all closed when Create ends.
	more, readOnly []*Node
}

// CreateFile creates (or empties) the file filename, of the protocol its
// name says, and opens it writable (QEMU's bdrv_create_file, then
// blk_new_open), for formats whose images span several files (vmdk's
// extents, qcow2's data_file). The node stays open until the creation
// ends.
func (a *CreateArgs) CreateFile(co *Co, filename string) (*Node, error) {
	d, err := a.reg.protocolFor(filename)
	if err != nil {
		return nil, err
	}
	if d.CreateFile == nil {
		return nil, Msgf(unix.ENOTSUP, "Driver '%s' does not support image creation", d.Name)
	}
	if err := d.CreateFile(filename); err != nil {
		return nil, err
	}
	opts := qdict.New()
	opts.Set("filename", filename)
	n, err := a.reg.openNode(opts, OpenFlags{}, a.loop, false)
	if err != nil {
		return nil, err
	}
	a.more = append(a.more, n)
	return n, nil
}

// OpenFile opens filename's protocol layer read-only, for formats that
// read another image at creation (vmdk records its backing file's CID).
// The node stays open until the creation ends.
func (a *CreateArgs) OpenFile(co *Co, filename string) (*Node, error) {
	opts := qdict.New()
	opts.Set("filename", filename)
	n, err := a.reg.openNode(opts, OpenFlags{ReadOnly: true}, a.loop, false)
	if err != nil {
		return nil, err
	}
	a.readOnly = append(a.readOnly, n)
	return n, nil
}

// ProbeFormat opens filename's protocol layer and returns the format
// probing finds there, for drivers that must record the format of a
// backing file nobody named; it fails when the file cannot be opened.
func (a *CreateArgs) ProbeFormat(co *Co, filename string) (string, error) {
	opts := qdict.New()
	opts.Set("filename", filename)
	proto, err := a.reg.openNode(opts, OpenFlags{ReadOnly: true}, a.loop, false)
	if err != nil {
		return "", err
	}
	defer proto.close()
	l, err := proto.Length(co)
	if err != nil {
		return "", err
	}
	head := make([]byte, min(2048, l))
	if err := proto.PRead(co, 0, head, 0); err != nil {
		return "", Errorf(ErrnoOf(err), "Could not read image for determining its format")
	}
	best, score := "raw", 0
	for _, d := range a.reg.drivers {
		if d.Format && d.Probe != nil {
			if s := d.Probe(head); s > score {
				best, score = d.Name, s
			}
		}
	}
	return best, nil
}

// Create formats filename, an existing file, as an image of the given
// format and virtual size (what qemu-img create does once the file
// exists). Options the driver does not take are an error.
func (r *Registry) Create(format, filename string, size int64, opts *qdict.Dict, loop *Loop) error {
	d := r.Lookup(format)
	if d == nil {
		return fmt.Errorf("Unknown driver '%s'", format)
	}
	if d.Create == nil {
		return Msgf(unix.ENOTSUP, "Driver '%s' does not support image creation", format)
	}
	if opts == nil {
		opts = qdict.New()
	}
	fopts := qdict.New()
	fopts.Set("filename", filename)
	file, err := r.openNode(fopts, OpenFlags{}, loop, false)
	if err != nil {
		return err
	}
	defer file.close()
	a := &CreateArgs{File: file, Size: size, Opts: opts, reg: r, loop: loop}
	defer func() {
		for _, n := range append(a.more, a.readOnly...) {
			n.close()
		}
	}()
	var cerr error
	co := loop.Spawn("create", func(co *Co) {
		if cerr = file.Truncate(co, 0, false, PreallocOff); cerr != nil {
			return
		}
		if cerr = d.Create(co, a); cerr != nil {
			return
		}
		for _, n := range append([]*Node{file}, a.more...) {
			if cerr = n.Flush(co); cerr != nil {
				return
			}
		}
	})
	if err := loop.RunUntil("create", co.Done); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if keys := opts.Keys(); len(keys) > 0 {
		return fmt.Errorf("Invalid parameter '%s'", keys[0])
	}
	return nil
}

// PrefixError puts prefix before err's message (QEMU's error_prepend),
// keeping its errno so that the text still ends in glibc's wording.
func PrefixError(prefix string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		if e.Msg == "" {
			return &Error{Msg: strings.TrimSuffix(prefix, ": "), Errno: e.Errno}
		}
		return &Error{Msg: prefix + e.Msg, Errno: e.Errno, Plain: e.Plain}
	}
	return &Error{Msg: prefix + err.Error(), Errno: ErrnoOf(err), Plain: true}
}
