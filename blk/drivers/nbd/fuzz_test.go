package nbd_test

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"gio/blk"
	"gio/internal/nbdproto"
)

// serverStream builds the bytes of a well-behaved server for the
// requests fuzzOps sends: handshake with structured replies and
// base:allocation, then one reply per request (cookies count from 1).
func serverStream() []byte {
	hs, replies := serverParts()
	for _, r := range replies {
		hs = append(hs, r...)
	}
	return hs
}

// serverParts returns the handshake bytes and each request's reply.
func serverParts() ([]byte, [][]byte) {
	be := nbdproto.BE
	b := be.AppendUint64(nil, nbdproto.NBDMagic)
	b = be.AppendUint64(b, nbdproto.IHaveOpt)
	b = be.AppendUint16(b, nbdproto.FlagFixedNewstyle|nbdproto.FlagNoZeroes)
	b = nbdproto.AppendOptReply(b, nbdproto.OptStructuredReply, nbdproto.RepAck, nil)
	ctx := be.AppendUint32(nil, 7)
	b = nbdproto.AppendOptReply(b, nbdproto.OptSetMetaContext, nbdproto.RepMetaContext, append(ctx, nbdproto.ContextBaseAllocation...))
	b = nbdproto.AppendOptReply(b, nbdproto.OptSetMetaContext, nbdproto.RepAck, nil)
	flags := uint16(nbdproto.FlagHasFlags | nbdproto.FlagSendFlush | nbdproto.FlagSendFUA | nbdproto.FlagSendTrim |
		nbdproto.FlagSendWriteZero | nbdproto.FlagSendDF | nbdproto.FlagSendCache | nbdproto.FlagSendFastZero)
	b = nbdproto.AppendOptReply(b, nbdproto.OptGo, nbdproto.RepInfo, nbdproto.AppendInfoBlockSize(nil, 1, 4096, 1<<20))
	b = nbdproto.AppendOptReply(b, nbdproto.OptGo, nbdproto.RepInfo, nbdproto.AppendInfoExport(nil, 1<<20, flags))
	b = nbdproto.AppendOptReply(b, nbdproto.OptGo, nbdproto.RepAck, nil)
	hs := b
	var replies [][]byte
	b = nil
	next := func() {
		replies = append(replies, b)
		b = nil
	}
	chunk := func(cookie uint64, typ uint16, flags uint16, p []byte) {
		h := nbdproto.ChunkHeader{Flags: flags, Type: typ, Cookie: cookie, Length: uint32(len(p))}
		b = append(b, h.Encode(make([]byte, nbdproto.StructReplySize))...)
		b = append(b, p...)
	}
	// 1: read 0+4096: a hole chunk and a data chunk.
	hole := be.AppendUint64(nil, 0)
	chunk(1, nbdproto.ReplyTypeOffsetHole, 0, be.AppendUint32(hole, 2048))
	chunk(1, nbdproto.ReplyTypeOffsetData, nbdproto.ReplyFlagDone, append(be.AppendUint64(nil, 2048), make([]byte, 2048)...))
	next()
	// 2: write: simple reply.
	b = append(b, nbdproto.EncodeSimpleReply(make([]byte, nbdproto.SimpleReplySize), 0, 2)...)
	next()
	// 3: block status.
	bs := be.AppendUint32(nil, 7)
	bs = be.AppendUint32(bs, 65536)
	bs = be.AppendUint32(bs, nbdproto.StateHole|nbdproto.StateZero)
	chunk(3, nbdproto.ReplyTypeBlockStatus, nbdproto.ReplyFlagDone, bs)
	next()
	// 4: zero write: an error chunk.
	chunk(4, nbdproto.ReplyTypeError, nbdproto.ReplyFlagDone, nbdproto.AppendErrorChunk(nil, nbdproto.ENOSPC, "full"))
	next()
	// 5, 6: trim and flush.
	chunk(5, nbdproto.ReplyTypeNone, nbdproto.ReplyFlagDone, nil)
	next()
	b = append(b, nbdproto.EncodeSimpleReply(make([]byte, nbdproto.SimpleReplySize), 0, 6)...)
	next()
	return hs, replies
}

