// Package nbdproto encodes and decodes the NBD protocol's messages (the
// fixed newstyle handshake, requests, simple and structured replies) as
// the NBD specification (doc/proto.md of the NBD project) defines them.
// Both gio's client driver (blk/drivers/nbd) and its server (nbdserver)
// use it; it does no I/O of its own beyond io.Reader and io.Writer, and
// every decoder bounds what it allocates, so it can be fuzzed alone.
package nbdproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// Magic numbers.
const (
	NBDMagic             = 0x4e42444d41474943 // "NBDMAGIC"
	IHaveOpt             = 0x49484156454F5054 // "IHAVEOPT"
	OldstyleMagic        = 0x0000420281861253
	OptReplyMagic        = 0x0003e889045565a9
	RequestMagic         = 0x25609513
	SimpleReplyMagic     = 0x67446698
	StructuredReplyMagic = 0x668e33ef
)

// Handshake flags (server) and client flags.
const (
	FlagFixedNewstyle = 1 << 0
	FlagNoZeroes      = 1 << 1
)

// Options.
const (
	OptExportName      = 1
	OptAbort           = 2
	OptList            = 3
	OptStartTLS        = 5
	OptInfo            = 6
	OptGo              = 7
	OptStructuredReply = 8
	OptListMetaContext = 9
	OptSetMetaContext  = 10
)

// Option reply types.
const (
	RepAck         = 1
	RepServer      = 2
	RepInfo        = 3
	RepMetaContext = 4

	RepFlagError        = 1 << 31
	RepErrUnsup         = RepFlagError | 1
	RepErrPolicy        = RepFlagError | 2
	RepErrInvalid       = RepFlagError | 3
	RepErrPlatform      = RepFlagError | 4
	RepErrTLSReqd       = RepFlagError | 5
	RepErrUnknown       = RepFlagError | 6
	RepErrShutdown      = RepFlagError | 7
	RepErrBlockSizeReqd = RepFlagError | 8
	RepErrTooBig        = RepFlagError | 9
)

// Info types of OPT_INFO and OPT_GO.
const (
	InfoExport      = 0
	InfoName        = 1
	InfoDescription = 2
	InfoBlockSize   = 3
)

// Transmission flags.
const (
	FlagHasFlags      = 1 << 0
	FlagReadOnly      = 1 << 1
	FlagSendFlush     = 1 << 2
	FlagSendFUA       = 1 << 3
	FlagRotational    = 1 << 4
	FlagSendTrim      = 1 << 5
	FlagSendWriteZero = 1 << 6
	FlagSendDF        = 1 << 7
	FlagCanMultiConn  = 1 << 8
	FlagSendResize    = 1 << 9
	FlagSendCache     = 1 << 10
	FlagSendFastZero  = 1 << 11
)

// Commands.
const (
	CmdRead        = 0
	CmdWrite       = 1
	CmdDisc        = 2
	CmdFlush       = 3
	CmdTrim        = 4
	CmdCache       = 5
	CmdWriteZeroes = 6
	CmdBlockStatus = 7
)

// Command flags.
const (
	CmdFlagFUA      = 1 << 0
	CmdFlagNoHole   = 1 << 1
	CmdFlagDF       = 1 << 2
	CmdFlagReqOne   = 1 << 3
	CmdFlagFastZero = 1 << 4
)

// Structured reply flags and chunk types.
const (
	ReplyFlagDone = 1 << 0

	ReplyTypeNone        = 0
	ReplyTypeOffsetData  = 1
	ReplyTypeOffsetHole  = 2
	ReplyTypeBlockStatus = 5
	ReplyTypeError       = 1<<15 | 1
	ReplyTypeErrorOffset = 1<<15 | 2
)

// Block status flags of base:allocation.
const (
	StateHole = 1 << 0
	StateZero = 1 << 1
)

// Meta context names.
const (
	ContextBaseAllocation = "base:allocation"
	ContextAllocDepth     = "qemu:allocation-depth"
)

