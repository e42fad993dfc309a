package nbdproto

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRequestRoundTrip(t *testing.T) {
	r := Request{Flags: CmdFlagFUA, Type: CmdWrite, Cookie: 0x0102030405060708, Offset: 1 << 40, Length: 4096}
	b := r.Encode(make([]byte, RequestSize))
	want := []byte{0x25, 0x60, 0x95, 0x13, 0, 1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x10, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x", b)
	}
	got, err := DecodeRequest(b)
	if err != nil || got != r {
		t.Fatalf("decoded %+v %v", got, err)
	}
	b[0] = 0
	if _, err := DecodeRequest(b); !errors.Is(err, ErrProtocol) {
		t.Fatalf("bad magic: %v", err)
	}
}

func TestErrnoMapping(t *testing.T) {
	for _, tc := range []struct {
		sys  unix.Errno
		wire uint32
		back unix.Errno
	}{
		{unix.EPERM, EPERM, unix.EPERM}, {unix.EROFS, EPERM, unix.EPERM}, {unix.EIO, EIO, unix.EIO},
		{unix.ENOMEM, ENOMEM, unix.ENOMEM}, {unix.EFBIG, ENOSPC, unix.ENOSPC}, {unix.EDQUOT, ENOSPC, unix.ENOSPC},
		{unix.EOVERFLOW, EOVERFLOW, unix.EOVERFLOW}, {unix.ENOTSUP, ENOTSUP, unix.ENOTSUP},
		{unix.ESHUTDOWN, ESHUTDOWN, unix.ESHUTDOWN}, {unix.EBADF, EINVAL, unix.EINVAL},
	} {
		if w := ErrnoToWire(tc.sys); w != tc.wire {
			t.Errorf("%v -> %d, want %d", tc.sys, w, tc.wire)
		}
		if s := WireToErrno(tc.wire); s != tc.back {
			t.Errorf("%d -> %v, want %v", tc.wire, s, tc.back)
		}
	}
	if WireToErrno(1234) != unix.EINVAL {
		t.Error("unknown wire errors must become EINVAL")
	}
}

func TestBlockSizes(t *testing.T) {
	for _, tc := range []struct {
		min, pref, max uint32
		ok             bool
	}{
		{1, 4096, 32 << 20, true}, {512, 4096, 1<<32 - 1, true}, {4096, 4096, 4096, true},
		{3, 4096, 4096, false}, {4096, 512, 4096, false}, {4096, 4096, 6000, false}, {1 << 17, 1 << 17, 1 << 17, false},
	} {
		p := AppendInfoBlockSize(nil, tc.min, tc.pref, tc.max)
		var e ExportInfo
		if err := e.ApplyInfo(p); (err == nil) != tc.ok {
			t.Errorf("%d/%d/%d: %v", tc.min, tc.pref, tc.max, err)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder: none may panic or
// allocate more than its bound.
func FuzzDecode(f *testing.F) {
	r := Request{Type: CmdRead, Cookie: 1, Length: 512}
	f.Add(r.Encode(make([]byte, RequestSize)))
	f.Add(EncodeSimpleReply(make([]byte, SimpleReplySize), 5, 9))
	h := ChunkHeader{Flags: ReplyFlagDone, Type: ReplyTypeError, Cookie: 2, Length: 10}
	f.Add(append(h.Encode(make([]byte, StructReplySize)), AppendErrorChunk(nil, EIO, "boom")...))
	f.Add(AppendOptReply(nil, OptGo, RepInfo, AppendInfoExport(nil, 1<<20, FlagHasFlags)))
	q := InfoRequest{Name: "x", Infos: []uint16{InfoBlockSize}}
	f.Add(q.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeRequest(b)
		buf := make([]byte, StructReplySize)
		if rep, err := ReadReply(bytes.NewReader(b), buf); err == nil && rep.Structured && len(b) > StructReplySize {
			p := b[StructReplySize:]
			DecodeErrorChunk(rep.Chunk.Type, p)
			DecodeBlockStatus(p, 16)
		}
		if o, err := ReadOption(bytes.NewReader(b), 4096); err == nil && len(o.Data) > 4096 {
			t.Fatal("option over its bound")
		}
		if o, err := ReadOptReply(bytes.NewReader(b), 4096); err == nil {
			if len(o.Data) > 4096 {
				t.Fatal("option reply over its bound")
			}
			var e ExportInfo
			e.ApplyInfo(o.Data)
		}
		if q, err := DecodeInfoRequest(b); err == nil {
			if got := q.Encode(); !bytes.Equal(got, b) {
				t.Fatalf("info request round trip: % x != % x", got, b)
			}
		}
		if _, ext, err := DecodeBlockStatus(b, 4); err == nil && len(ext) > 4 {
			t.Fatal("extents over the bound")
		}
	})
}
