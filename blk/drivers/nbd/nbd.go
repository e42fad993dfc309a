// Package nbd is the NBD client protocol driver ("nbd", with the
// "nbd+tcp" and "nbd+unix" URI spellings), QEMU's block/nbd.c: it opens
// an export of a remote server with the fixed newstyle handshake and
// turns block requests into NBD commands.
//
// Socket I/O is a yield point on the loop: a request queues its command
// under the token and parks; the loop sends what was queued at its next
// loop point, and when it polls the connection (blk.Engine) it reads the
// replies, matches them to requests by cookie and wakes them (wire.go).
// Several requests are in flight at once, and they complete in the order
// the server answers, as in QEMU.
package nbd

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gio/blk"
	"gio/blk/qdict"
	"gio/internal/nbdproto"

	"golang.org/x/sys/unix"
)

// Driver is the "nbd" protocol driver: nbd:HOST:PORT, nbd:unix:PATH and
// nbd://HOST[:PORT]/EXPORT filenames, or the server.* options.
var Driver = &blk.Driver{Name: "nbd", Protocol: "nbd", ParseFilename: parseFilename, Open: open}

// TCPDriver and UnixDriver own the nbd+tcp:// and nbd+unix:// URIs
// (QEMU's bdrv_nbd_tcp and bdrv_nbd_unix, whose format name is "nbd"
// too).
var (
	TCPDriver  = &blk.Driver{Name: "nbd", Protocol: "nbd+tcp", ParseFilename: parseFilename, Open: open}
	UnixDriver = &blk.Driver{Name: "nbd", Protocol: "nbd+unix", ParseFilename: parseFilename, Open: open}
)

// Drivers are the three spellings, to register together.
var Drivers = []*blk.Driver{Driver, TCPDriver, UnixDriver}

const exportNameOpt = ":exportname="

// parseFilename is nbd_parse_filename.
func parseFilename(filename string, opts *qdict.Dict) error {
	for _, k := range opts.Keys() {
		if k == "host" || k == "port" || k == "path" || k == "export" || strings.HasPrefix(k, "server.") {
			return fmt.Errorf("Option '%s' cannot be used with a file name", k)
		}
	}
	if strings.Contains(filename, "://") {
		if !parseURI(filename, opts) {
			return fmt.Errorf("No valid URL specified")
		}
		return nil
	}
	file := filename
	if i := strings.Index(file, exportNameOpt); i >= 0 {
		name := file[i+len(exportNameOpt):]
		if name == "" {
			return nil
		}
		file = file[:i]
		opts.Set("export", name)
	}
	hostSpec, ok := strings.CutPrefix(file, "nbd:")
	if !ok {
		return fmt.Errorf("File name string for NBD must start with 'nbd:'")
	}
	if hostSpec == "" {
		return nil
	}
	if path, ok := strings.CutPrefix(hostSpec, "unix:"); ok {
		opts.Set("server.type", "unix")
		opts.Set("server.path", path)
		return nil
	}
	host, port, ok := inetParse(hostSpec)
	if !ok {
		return fmt.Errorf("error parsing address '%s'", hostSpec)
	}
	opts.Set("server.type", "inet")
	opts.Set("server.host", host)
	opts.Set("server.port", port)
	return nil
}

// inetParse is the host:port part of QEMU's inet_parse: "[v6]:port" or
// "host:port" with a non-empty port.
func inetParse(s string) (host, port string, ok bool) {
	if strings.HasPrefix(s, "[") {
		i := strings.Index(s, "]:")
		if i < 0 {
			return "", "", false
		}
		host, port = s[1:i], s[i+2:]
	} else {
		i := strings.Index(s, ":")
		if i < 0 {
			return "", "", false
		}
		host, port = s[:i], s[i+1:]
	}
	if i := strings.IndexByte(port, ','); i >= 0 {
		port = port[:i]
	}
	return host, port, port != ""
}