// Sizes and bounds.
const (
	// MaxBuffer is the largest payload either side sends or accepts
	// (QEMU's NBD_MAX_BUFFER_SIZE).
	MaxBuffer = 32 << 20
	// MaxString bounds export names, descriptions and context names
	// (NBD_MAX_STRING_SIZE).
	MaxString = 4096
	// MaxOption bounds an option's or an option reply's payload.
	MaxOption = 64 << 10
	// DefaultPort is the IANA port of NBD.
	DefaultPort = 10809

	RequestSize      = 28
	SimpleReplySize  = 16
	StructReplySize  = 20
	OptHeaderSize    = 16
	OptReplyHdrSize  = 20
	ExportZeroesSize = 124
)

// Wire errors (NBD_E*).
const (
	EPERM     = 1
	EIO       = 5
	ENOMEM    = 12
	EINVAL    = 22
	ENOSPC    = 28
	EOVERFLOW = 75
	ENOTSUP   = 95
	ESHUTDOWN = 108
)

// ErrnoToWire maps a system errno to the protocol's, as QEMU's
// system_errno_to_nbd_errno does: anything unknown is EINVAL.
func ErrnoToWire(e unix.Errno) uint32 {
	switch e {
	case 0:
		return 0
	case unix.EPERM, unix.EROFS:
		return EPERM
	case unix.EIO:
		return EIO
	case unix.ENOMEM:
		return ENOMEM
	case unix.EDQUOT, unix.EFBIG, unix.ENOSPC:
		return ENOSPC
	case unix.EOVERFLOW:
		return EOVERFLOW
	case unix.ENOTSUP:
		return ENOTSUP
	case unix.ESHUTDOWN:
		return ESHUTDOWN
	}
	return EINVAL
}

// WireToErrno maps a protocol error to a system errno, as QEMU's
// nbd_errno_to_system_errno does: anything unknown is EINVAL.
func WireToErrno(w uint32) unix.Errno {
	switch w {
	case 0:
		return 0
	case EPERM:
		return unix.EPERM
	case EIO:
		return unix.EIO
	case ENOMEM:
		return unix.ENOMEM
	case ENOSPC:
		return unix.ENOSPC
	case EOVERFLOW:
		return unix.EOVERFLOW
	case ENOTSUP:
		return unix.ENOTSUP
	case ESHUTDOWN:
		return unix.ESHUTDOWN
	}
	return unix.EINVAL
}

// ErrProtocol marks a malformed message: the connection cannot go on.
var ErrProtocol = errors.New("NBD protocol error")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

var be = binary.BigEndian

// BE is the protocol's byte order.
var BE = binary.BigEndian

// Request is a transmission-phase request.
type Request struct {
	Flags  uint16
	Type   uint16
	Cookie uint64
	Offset uint64
	Length uint32
}

// Encode writes the request header into b (at least RequestSize bytes)
// and returns the header.
func (r *Request) Encode(b []byte) []byte {
	b = b[:RequestSize]
	be.PutUint32(b[0:], RequestMagic)
	be.PutUint16(b[4:], r.Flags)
	be.PutUint16(b[6:], r.Type)
	be.PutUint64(b[8:], r.Cookie)
	be.PutUint64(b[16:], r.Offset)
	be.PutUint32(b[24:], r.Length)
	return b
}

// DecodeRequest decodes a request header (RequestSize bytes).
func DecodeRequest(b []byte) (Request, error) {
	if len(b) < RequestSize {
		return Request{}, protoErr("short request")
	}
	if m := be.Uint32(b); m != RequestMagic {
		return Request{}, protoErr("invalid request magic 0x%x", m)
	}
	return Request{
		Flags:  be.Uint16(b[4:]),
		Type:   be.Uint16(b[6:]),
		Cookie: be.Uint64(b[8:]),
		Offset: be.Uint64(b[16:]),
		Length: be.Uint32(b[24:]),
	}, nil
}

