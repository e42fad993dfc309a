package nbdserver_test

import (
	"io"
	"net"
	"sync"
	"testing"

	"gio/blk"
	"gio/blk/qdict"
	"gio/internal/nbdproto"
	"gio/nbdserver"
)

// pipeListener hands out in-memory connections.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "unix"} }

// session builds the bytes of a well-behaved client: handshake with
// structured replies and both contexts, then one of each request.
func session() []byte {
	be := nbdproto.BE
	b := be.AppendUint32(nil, nbdproto.FlagFixedNewstyle|nbdproto.FlagNoZeroes)
	opt := func(o uint32, d []byte) {
		b = be.AppendUint64(b, nbdproto.IHaveOpt)
		b = be.AppendUint32(b, o)
		b = be.AppendUint32(b, uint32(len(d)))
		b = append(b, d...)
	}
	opt(nbdproto.OptList, nil)
	opt(nbdproto.OptStructuredReply, nil)
	d := nbdproto.AppendString(nil, "")
	d = be.AppendUint32(d, 2)
	d = nbdproto.AppendString(d, nbdproto.ContextBaseAllocation)
	d = nbdproto.AppendString(d, nbdproto.ContextAllocDepth)
	opt(nbdproto.OptSetMetaContext, d)
	q := nbdproto.InfoRequest{Infos: []uint16{nbdproto.InfoBlockSize, nbdproto.InfoName}}
	opt(nbdproto.OptInfo, q.Encode())
	opt(nbdproto.OptGo, q.Encode())
	req := func(typ, flags uint16, off uint64, n uint32, payload []byte) {
		r := nbdproto.Request{Type: typ, Flags: flags, Cookie: uint64(len(b)), Offset: off, Length: n}
		b = append(b, r.Encode(make([]byte, nbdproto.RequestSize))...)
		b = append(b, payload...)
	}
	req(nbdproto.CmdWrite, nbdproto.CmdFlagFUA, 512, 8, []byte("abcdefgh"))
	req(nbdproto.CmdRead, nbdproto.CmdFlagDF, 0, 4096, nil)
	req(nbdproto.CmdBlockStatus, 0, 0, 1<<20, nil)
	req(nbdproto.CmdWriteZeroes, nbdproto.CmdFlagNoHole, 0, 4096, nil)
	req(nbdproto.CmdTrim, 0, 4096, 4096, nil)
	req(nbdproto.CmdCache, 0, 0, 4096, nil)
	req(nbdproto.CmdFlush, 0, 0, 0, nil)
	req(nbdproto.CmdDisc, 0, 0, 0, nil)
	return b
}

// FuzzServer sends arbitrary client bytes to a server (handshake and
// transmission phases): it must neither panic nor hang, and must let the
// connection go.
func FuzzServer(f *testing.F) {
	f.Add(session())
	s := session()
	f.Add(s[:60])
	f.Add([]byte{0, 0, 0, 3})
	reg := registry()
	f.Fuzz(func(t *testing.T, data []byte) {
		loop := blk.NewLoop(blk.NewVirtualClock())
		opts := qdict.FromPairs("driver", "null-co", "size", "1048576", "read-zeroes", "on")
		b, err := reg.Open(blk.Spec{Opts: opts}, loop)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		ln := &pipeListener{ch: make(chan net.Conn, 1), done: make(chan struct{})}
		srv, err := nbdserver.Start(b, ln, nbdserver.Options{AllocDepth: true, Persistent: true})
		if err != nil {
			t.Fatal(err)
		}
		cli, sv := net.Pipe()
		ln.ch <- sv
		go io.Copy(io.Discard, cli)
		go func() {
			cli.Write(data)
			cli.Close()
		}()
		err = loop.RunUntil("fuzz", func() bool {
			now, ever := srv.Clients()
			return ever == 1 && now == 0 && srv.Idle()
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
