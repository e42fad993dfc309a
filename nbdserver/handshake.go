package nbdserver

import (
	"fmt"
	"strings"
	"time"

	"gio/internal/nbdproto"
)

// handshake runs the fixed newstyle negotiation (nbd_negotiate). It
// reports whether the client entered the transmission phase.
func (c *conn) handshake() bool {
	defer c.nc.SetDeadline(time.Time{})
	c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	be := nbdproto.BE
	hello := be.AppendUint64(nil, nbdproto.NBDMagic)
	hello = be.AppendUint64(hello, nbdproto.IHaveOpt)
	hello = be.AppendUint16(hello, nbdproto.FlagFixedNewstyle|nbdproto.FlagNoZeroes)
	if _, err := c.nc.Write(hello); err != nil {
		return false
	}
	var fb [4]byte
	if _, err := readFull(c.nc, fb[:]); err != nil {
		return false
	}
	cflags := be.Uint32(fb[:])
	if cflags&^(nbdproto.FlagFixedNewstyle|nbdproto.FlagNoZeroes) != 0 {
		return false
	}
	fixed := cflags&nbdproto.FlagFixedNewstyle != 0
	noZeroes := cflags&nbdproto.FlagNoZeroes != 0
	for {
		c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
		o, err := nbdproto.ReadOption(c.nc, nbdproto.MaxOption)
		if err != nil {
			return false
		}
		if !fixed && o.Option != nbdproto.OptExportName {
			return false
		}
		var done, ok bool
		switch o.Option {
		case nbdproto.OptExportName:
			return c.exportName(o.Data, noZeroes)
		case nbdproto.OptAbort:
			c.rep(o.Option, nbdproto.RepAck, nil)
			return false
		case nbdproto.OptList:
			ok = c.list(o)
		case nbdproto.OptStartTLS:
			ok = c.repErr(o.Option, nbdproto.RepErrPolicy, "TLS not configured")
		case nbdproto.OptInfo, nbdproto.OptGo:
			done, ok = c.infoOrGo(o)
		case nbdproto.OptStructuredReply:
			switch {
			case len(o.Data) != 0:
				ok = c.repErr(o.Option, nbdproto.RepErrInvalid, "option '%s' should have zero length", "structured reply")
			case c.structured:
				ok = c.repErr(o.Option, nbdproto.RepErrInvalid, "structured reply already negotiated")
			default:
				c.structured = true
				ok = c.rep(o.Option, nbdproto.RepAck, nil)
			}
		case nbdproto.OptListMetaContext, nbdproto.OptSetMetaContext:
			ok = c.metaContext(o)
		default:
			ok = c.repErr(o.Option, nbdproto.RepErrUnsup, "Unsupported option %d", o.Option)
		}
		if !ok {
			return false
		}
		if done {
			return true
		}
	}
}