// EncodeSimpleReply writes a simple reply header into b.
func EncodeSimpleReply(b []byte, errno uint32, cookie uint64) []byte {
	b = b[:SimpleReplySize]
	be.PutUint32(b[0:], SimpleReplyMagic)
	be.PutUint32(b[4:], errno)
	be.PutUint64(b[8:], cookie)
	return b
}

// ChunkHeader is a structured reply chunk's header.
type ChunkHeader struct {
	Flags  uint16
	Type   uint16
	Cookie uint64
	Length uint32
}

// Encode writes the chunk header into b.
func (h *ChunkHeader) Encode(b []byte) []byte {
	b = b[:StructReplySize]
	be.PutUint32(b[0:], StructuredReplyMagic)
	be.PutUint16(b[4:], h.Flags)
	be.PutUint16(b[6:], h.Type)
	be.PutUint64(b[8:], h.Cookie)
	be.PutUint32(b[16:], h.Length)
	return b
}

// Reply is a decoded reply header: either simple (Structured false, Error
// set) or a structured chunk.
type Reply struct {
	Structured bool
	Error      uint32 // simple replies
	Chunk      ChunkHeader
}

// Cookie returns the reply's cookie.
func (r *Reply) Cookie() uint64 { return r.Chunk.Cookie }

// ReadReply reads a reply header from r: 16 bytes for a simple reply, 20
// for a structured chunk. buf must hold StructReplySize bytes.
func ReadReply(r io.Reader, buf []byte) (Reply, error) {
	buf = buf[:StructReplySize]
	if _, err := io.ReadFull(r, buf[:4]); err != nil {
		return Reply{}, err
	}
	switch m := be.Uint32(buf); m {
	case SimpleReplyMagic:
		if _, err := io.ReadFull(r, buf[4:SimpleReplySize]); err != nil {
			return Reply{}, err
		}
		return Reply{Error: be.Uint32(buf[4:]), Chunk: ChunkHeader{Cookie: be.Uint64(buf[8:])}}, nil
	case StructuredReplyMagic:
		if _, err := io.ReadFull(r, buf[4:StructReplySize]); err != nil {
			return Reply{}, err
		}
		return Reply{Structured: true, Chunk: ChunkHeader{
			Flags:  be.Uint16(buf[4:]),
			Type:   be.Uint16(buf[6:]),
			Cookie: be.Uint64(buf[8:]),
			Length: be.Uint32(buf[16:]),
		}}, nil
	default:
		return Reply{}, protoErr("invalid reply magic 0x%x", m)
	}
}

// ErrorChunk is the payload of an error chunk.
type ErrorChunk struct {
	Error  uint32
	Msg    string
	Offset uint64 // ReplyTypeErrorOffset only
}

// DecodeErrorChunk decodes an error chunk's payload.
func DecodeErrorChunk(typ uint16, p []byte) (ErrorChunk, error) {
	if len(p) < 6 {
		return ErrorChunk{}, protoErr("error chunk too short")
	}
	e := ErrorChunk{Error: be.Uint32(p)}
	n := int(be.Uint16(p[4:]))
	if 6+n > len(p) {
		return ErrorChunk{}, protoErr("error message length exceeds chunk")
	}
	e.Msg = string(p[6 : 6+n])
	rest := p[6+n:]
	switch typ {
	case ReplyTypeError:
		if len(rest) != 0 {
			return ErrorChunk{}, protoErr("trailing bytes in error chunk")
		}
	case ReplyTypeErrorOffset:
		if len(rest) != 8 {
			return ErrorChunk{}, protoErr("bad error offset chunk")
		}
		e.Offset = be.Uint64(rest)
	}
	if e.Error == 0 {
		return ErrorChunk{}, protoErr("error chunk with error 0")
	}
	return e, nil
}

// AppendErrorChunk appends an error chunk's payload.
func AppendErrorChunk(b []byte, errno uint32, msg string) []byte {
	if len(msg) > MaxString {
		msg = msg[:MaxString]
	}
	b = be.AppendUint32(b, errno)
	b = be.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...)
}

// Extent is one block status descriptor.
type Extent struct {
	Length uint32
	Flags  uint32
}

