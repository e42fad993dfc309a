// Package nbdserver is gio's NBD server: a front end that exports a
// block backend over the NBD protocol, as qemu-nbd does, turning remote
// requests into block-layer requests on the session's loop.
//
// Connections are handled by goroutines that do the handshake and parse
// requests; they never touch the block layer. Parsed requests go into
// one queue, in arrival order across all clients, and the server, an
// engine of the loop (blk.Engine), spawns a request on the loop for each
// when the loop polls it. The remote requests then run under the token
// like typed ones: they stop at blkdebug breakpoints, and the session
// sees and resumes them. Replies are handed to a writer goroutine per
// connection, so a client that does not read its replies never blocks
// the loop.
package nbdserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"gio/blk"
	"gio/internal/cvt"
	"gio/internal/nbdproto"
)

// Options configure an export (qemu-nbd's flags).
type Options struct {
	Name        string // -x; "" is the default export
	Description string // -D
	ReadOnly    bool   // -r
	AllocDepth  bool   // -A: qemu:allocation-depth
	// MaxClients bounds concurrent connections (-e); 0 means no bound.
	MaxClients int
	// Persistent keeps serving after the last client left (-t); without
	// it the server stops then, as qemu-nbd does.
	Persistent bool
}

// Server is one export on one listener.
type Server struct {
	b    *blk.Backend
	loop *blk.Loop
	opts Options
	ln   net.Listener
	// Fixed at Start.
	size  uint64
	flags uint16
	align uint32 // request alignment, for NBD_INFO_BLOCK_SIZE
	maxTx uint32

	acceptDone chan struct{}

	mu      sync.Mutex
	inbox   []*request // parsed requests, in arrival order
	conns   map[*conn]struct{}
	served  int  // connections ever accepted
	closing bool // Close was called
	notify  chan struct{}

	stopReq bool // RequestStop was called; under mu

	// Under the token.
	inflight int // remote requests spawned, not finished
	stopped  bool
}

// Start opens the export of b on ln and attaches the server to the loop.
// It runs requests on the loop, so it must be called by the loop's
// driver (the shell), like any command.
func Start(b *blk.Backend, ln net.Listener, opts Options) (*Server, error) {
	loop := b.Loop()
	s := &Server{b: b, loop: loop, opts: opts, ln: ln, conns: map[*conn]struct{}{},
		notify: make(chan struct{}, 1), acceptDone: make(chan struct{})}
	var size int64
	var err error
	co := loop.Spawn("nbd export size", func(co *blk.Co) { size, err = b.Length(co) })
	if rerr := loop.RunUntil("nbd export size", co.Done); rerr != nil {
		return nil, rerr
	}
	if err != nil {
		return nil, err
	}
	s.size = uint64(size)
	if b.ReadOnly() {
		s.opts.ReadOnly = true
	}
	s.flags = nbdproto.FlagHasFlags | nbdproto.FlagSendFlush | nbdproto.FlagSendFUA |
		nbdproto.FlagSendDF | nbdproto.FlagSendCache
	if s.opts.ReadOnly {
		s.flags |= nbdproto.FlagReadOnly
	} else {
		s.flags |= nbdproto.FlagSendTrim | nbdproto.FlagSendWriteZero | nbdproto.FlagSendFastZero
	}
	if s.opts.MaxClients != 1 && s.opts.ReadOnly {
		s.flags |= nbdproto.FlagCanMultiConn
	}
	l := b.Root.Limits()
	s.align = uint32(max(1, l.RequestAlignment))
	s.maxTx = nbdproto.MaxBuffer
	if l.MaxTransfer > 0 && l.MaxTransfer < int64(s.maxTx) {
		s.maxTx = uint32(l.MaxTransfer)
	}
	loop.AddEngine(s)
	go s.accept()
	return s, nil
}

// Addr returns the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// accept takes connections until the listener closes.
func (s *Server) accept() {
	defer close(s.acceptDone)
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		s.mu.Lock()
		full := s.opts.MaxClients > 0 && len(s.conns) >= s.opts.MaxClients
		if s.closing || full {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		c := newConn(s, nc)
		s.conns[c] = struct{}{}
		s.served++
		s.mu.Unlock()
		go c.serve()
	}
}

