package commands

import (
	"fmt"
	"strconv"
	"sync"

	"gio/internal/getopt"
	"gio/nbdserver"
)

// NBD server commands: export the open image over NBD from inside a
// session, so that remote clients' requests run on the session's loop
// and stop at its breakpoints.
func nbdCommands() []*Command {
	return []*Command{
		{Name: "nbd_server_start", Args: "[-rAt] [-x name] [-D desc] [-e n] [-k socket | [-b addr] [-p port]]",
			Oneline: "exports the open image over NBD", Help: nbdStartHelp + FlagHelp(nbdStartFlags),
			Flags: nbdStartFlags, MinArgs: 0, MaxArgs: -1, NeedsFile: true, Family: "nbd", Hidden: true, Run: nbdStartCmd},
		{Name: "nbd_server_stop", Oneline: "stops the NBD server, disconnecting its clients",
			MinArgs: 0, MaxArgs: 0, RawArgs: true, Family: "nbd", Hidden: true, Run: nbdStopCmd},
		{Name: "nbd_server_wait", Oneline: "serves NBD clients until every client has disconnected",
			MinArgs: 0, MaxArgs: 0, RawArgs: true, Family: "nbd", Hidden: true, Run: nbdWaitCmd},
	}
}

var nbdStartFlags = []Flag{
	{Letter: 'r', Desc: "export read-only"},
	{Letter: 'A', Desc: "also export qemu:allocation-depth"},
	{Letter: 't', Desc: "keep serving after the last client left\n(nbd_server_wait then waits for ever)"},
	{Letter: 'x', Arg: "name", Desc: "export name (default \"\")"},
	{Letter: 'D', Arg: "desc", Desc: "export description"},
	{Letter: 'e', Arg: "n", Desc: "most clients at once (default 0, unlimited)"},
	{Letter: 'k', Arg: "socket", Path: true, Desc: "listen on this unix socket"},
	{Letter: 'b', Arg: "addr", Desc: "TCP address to listen on (default 127.0.0.1)"},
	{Letter: 'p', Arg: "port", Desc: "TCP port (default 10809; 0 picks a free one and prints it)"},
}

const nbdStartHelp = `
 exports the open image over NBD, as qemu-nbd does: a unix socket with -k,
 else TCP on -b and -p.

 Remote requests enter the loop in arrival order and run like typed ones:
 they stop at blkdebug breakpoints (wait_break waits for them), and they
 run whenever the session waits (wait_break, sleep, aio_flush,
 nbd_server_wait) or shows its prompt.

`

// nbdServers holds each session's server (one at a time).
var nbdServers = struct {
	sync.Mutex
	m map[*Session]*nbdserver.Server
}{m: map[*Session]*nbdserver.Server{}}

func nbdServerOf(s *Session) *nbdserver.Server {
	nbdServers.Lock()
	defer nbdServers.Unlock()
	return nbdServers.m[s]
}

func setNBDServer(s *Session, srv *nbdserver.Server) {
	nbdServers.Lock()
	defer nbdServers.Unlock()
	if srv == nil {
		delete(nbdServers.m, s)
	} else {
		nbdServers.m[s] = srv
	}
}

func nbdStartCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	if len(args) != 0 {
		return errUsage
	}
	if nbdServerOf(s) != nil {
		s.errorReport("NBD server already running")
		return errFailed
	}
	so := nbdserver.Options{Persistent: false}
	sock, addr, port := "", "127.0.0.1", 10809
	for _, o := range opts {
		switch o.Name {
		case 'r':
			so.ReadOnly = true
		case 'A':
			so.AllocDepth = true
		case 't':
			so.Persistent = true
		case 'x':
			so.Name = o.Arg
		case 'D':
			so.Description = o.Arg
		case 'e':
			n, err := strconv.Atoi(o.Arg)
			if err != nil || n < 0 {
				s.errorReport("Invalid shared device number '%s'", o.Arg)
				return errFailed
			}
			so.MaxClients = n
		case 'k':
			sock = o.Arg
		case 'b':
			addr = o.Arg
		case 'p':
			n, err := strconv.Atoi(o.Arg)
			if err != nil || n < 0 || n > 65535 {
				s.errorReport("Invalid port '%s'", o.Arg)
				return errFailed
			}
			port = n
		}
	}
	ln, err := nbdserver.Listen(sock, addr, port)
	if err != nil {
		s.errorReport("%v", err)
		return errFailed
	}
	srv, err := nbdserver.Start(s.Img, ln, so)
	if err != nil {
		ln.Close()
		s.errorReport("%v", err)
		return errFailed
	}
	setNBDServer(s, srv)
	if sock == "" && port == 0 {
		fmt.Fprintf(s.Out, "NBD server listening on %s\n", srv.Addr())
	}
	return nil
}

func nbdStopCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	if !s.stopNBD() {
		return errFailed
	}
	return nil
}

// stopNBD stops the session's server, if any; it reports false (after
// printing why) when remote requests cannot finish.
func (s *Session) stopNBD() bool {
	srv := nbdServerOf(s)
	if srv == nil {
		return true
	}
	if err := srv.Close(); err != nil {
		if s.stuck(err) == nil {
			s.errorReport("%v", err)
		}
		return false
	}
	setNBDServer(s, nil)
	return true
}

func nbdWaitCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	srv := nbdServerOf(s)
	if srv == nil {
		s.errorReport("No NBD server running")
		return errFailed
	}
	err := s.Loop.RunUntil("nbd_server_wait", func() bool {
		now, ever := srv.Clients()
		return ever > 0 && now == 0 && srv.Idle()
	})
	if err != nil {
		if s.stuck(err) == nil {
			s.errorReport("%v", err)
		}
		return errFailed
	}
	return nil
}