// DecodeBlockStatus decodes a block status chunk: the context id and
// its extents (at most max; more is a protocol error).
func DecodeBlockStatus(p []byte, max int) (uint32, []Extent, error) {
	if len(p) < 12 || (len(p)-4)%8 != 0 {
		return 0, nil, protoErr("invalid block status chunk length %d", len(p))
	}
	id := be.Uint32(p)
	n := (len(p) - 4) / 8
	if n > max {
		return 0, nil, protoErr("too many extents")
	}
	ext := make([]Extent, n)
	for i := range ext {
		ext[i] = Extent{Length: be.Uint32(p[4+8*i:]), Flags: be.Uint32(p[8+8*i:])}
	}
	return id, ext, nil
}

// Option is a client's option request.
type Option struct {
	Option uint32
	Data   []byte
}

// WriteOption sends an option request.
func WriteOption(w io.Writer, opt uint32, data []byte) error {
	b := make([]byte, OptHeaderSize, OptHeaderSize+len(data))
	be.PutUint64(b, IHaveOpt)
	be.PutUint32(b[8:], opt)
	be.PutUint32(b[12:], uint32(len(data)))
	_, err := w.Write(append(b, data...))
	return err
}

// ReadOption reads an option request; payloads over max are refused
// without being read (the caller drops the connection).
func ReadOption(r io.Reader, max uint32) (Option, error) {
	var h [OptHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Option{}, err
	}
	if m := be.Uint64(h[:]); m != IHaveOpt {
		return Option{}, protoErr("invalid option magic 0x%x", m)
	}
	o := Option{Option: be.Uint32(h[8:])}
	n := be.Uint32(h[12:])
	if n > max {
		return o, protoErr("option length %d too large", n)
	}
	o.Data = make([]byte, n)
	if _, err := io.ReadFull(r, o.Data); err != nil {
		return Option{}, err
	}
	return o, nil
}

// OptReply is a server's reply to an option.
type OptReply struct {
	Option uint32
	Type   uint32
	Data   []byte
}