func readFull(c interface{ Read([]byte) (int, error) }, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (c *conn) rep(opt, typ uint32, data []byte) bool {
	_, err := c.nc.Write(nbdproto.AppendOptReply(nil, opt, typ, data))
	return err == nil
}

func (c *conn) repErr(opt, typ uint32, format string, args ...any) bool {
	return c.rep(opt, typ, []byte(fmt.Sprintf(format, args...)))
}

// exportName answers NBD_OPT_EXPORT_NAME: the export's size and flags,
// or a dropped connection for an unknown name (the option has no error
// reply).
func (c *conn) exportName(name []byte, noZeroes bool) bool {
	if string(name) != c.s.opts.Name {
		return false
	}
	b := nbdproto.BE.AppendUint64(nil, c.s.size)
	b = nbdproto.BE.AppendUint16(b, c.s.flags)
	if !noZeroes {
		b = append(b, make([]byte, nbdproto.ExportZeroesSize)...)
	}
	c.minBlock = 1
	_, err := c.nc.Write(b)
	return err == nil
}

// list answers NBD_OPT_LIST with the one export.
func (c *conn) list(o nbdproto.Option) bool {
	if len(o.Data) != 0 {
		return c.repErr(o.Option, nbdproto.RepErrInvalid, "option '%s' should have zero length", "list")
	}
	d := nbdproto.AppendString(nil, c.s.opts.Name)
	d = append(d, c.s.opts.Description...)
	return c.rep(o.Option, nbdproto.RepServer, d) && c.rep(o.Option, nbdproto.RepAck, nil)
}

// infoOrGo answers NBD_OPT_INFO and NBD_OPT_GO (nbd_negotiate_handle_info).
func (c *conn) infoOrGo(o nbdproto.Option) (done, ok bool) {
	q, err := nbdproto.DecodeInfoRequest(o.Data)
	if err != nil {
		return false, c.repErr(o.Option, nbdproto.RepErrInvalid, "request data has incorrect length")
	}
	if q.Name != c.s.opts.Name {
		return false, c.repErr(o.Option, nbdproto.RepErrUnknown, "export '%s' not present", q.Name)
	}
	var sendName, sendDesc, blocksize bool
	for _, i := range q.Infos {
		switch i {
		case nbdproto.InfoName:
			sendName = true
		case nbdproto.InfoDescription:
			sendDesc = true
		case nbdproto.InfoBlockSize:
			blocksize = true
		}
	}
	be := nbdproto.BE
	if sendName {
		d := be.AppendUint16(nil, nbdproto.InfoName)
		if !c.rep(o.Option, nbdproto.RepInfo, append(d, c.s.opts.Name...)) {
			return false, false
		}
	}
	if sendDesc && c.s.opts.Description != "" {
		d := be.AppendUint16(nil, nbdproto.InfoDescription)
		if !c.rep(o.Option, nbdproto.RepInfo, append(d, c.s.opts.Description...)) {
			return false, false
		}
	}
	// The minimum is the node's alignment only for a client that will
	// obey it; others get 1 and blk does read-modify-write for them.
	minB := uint32(1)
	if o.Option == nbdproto.OptInfo || blocksize {
		minB = c.s.align
	}
	if !c.rep(o.Option, nbdproto.RepInfo, nbdproto.AppendInfoBlockSize(nil, minB, max(4096, minB), c.s.maxTx)) {
		return false, false
	}
	if !c.rep(o.Option, nbdproto.RepInfo, nbdproto.AppendInfoExport(nil, c.s.size, c.s.flags)) {
		return false, false
	}
	if !c.rep(o.Option, nbdproto.RepAck, nil) {
		return false, false
	}
	if o.Option == nbdproto.OptGo {
		c.minBlock = minB
		return true, true
	}
	return false, true
}

// metaContext answers NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT.
func (c *conn) metaContext(o nbdproto.Option) bool {
	set := o.Option == nbdproto.OptSetMetaContext
	name := "list meta context"
	if set {
		name = "set meta context"
	}
	if !c.structured {
		return c.repErr(o.Option, nbdproto.RepErrInvalid, "request option '%s' when structured reply is not negotiated", name)
	}
	cur := nbdproto.Cursor{B: o.Data}
	export := cur.String()
	n := cur.U32()
	var queries []string
	for i := uint32(0); i < n && cur.Err == nil; i++ {
		queries = append(queries, cur.String())
	}
	if cur.Done() != nil {
		return c.repErr(o.Option, nbdproto.RepErrInvalid, "invalid %s request", name)
	}
	if export != c.s.opts.Name {
		return c.repErr(o.Option, nbdproto.RepErrUnknown, "export '%s' not present", export)
	}
	known := []struct {
		id   uint32
		name string
	}{{ctxBase, nbdproto.ContextBaseAllocation}}
	if c.s.opts.AllocDepth {
		known = append(known, struct {
			id   uint32
			name string
		}{ctxDepth, nbdproto.ContextAllocDepth})
	}
	var chosen []uint32
	for _, k := range known {
		match := !set && len(queries) == 0
		for _, q := range queries {
			if q == k.name || !set && strings.HasSuffix(q, ":") && strings.HasPrefix(k.name, q) {
				match = true
			}
		}
		if !match {
			continue
		}
		chosen = append(chosen, k.id)
		d := nbdproto.BE.AppendUint32(nil, k.id)
		if !c.rep(o.Option, nbdproto.RepMetaContext, append(d, k.name...)) {
			return false
		}
	}
	if set {
		c.contexts = chosen
	}
	return c.rep(o.Option, nbdproto.RepAck, nil)
}