// parseURI is nbd_parse_uri.
func parseURI(filename string, opts *qdict.Dict) bool {
	u, err := url.Parse(filename)
	if err != nil {
		return false
	}
	var isUnix bool
	switch u.Scheme {
	case "nbd", "nbd+tcp":
	case "nbd+unix":
		isUnix = true
	default:
		return false
	}
	p := strings.TrimPrefix(u.Path, "/")
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return false
	}
	n := 0
	for _, v := range q {
		n += len(v)
	}
	if n > 1 || (isUnix && n == 0) || (!isUnix && n > 0) {
		return false
	}
	if isUnix {
		if u.Host != "" || len(q["socket"]) != 1 {
			return false
		}
		if p != "" {
			opts.Set("export", p)
		}
		opts.Set("server.type", "unix")
		opts.Set("server.path", q["socket"][0])
		return true
	}
	host := u.Hostname()
	if host == "" {
		return false
	}
	port := u.Port()
	if port == "" || port == "0" {
		port = strconv.Itoa(nbdproto.DefaultPort)
	}
	if p != "" {
		opts.Set("export", p)
	}
	opts.Set("server.type", "inet")
	opts.Set("server.host", host)
	opts.Set("server.port", port)
	return true
}

// address is the server's socket address (QEMU's SocketAddress).
type address struct {
	network string // "unix" or "tcp"
	addr    string // what to dial
	display string // how QEMU names it in errors
}

// legacyOptions is nbd_process_legacy_socket_options: host, port and
// path become server.*.
func legacyOptions(opts *qdict.Dict) error {
	path, hasPath := opts.TakeString("path")
	host, hasHost := opts.TakeString("host")
	port, hasPort := opts.TakeString("port")
	if !hasPath && !hasHost && !hasPort {
		return nil
	}
	if opts.HasPrefix("server") {
		return fmt.Errorf("Cannot use 'server' and path/host/port at the same time")
	}
	switch {
	case hasPath && hasHost:
		return fmt.Errorf("path and host may not be used at the same time")
	case hasPath:
		if hasPort {
			return fmt.Errorf("port may not be used without host")
		}
		opts.Set("server.type", "unix")
		opts.Set("server.path", path)
	case hasHost:
		if !hasPort {
			port = strconv.Itoa(nbdproto.DefaultPort)
		}
		opts.Set("server.type", "inet")
		opts.Set("server.host", host)
		opts.Set("server.port", port)
	}
	return nil
}

// serverAddress is nbd_config: the server.* options as a SocketAddress.
func serverAddress(opts *qdict.Dict) (address, error) {
	s := opts.ExtractPrefix("server")
	if s.Len() == 0 {
		return address{}, fmt.Errorf("NBD server address missing")
	}
	typ, ok := s.TakeString("type")
	if !ok {
		return address{}, fmt.Errorf("Parameter 'type' is missing")
	}
	var a address
	switch typ {
	case "unix":
		path, ok := s.TakeString("path")
		if !ok {
			return address{}, fmt.Errorf("Parameter 'path' is missing")
		}
		if _, err := s.TakeBool("abstract", false); err != nil {
			return address{}, err
		}
		if _, err := s.TakeBool("tight", true); err != nil {
			return address{}, err
		}
		a = address{network: "unix", addr: path, display: path}
	case "inet":
		host, ok := s.TakeString("host")
		if !ok {
			return address{}, fmt.Errorf("Parameter 'host' is missing")
		}
		port, ok := s.TakeString("port")
		if !ok {
			return address{}, fmt.Errorf("Parameter 'port' is missing")
		}
		for _, k := range []string{"numeric", "ipv4", "ipv6", "keep-alive", "mptcp"} {
			if _, err := s.TakeBool(k, false); err != nil {
				return address{}, err
			}
		}
		s.TakeString("to")
		a = address{network: "tcp", addr: net.JoinHostPort(host, port), display: host + ":" + port}
	case "fd", "vsock":
		return address{}, fmt.Errorf("NBD server address type '%s' is not supported by gio", typ)
	default:
		return address{}, fmt.Errorf("Parameter 'type' does not accept value '%s'", typ)
	}
	if keys := s.Keys(); len(keys) > 0 {
		return address{}, fmt.Errorf("Parameter '%s' is unexpected", keys[0])
	}
	return a, nil
}