// AppendOptReply appends an option reply.
func AppendOptReply(b []byte, opt, typ uint32, data []byte) []byte {
	b = be.AppendUint64(b, OptReplyMagic)
	b = be.AppendUint32(b, opt)
	b = be.AppendUint32(b, typ)
	b = be.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// ReadOptReply reads an option reply; payloads over max are a protocol
// error.
func ReadOptReply(r io.Reader, max uint32) (OptReply, error) {
	var h [OptReplyHdrSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return OptReply{}, err
	}
	if m := be.Uint64(h[:]); m != OptReplyMagic {
		return OptReply{}, protoErr("unexpected option reply magic 0x%x", m)
	}
	o := OptReply{Option: be.Uint32(h[8:]), Type: be.Uint32(h[12:])}
	n := be.Uint32(h[16:])
	if n > max {
		return o, protoErr("option reply length %d too large", n)
	}
	o.Data = make([]byte, n)
	if _, err := io.ReadFull(r, o.Data); err != nil {
		return OptReply{}, err
	}
	return o, nil
}

// AppendString appends a 32-bit length and s.
func AppendString(b []byte, s string) []byte {
	b = be.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Cursor reads fields from a payload, remembering the first error.
type Cursor struct {
	B   []byte
	Err error
}

func (c *Cursor) take(n int) []byte {
	if c.Err != nil {
		return nil
	}
	if n < 0 || n > len(c.B) {
		c.Err = protoErr("payload too short")
		return nil
	}
	v := c.B[:n]
	c.B = c.B[n:]
	return v
}

// U16 reads a 16-bit field.
func (c *Cursor) U16() uint16 {
	if b := c.take(2); b != nil {
		return be.Uint16(b)
	}
	return 0
}

// U32 reads a 32-bit field.
func (c *Cursor) U32() uint32 {
	if b := c.take(4); b != nil {
		return be.Uint32(b)
	}
	return 0
}

// U64 reads a 64-bit field.
func (c *Cursor) U64() uint64 {
	if b := c.take(8); b != nil {
		return be.Uint64(b)
	}
	return 0
}

// String reads a 32-bit length and that many bytes, refusing more than
// MaxString.
func (c *Cursor) String() string {
	n := c.U32()
	if c.Err == nil && n > MaxString {
		c.Err = protoErr("string too long")
		return ""
	}
	return string(c.take(int(n)))
}

// Bytes reads n bytes.
func (c *Cursor) Bytes(n int) []byte { return c.take(n) }

// Done reports an error when bytes are left over.
func (c *Cursor) Done() error {
	if c.Err == nil && len(c.B) != 0 {
		c.Err = protoErr("trailing bytes in payload")
	}
	return c.Err
}

// InfoRequest is the payload of OPT_INFO and OPT_GO.
type InfoRequest struct {
	Name  string
	Infos []uint16
}

// Encode returns the payload.
func (q *InfoRequest) Encode() []byte {
	b := AppendString(nil, q.Name)
	b = be.AppendUint16(b, uint16(len(q.Infos)))
	for _, i := range q.Infos {
		b = be.AppendUint16(b, i)
	}
	return b
}

// DecodeInfoRequest decodes an OPT_INFO or OPT_GO payload.
func DecodeInfoRequest(p []byte) (InfoRequest, error) {
	c := Cursor{B: p}
	q := InfoRequest{Name: c.String()}
	n := int(c.U16())
	if c.Err == nil && n*2 != len(c.B) {
		return q, protoErr("bad info request count")
	}
	for i := 0; i < n && c.Err == nil; i++ {
		q.Infos = append(q.Infos, c.U16())
	}
	return q, c.Done()
}

// ExportInfo is what the handshake tells about an export.
type ExportInfo struct {
	Size  uint64
	Flags uint16
	// MinBlock, PrefBlock, MaxBlock are the block size constraints (0
	// when the server sent none).
	MinBlock, PrefBlock, MaxBlock uint32
	Name, Description             string
}

// AppendInfoExport appends an NBD_INFO_EXPORT payload.
func AppendInfoExport(b []byte, size uint64, flags uint16) []byte {
	b = be.AppendUint16(b, InfoExport)
	b = be.AppendUint64(b, size)
	return be.AppendUint16(b, flags)
}

// AppendInfoBlockSize appends an NBD_INFO_BLOCK_SIZE payload.
func AppendInfoBlockSize(b []byte, min, pref, max uint32) []byte {
	b = be.AppendUint16(b, InfoBlockSize)
	b = be.AppendUint32(b, min)
	b = be.AppendUint32(b, pref)
	return be.AppendUint32(b, max)
}

// ApplyInfo decodes one RepInfo payload into e. Unknown info types are
// ignored, as the specification asks.
func (e *ExportInfo) ApplyInfo(p []byte) error {
	c := Cursor{B: p}
	switch c.U16() {
	case InfoExport:
		e.Size = c.U64()
		e.Flags = c.U16()
	case InfoBlockSize:
		e.MinBlock, e.PrefBlock, e.MaxBlock = c.U32(), c.U32(), c.U32()
		if c.Err == nil && !validBlockSizes(e.MinBlock, e.PrefBlock, e.MaxBlock) {
			return protoErr("invalid block size constraints %d/%d/%d", e.MinBlock, e.PrefBlock, e.MaxBlock)
		}
	case InfoName:
		e.Name = string(c.Bytes(len(c.B)))
	case InfoDescription:
		e.Description = string(c.Bytes(len(c.B)))
	default:
		return c.Err
	}
	return c.Done()
}

// validBlockSizes checks the specification's rules, as QEMU's client
// does: min a power of two up to 64 KiB, preferred a power of two at
// least min, max a multiple of min at least min, or 0xffffffff.
func validBlockSizes(min, pref, max uint32) bool {
	pow2 := func(v uint32) bool { return v != 0 && v&(v-1) == 0 }
	return pow2(min) && min <= 1<<16 && pow2(pref) && pref >= min && max >= min && (max%min == 0 || max == 1<<32-1)
}
