package nbdserver_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/nbd"
	"gio/blk/drivers/null"
	"gio/blk/drivers/qcow2"
	"gio/blk/drivers/raw"
	"gio/blkdebug"
	"gio/internal/nbdproto"
	"gio/nbdserver"

	"golang.org/x/sys/unix"
)

func registry() *blk.Registry {
	return blk.NewRegistry(append([]*blk.Driver{file.Driver, raw.Driver, qcow2.Driver, null.CoDriver,
		blkdebug.NewDriver(func() io.Writer { return io.Discard })}, nbd.Drivers...)...)
}

// served is a server running on its own loop, driven by its own
// goroutine until stop.
type served struct {
	sock string
	srv  *nbdserver.Server
	b    *blk.Backend
	// do runs fn on the loop's goroutine, under the token.
	do   chan func()
	done chan error
}

// serve exports spec on a unix socket; the test's cleanup stops it.
func serve(t testing.TB, spec blk.Spec, opts nbdserver.Options) *served {
	t.Helper()
	s := &served{sock: filepath.Join(t.TempDir(), "s.sock"), do: make(chan func()), done: make(chan error, 1)}
	ready := make(chan error)
	go func() {
		loop := blk.NewLoop(blk.NewRealClock())
		b, err := registry().Open(spec, loop)
		if err != nil {
			ready <- err
			return
		}
		ln, err := nbdserver.Listen(s.sock, "", 0)
		if err != nil {
			b.Close()
			ready <- err
			return
		}
		srv, err := nbdserver.Start(b, ln, opts)
		if err != nil {
			b.Close()
			ready <- err
			return
		}
		s.srv, s.b = srv, b
		ready <- nil
		var pending []func()
		var mu sync.Mutex
		go func() {
			for fn := range s.do {
				mu.Lock()
				pending = append(pending, fn)
				mu.Unlock()
				srv.Kick()
			}
		}()
		for {
			err := loop.RunUntil("serve", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return srv.StopRequested() || len(pending) > 0
			})
			mu.Lock()
			fns := pending
			pending = nil
			mu.Unlock()
			for _, fn := range fns {
				fn()
			}
			if err != nil || srv.StopRequested() {
				break
			}
		}
		err = srv.Close()
		b.Close()
		s.done <- err
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *served) stop(t testing.TB) {
	if s.srv == nil {
		return
	}
	s.srv.RequestStop()
	if err := <-s.done; err != nil {
		t.Errorf("server close: %v", err)
	}
	close(s.do)
	s.srv = nil
}

// onLoop runs fn under the server loop's token and waits for it.
func (s *served) onLoop(fn func()) {
	done := make(chan struct{})
	s.do <- func() { fn(); close(done) }
	<-done
}

func rawImage(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

func uri(sock string) string { return "nbd+unix:///?socket=" + sock }

// TestConformance runs blktest through gio's client against gio's
// server over a raw file.
func TestConformance(t *testing.T) {
	blktest.Run(t, func(t *testing.T) *blk.Backend {
		s := serve(t, blk.Spec{Filename: rawImage(t, blktest.MinLength*4), Format: "raw"}, nbdserver.Options{Persistent: true})
		b, err := registry().Open(blk.Spec{Filename: uri(s.sock), Format: "raw"}, blk.NewLoop(blk.NewVirtualClock()))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, blktest.FixedLength())
}

// client is a raw protocol client for tests that need exact bytes.
type client struct {
	t  testing.TB
	nc net.Conn
}

func dial(t testing.TB, sock string) *client {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc}
}

func (c *client) read(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.nc, b); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return b
}