// connDone forgets a finished connection; without -t the last one to
// leave stops the server.
func (s *Server) connDone(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wake()
}

func (s *Server) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// RequestStop asks the loop's driver to stop the server: any goroutine
// (a signal handler) may call it; it wakes a wait on the loop, which
// then sees StopRequested.
func (s *Server) RequestStop() {
	s.mu.Lock()
	s.stopReq = true
	s.mu.Unlock()
	s.wake()
}

// Kick wakes a wait on the loop so that its driver looks at its
// condition again; any goroutine may call it.
func (s *Server) Kick() { s.wake() }

// StopRequested reports whether RequestStop was called.
func (s *Server) StopRequested() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopReq
}

// Clients returns the number of connected clients and the number ever
// accepted.
func (s *Server) Clients() (now, ever int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns), s.served
}

// Idle reports whether no remote request is on the loop (under the
// token).
func (s *Server) Idle() bool { return s.inflight == 0 }

// Finished reports whether a non-persistent server has served its
// clients: at least one came and all have left.
func (s *Server) Finished() bool {
	now, ever := s.Clients()
	return !s.opts.Persistent && ever > 0 && now == 0 && s.inflight == 0
}

// Pending implements blk.Engine: while it listens, the server may
// always receive work, so a wait on the loop (wait_break, nbd_server_wait)
// waits for remote clients instead of giving up.
func (s *Server) Pending() int {
	if s.stopped {
		// Closed connections still finish on their own.
		if now, _ := s.Clients(); now > 0 {
			return 1 + s.inflight
		}
		return s.inflight
	}
	return 1 + s.inflight
}

// WakeChan implements blk.Waker.
func (s *Server) WakeChan() <-chan struct{} { return s.notify }

var (
	_ blk.Engine = (*Server)(nil)
	_ blk.Waker  = (*Server)(nil)
)

// Poll implements blk.Engine: queued remote requests become block-layer
// requests, in arrival order. With block set it waits for a request or a
// change of clients.
func (s *Server) Poll(block bool) bool {
	for {
		s.mu.Lock()
		in := s.inbox
		s.inbox = nil
		s.mu.Unlock()
		if len(in) > 0 {
			for _, r := range in {
				s.spawn(r)
			}
			return true
		}
		if !block || s.Pending() == 0 {
			return false
		}
		<-s.notify
		s.mu.Lock()
		empty := len(s.inbox) == 0
		s.mu.Unlock()
		if empty {
			// A client came or went: let the waiter look again.
			return true
		}
	}
}

// queue hands a parsed request to the loop (from a connection goroutine).
func (s *Server) queue(r *request) {
	s.mu.Lock()
	s.inbox = append(s.inbox, r)
	s.mu.Unlock()
	s.wake()
}

// Close stops listening, disconnects every client and waits, running
// the loop, until their requests have finished. A request that can never
// finish (suspended at a breakpoint) makes Close fail; resume it and call
// Close again.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.ln.Close() // a unix listener removes its socket file
	for _, c := range conns {
		c.nc.Close()
	}
	<-s.acceptDone
	s.stopped = true
	err := s.loop.RunUntil("nbd_server_stop", func() bool {
		now, _ := s.Clients()
		return now == 0 && s.inflight == 0
	})
	if err != nil {
		return err
	}
	s.loop.RemoveEngine(s)
	return nil
}

// Listen opens the listener qemu-nbd would: a unix socket when sock is
// set, else TCP on addr:port.
func Listen(sock, addr string, port int) (net.Listener, error) {
	if sock != "" {
		os.Remove(sock)
		ln, err := net.Listen("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("Failed to bind socket to %s: %s", sock, cvt.Strerror(blk.ErrnoOf(err)))
		}
		return ln, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
	if err != nil {
		return nil, fmt.Errorf("Failed to bind socket: %s", cvt.Strerror(blk.ErrnoOf(err)))
	}
	return ln, nil
}