// FuzzClient answers the client with arbitrary server bytes: opening and
// every request must end (with an error or not) without a panic or a
// hang.
func FuzzClient(f *testing.F) {
	f.Add(serverStream())
	s := serverStream()
	f.Add(s[:100])
	sock := filepath.Join(f.TempDir(), "fuzz.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	reg := registry()
	f.Fuzz(func(t *testing.T, data []byte) {
		served := make(chan struct{})
		go func() {
			defer close(served)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			drained := make(chan struct{})
			go func() {
				io.Copy(io.Discard, c)
				close(drained)
			}()
			c.Write(data)
			// The client sees the end of the stream once it has read
			// everything: no read can wait for ever.
			c.(*net.UnixConn).CloseWrite()
			<-drained
		}()
		fuzzOps(t, reg, sock, true)
		<-served
	})
}

// fuzzOps opens the export and sends one request of each kind, all at
// once when concurrent (so that every cookie is in flight when a scripted
// stream answers them); it returns each request's error (nil when the
// open failed).
func fuzzOps(t *testing.T, reg *blk.Registry, sock string, concurrent bool) ([]error, *blk.Status) {
	loop := blk.NewLoop(blk.NewVirtualClock())
	b, err := reg.Open(blk.Spec{Filename: "nbd+unix:///?socket=" + sock, Format: "raw"}, loop)
	if err != nil {
		return nil, nil
	}
	defer b.Close()
	buf := make([]byte, 4096)
	var st blk.Status
	ops := []func(co *blk.Co) error{
		func(co *blk.Co) error { return b.PRead(co, 0, buf) },
		func(co *blk.Co) error { return b.PWrite(co, 0, buf[:512], 0) },
		func(co *blk.Co) (err error) { st, err = b.BlockStatus(co, 0, 1<<20); return err },
		func(co *blk.Co) error { return b.PWriteZeroes(co, 0, 4096, blk.MayUnmap) },
		func(co *blk.Co) error { return b.PDiscard(co, 0, 4096) },
		func(co *blk.Co) error { return b.Flush(co) },
	}
	errs := make([]error, len(ops))
	var cos []*blk.Co
	for i, op := range ops {
		cos = append(cos, loop.Spawn("fuzz", func(co *blk.Co) { errs[i] = op(co) }))
		if !concurrent {
			if err := loop.RunUntil("fuzz", cos[i].Done); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := loop.Drain("fuzz"); err != nil {
		t.Fatal(err)
	}
	return errs, &st
}

// TestScriptedServer replays the fuzz seed: a well-behaved server's
// replies, hole and data chunks, block status and an error chunk.
func TestScriptedServer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// Answer each request once it has arrived, as a server does.
		hs, replies := serverParts()
		c.Write(hs)
		var skip [4]byte
		io.ReadFull(c, skip[:]) // client flags
		for {
			o, err := nbdproto.ReadOption(c, nbdproto.MaxOption)
			if err != nil {
				return
			}
			if o.Option == nbdproto.OptGo {
				break
			}
		}
		hdr := make([]byte, nbdproto.RequestSize)
		for _, rep := range replies {
			if _, err := io.ReadFull(c, hdr); err != nil {
				return
			}
			r, _ := nbdproto.DecodeRequest(hdr)
			if r.Type == nbdproto.CmdWrite {
				io.CopyN(io.Discard, c, int64(r.Length))
			}
			c.Write(rep)
		}
		io.Copy(io.Discard, c)
	}()
	errs, st := fuzzOps(t, registry(), sock, false)
	if len(errs) != 6 {
		t.Fatalf("open failed")
	}
	for i, want := range []error{nil, nil, nil, unix.ENOSPC, nil, nil} {
		if !errors.Is(errs[i], want) && !(want == nil && errs[i] == nil) {
			t.Errorf("request %d: %v, want %v", i+1, errs[i], want)
		}
	}
	if st.Pnum != 65536 || st.Flags&blk.StatusZero == 0 || st.Flags&blk.StatusData != 0 {
		t.Errorf("block status %+v", st)
	}
}