// handshake negotiates structured replies (when structured) and enters
// transmission with OPT_GO on the default export.
func (c *client) handshake(structured bool, contexts ...string) nbdproto.ExportInfo {
	c.t.Helper()
	h := c.read(18)
	if nbdproto.BE.Uint64(h) != nbdproto.NBDMagic || nbdproto.BE.Uint64(h[8:]) != nbdproto.IHaveOpt {
		c.t.Fatalf("bad greeting % x", h)
	}
	c.nc.Write(nbdproto.BE.AppendUint32(nil, nbdproto.FlagFixedNewstyle|nbdproto.FlagNoZeroes))
	if structured {
		nbdproto.WriteOption(c.nc, nbdproto.OptStructuredReply, nil)
		if r := c.optReply(); r.Type != nbdproto.RepAck {
			c.t.Fatalf("structured reply: %d", r.Type)
		}
	}
	if len(contexts) > 0 {
		d := nbdproto.AppendString(nil, "")
		d = nbdproto.BE.AppendUint32(d, uint32(len(contexts)))
		for _, x := range contexts {
			d = nbdproto.AppendString(d, x)
		}
		nbdproto.WriteOption(c.nc, nbdproto.OptSetMetaContext, d)
		for r := c.optReply(); r.Type != nbdproto.RepAck; r = c.optReply() {
		}
	}
	q := nbdproto.InfoRequest{Infos: []uint16{nbdproto.InfoBlockSize}}
	nbdproto.WriteOption(c.nc, nbdproto.OptGo, q.Encode())
	var info nbdproto.ExportInfo
	for {
		r := c.optReply()
		if r.Type == nbdproto.RepAck {
			return info
		}
		if r.Type != nbdproto.RepInfo {
			c.t.Fatalf("go: reply %#x %q", r.Type, r.Data)
		}
		if err := info.ApplyInfo(r.Data); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *client) optReply() nbdproto.OptReply {
	c.t.Helper()
	r, err := nbdproto.ReadOptReply(c.nc, nbdproto.MaxOption)
	if err != nil {
		c.t.Fatalf("option reply: %v", err)
	}
	return r
}

var cookie uint64

// request sends a request and returns the error of its simple reply (and
// the data of a read).
func (c *client) request(typ, flags uint16, off uint64, n uint32, payload []byte) (uint32, []byte) {
	c.t.Helper()
	cookie++
	r := nbdproto.Request{Type: typ, Flags: flags, Cookie: cookie, Offset: off, Length: n}
	c.nc.Write(append(r.Encode(make([]byte, nbdproto.RequestSize)), payload...))
	rep, err := nbdproto.ReadReply(c.nc, make([]byte, nbdproto.StructReplySize))
	if err != nil {
		c.t.Fatalf("reply: %v", err)
	}
	if rep.Structured || rep.Cookie() != cookie {
		c.t.Fatalf("unexpected reply %+v", rep)
	}
	if rep.Error == 0 && typ == nbdproto.CmdRead {
		return 0, c.read(int(n))
	}
	return rep.Error, nil
}

func TestRequestChecks(t *testing.T) {
	const size = 1 << 20
	img := rawImage(t, size)
	os.WriteFile(img, bytes.Repeat([]byte{0xaa}, size), 0o644)
	ro := serve(t, blk.Spec{Filename: img, Format: "raw", Flags: blk.OpenFlags{ReadOnly: true}}, nbdserver.Options{Persistent: true, ReadOnly: true})
	c := dial(t, ro.sock)
	info := c.handshake(false)
	if info.Size != size || info.Flags&nbdproto.FlagReadOnly == 0 || info.MaxBlock != nbdproto.MaxBuffer {
		t.Fatalf("export info %+v", info)
	}
	for _, tc := range []struct {
		name   string
		typ    uint16
		flags  uint16
		off    uint64
		n      uint32
		errno  uint32
		sendPL bool
	}{
		{"write read-only", nbdproto.CmdWrite, 0, 0, 512, nbdproto.EPERM, true},
		{"trim read-only", nbdproto.CmdTrim, 0, 0, 512, nbdproto.EPERM, false},
		{"zero read-only", nbdproto.CmdWriteZeroes, 0, 0, 512, nbdproto.EPERM, false},
		{"read past end", nbdproto.CmdRead, 0, size - 511, 512, nbdproto.EINVAL, false},
		{"read offset overflow", nbdproto.CmdRead, 0, 1<<64 - 1, 2, nbdproto.EINVAL, false},
		{"read too large", nbdproto.CmdRead, 0, 0, nbdproto.MaxBuffer + 1, nbdproto.EINVAL, false},
		{"bad flags", nbdproto.CmdRead, nbdproto.CmdFlagNoHole, 0, 512, nbdproto.EINVAL, false},
		{"df without structured", nbdproto.CmdRead, nbdproto.CmdFlagDF, 0, 512, nbdproto.EINVAL, false},
		{"unknown command", 99, 0, 0, 512, nbdproto.EINVAL, false},
		{"block status without context", nbdproto.CmdBlockStatus, 0, 0, 512, nbdproto.EINVAL, false},
		{"flush", nbdproto.CmdFlush, 0, 0, 0, 0, false},
		{"read", nbdproto.CmdRead, 0, size - 512, 512, 0, false},
	} {
		var pl []byte
		if tc.sendPL {
			pl = make([]byte, tc.n)
		}
		if errno, _ := c.request(tc.typ, tc.flags, tc.off, tc.n, pl); errno != tc.errno {
			t.Errorf("%s: errno %d, want %d", tc.name, errno, tc.errno)
		}
	}
	if got, _ := os.ReadFile(img); !bytes.Equal(got, bytes.Repeat([]byte{0xaa}, size)) {
		t.Error("a refused request changed the image")
	}

	rw := serve(t, blk.Spec{Filename: img, Format: "raw"}, nbdserver.Options{Persistent: true})
	c = dial(t, rw.sock)
	c.handshake(false)
	if errno, _ := c.request(nbdproto.CmdWrite, 0, size-256, 512, make([]byte, 512)); errno != nbdproto.ENOSPC {
		t.Errorf("write past end: errno %d, want ENOSPC", errno)
	}
	// The stream is still in sync after the refused payload.
	if errno, _ := c.request(nbdproto.CmdWrite, nbdproto.CmdFlagFUA, 0, 3, []byte{1, 2, 3}); errno != 0 {
		t.Errorf("write: errno %d", errno)
	}
	if errno, d := c.request(nbdproto.CmdRead, 0, 0, 4, nil); errno != 0 || !bytes.Equal(d, []byte{1, 2, 3, 0xaa}) {
		t.Errorf("read back: %d % x", errno, d)
	}
	// A payload over the advertised maximum is refused and the client
	// dropped: the server cannot skip it.
	r := nbdproto.Request{Type: nbdproto.CmdWrite, Cookie: 77, Length: nbdproto.MaxBuffer + 1}
	c.nc.Write(r.Encode(make([]byte, nbdproto.RequestSize)))
	rep, err := nbdproto.ReadReply(c.nc, make([]byte, nbdproto.StructReplySize))
	if err != nil || rep.Error != nbdproto.EINVAL {
		t.Errorf("oversized write: %+v %v", rep, err)
	}
	if _, err := c.nc.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("oversized write: connection not dropped (%v)", err)
	}
	if got, _ := os.ReadFile(img); !bytes.Equal(got[3:], bytes.Repeat([]byte{0xaa}, size-3)) {
		t.Error("bytes outside the writes changed")
	}
}