// open is nbd_open: options, connection, handshake.
func open(a *blk.OpenArgs) (blk.Impl, error) {
	opts := a.Opts
	export, _ := opts.TakeString("export")
	bitmap, hasBitmap := opts.TakeString("x-dirty-bitmap")
	delay, err := opts.TakeUint("reconnect-delay", 0)
	if err != nil {
		return nil, err
	}
	openTimeout, err := opts.TakeUint("open-timeout", 0)
	if err != nil {
		return nil, err
	}
	creds, hasCreds := opts.TakeString("tls-creds")
	opts.TakeString("tls-hostname")
	if err := legacyOptions(opts); err != nil {
		return nil, err
	}
	var addr address
	addr, err = serverAddress(opts)
	if err != nil {
		return nil, err
	}
	if len(export) > nbdproto.MaxString {
		return nil, fmt.Errorf("export name too long to send to server")
	}
	if len(bitmap) > nbdproto.MaxString {
		return nil, fmt.Errorf("x-dirty-bitmap query too long to send to server")
	}
	if hasCreds {
		// qemu-io can create no objects, so every id is unknown.
		return nil, fmt.Errorf("No TLS credentials with id '%s'", creds)
	}
	ctx := nbdproto.ContextBaseAllocation
	if hasBitmap {
		ctx = bitmap
	}
	c := &client{self: a.Node(), loop: a.Loop, addr: addr, export: export, ctx: ctx,
		reconnectDelay: time.Duration(min(delay, 1<<30)) * time.Second}
	if err := c.connectRetrying(time.Duration(min(openTimeout, 1<<30)) * time.Second); err != nil {
		return nil, err
	}
	if hasBitmap && !c.hasCtx {
		c.conn.Close()
		return nil, fmt.Errorf("requested x-dirty-bitmap %s not found", bitmap)
	}
	if c.info.Flags&nbdproto.FlagReadOnly != 0 && !a.Flags.ReadOnly {
		c.conn.Close()
		return nil, blk.Errorf(unix.EACCES, "Could not open image")
	}
	c.start()
	return c, nil
}

// connectRetrying connects and negotiates. With an open timeout (QEMU's
// open-timeout) a failed attempt is tried again after 1 s, then 2, 4, 8
// and 16 s between attempts, as QEMU's connection thread does, until
// the timeout has passed since the first: the error is then the last
// attempt's (or QEMU's "cancelled by timeout" while one is still under
// way, which a blocking dial here cannot be).
func (c *client) connectRetrying(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	wait := time.Second
	for {
		err := c.connectOnce()
		if err == nil || timeout == 0 {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		if wait >= left {
			// QEMU's timer ends the wait at the deadline with this error.
			time.Sleep(left)
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 16*time.Second)
	}
}

// connectOnce dials the server and negotiates; on failure nothing is
// left open.
func (c *client) connectOnce() error {
	conn, err := net.Dial(c.addr.network, c.addr.addr)
	if err != nil {
		return blk.Errorf(errnoOf(err), "Failed to connect to '%s'", c.addr.display)
	}
	c.conn, c.info, c.hasCtx = conn, nbdproto.ExportInfo{}, false
	if err := c.handshake(c.export, c.ctx); err != nil {
		conn.Close()
		c.conn = nil
		return err
	}
	return nil
}

// errnoOf digs the errno out of a net error (EIO when there is none).
func errnoOf(err error) unix.Errno {
	return blk.ErrnoOf(err)
}