// TestStructured checks structured replies: read data, block status for
// both contexts, error chunks.
func TestStructured(t *testing.T) {
	img := rawImage(t, 1<<20)
	s := serve(t, blk.Spec{Filename: img, Format: "raw"}, nbdserver.Options{Persistent: true, AllocDepth: true})
	b, err := registry().Open(blk.Spec{Filename: uri(s.sock), Format: "raw"}, blk.NewLoop(blk.NewVirtualClock()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	loop := b.Loop()
	var st blk.Status
	co := loop.Spawn("t", func(co *blk.Co) {
		if err = b.PWrite(co, 64<<10, bytes.Repeat([]byte{1}, 4096), 0); err != nil {
			return
		}
		st, err = b.BlockStatus(co, 0, 1<<20)
	})
	if rerr := loop.RunUntil("t", co.Done); rerr != nil || err != nil {
		t.Fatal(rerr, err)
	}
	if st.Pnum != 64<<10 || st.Flags&blk.StatusData != 0 || st.Flags&blk.StatusZero == 0 {
		t.Errorf("status of the hole: %+v", st)
	}
	// qemu:allocation-depth through x-dirty-bitmap, as QEMU's iotests do.
	d, err := registry().Open(blk.Spec{Filename: `json:{"driver":"raw","file":{"driver":"nbd","server":{"type":"unix","path":"` + s.sock + `"},"x-dirty-bitmap":"qemu:allocation-depth"}}`}, blk.NewLoop(blk.NewVirtualClock()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	co = d.Loop().Spawn("t", func(co *blk.Co) { st, err = d.BlockStatus(co, 0, 1<<20) })
	if rerr := d.Loop().RunUntil("t", co.Done); rerr != nil || err != nil {
		t.Fatal(rerr, err)
	}
	// Depth 1 everywhere in a raw file: the flags word is 1, which the
	// client reads as "hole".
	if st.Pnum != 1<<20 || st.Flags&blk.StatusData != 0 {
		t.Errorf("allocation depth: %+v", st)
	}
}

// TestBreakpoint: a remote request stops at a blkdebug breakpoint, the
// loop sees it, and resuming it completes the client's read.
func TestBreakpoint(t *testing.T) {
	img := rawImage(t, 1<<20)
	s := serve(t, blk.Spec{Filename: "blkdebug::" + img, Format: "raw"}, nbdserver.Options{Persistent: true})
	var bp blk.Breakpointer
	s.onLoop(func() {
		bp = s.b.Root.Breakpointer()
		if err := bp.Break("read_aio", "A"); err != nil {
			t.Error(err)
		}
	})
	c := dial(t, s.sock)
	c.handshake(false)
	r := nbdproto.Request{Type: nbdproto.CmdRead, Cookie: 5, Length: 512}
	c.nc.Write(r.Encode(make([]byte, nbdproto.RequestSize)))
	var blocked []string
	s.onLoop(func() {
		err := s.b.Loop().RunUntil("wait_break", func() bool { return bp.IsSuspended("A") })
		if err != nil {
			t.Error(err)
		}
		blocked = s.b.Loop().Blocked()
	})
	if len(blocked) != 1 || !strings.Contains(blocked[0], "nbd read 0+512") {
		t.Errorf("blocked requests %q", blocked)
	}
	c.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("reply arrived while the request was suspended")
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	s.onLoop(func() { bp.Resume("A") })
	rep, err := nbdproto.ReadReply(c.nc, make([]byte, nbdproto.StructReplySize))
	if err != nil || rep.Cookie() != 5 || rep.Error != 0 {
		t.Fatalf("reply %+v %v", rep, err)
	}
}

func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestManyClients: 64 clients at once connect, work and disconnect;
// afterwards no goroutine and no descriptor is left behind.
func TestManyClients(t *testing.T) {
	img := rawImage(t, 4<<20)
	s := serve(t, blk.Spec{Filename: img, Format: "raw"}, nbdserver.Options{Persistent: true})
	// Settle pooled workers first: one client round.
	runClients(t, s.sock, 2)
	g0, f0 := goroutines(), openFDs(t)
	runClients(t, s.sock, 64)
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, _ := s.srv.Clients()
		g, f := goroutines(), openFDs(t)
		if now == 0 && g <= g0 && f <= f0 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("after 64 clients: %d clients, goroutines %d (was %d), fds %d (was %d)\n%s",
				now, g, g0, f, f0, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// goroutines counts goroutines other than blk's pooled request workers
// (QEMU's coroutine pool, which keeps idle workers on purpose).
func goroutines() int {
	buf := make([]byte, 4<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "blk.(*worker).run") {
			n++
		}
	}
	return n
}

func runClients(t *testing.T, sock string, n int) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b, err := registry().Open(blk.Spec{Filename: uri(sock), Format: "raw"}, blk.NewLoop(blk.NewVirtualClock()))
			if err != nil {
				errs <- err
				return
			}
			defer b.Close()
			data := bytes.Repeat([]byte{byte(i)}, 4096)
			off := int64(i) * 4096
			got := make([]byte, 4096)
			co := b.Loop().Spawn("c", func(co *blk.Co) {
				if err = b.PWrite(co, off, data, 0); err == nil {
					err = b.PRead(co, off, got)
				}
			})
			if rerr := b.Loop().RunUntil("c", co.Done); rerr != nil {
				err = rerr
			}
			if err == nil && !bytes.Equal(got, data) {
				err = fmt.Errorf("client %d: data mismatch", i)
			}
			if err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDisconnectMidRequest: a client that writes, flushes, then sends a
// write and vanishes loses nothing that was acknowledged.
func TestDisconnectMidRequest(t *testing.T) {
	img := rawImage(t, 1<<20)
	s := serve(t, blk.Spec{Filename: img, Format: "raw"}, nbdserver.Options{Persistent: true})
	c := dial(t, s.sock)
	c.handshake(false)
	if errno, _ := c.request(nbdproto.CmdWrite, 0, 0, 4096, bytes.Repeat([]byte{5}, 4096)); errno != 0 {
		t.Fatal(errno)
	}
	if errno, _ := c.request(nbdproto.CmdFlush, 0, 0, 0, nil); errno != 0 {
		t.Fatal(errno)
	}
	r := nbdproto.Request{Type: nbdproto.CmdWrite, Cookie: 9, Offset: 8192, Length: 4096}
	c.nc.Write(append(r.Encode(make([]byte, nbdproto.RequestSize)), make([]byte, 100)...))
	c.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for now, _ := s.srv.Clients(); now != 0; now, _ = s.srv.Clients() {
		if time.Now().After(deadline) {
			t.Fatal("connection not cleaned up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, _ := os.ReadFile(img)
	if !bytes.Equal(got[:4096], bytes.Repeat([]byte{5}, 4096)) {
		t.Error("acknowledged data lost")
	}
	if !bytes.Equal(got[8192:12288], make([]byte, 4096)) {
		t.Error("a partial payload was written")
	}
}

func TestNullExport(t *testing.T) {
	s := serve(t, blk.Spec{Filename: "null-co://", Opts: nil}, nbdserver.Options{Persistent: true})
	c := dial(t, s.sock)
	info := c.handshake(true, nbdproto.ContextBaseAllocation)
	if info.Size != 1<<30 {
		t.Errorf("size %d", info.Size)
	}
	_ = errors.Is
	_ = unix.EIO
}

// TestThreadPoolEngine: with the file driver's thread pool (gio nbd's
// default, as qemu-nbd's), the loop has two engines; waiting for remote
// clients must not miss the pool's completions.
func TestThreadPoolEngine(t *testing.T) {
	img := rawImage(t, 4<<20)
	s := serve(t, blk.Spec{Filename: img, Format: "raw", Flags: blk.OpenFlags{AIO: "threads"}}, nbdserver.Options{Persistent: true})
	done := make(chan struct{})
	go func() {
		runClients(t, s.sock, 8)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("clients hang")
	}
}

// TestInterruptWait: Ctrl-C ends a wait for remote clients.
func TestInterruptWait(t *testing.T) {
	loop := blk.NewLoop(blk.NewRealClock())
	b, err := registry().Open(blk.Spec{Filename: rawImage(t, 1<<20), Format: "raw"}, loop)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ln, err := nbdserver.Listen(filepath.Join(t.TempDir(), "s.sock"), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := nbdserver.Start(b, ln, nbdserver.Options{Persistent: true})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		loop.Interrupt()
	}()
	if err := loop.RunUntil("wait", func() bool { return false }); !errors.Is(err, blk.ErrInterrupted) {
		t.Errorf("wait: %v, want ErrInterrupted", err)
	}
	loop.ClearInterrupt()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}
