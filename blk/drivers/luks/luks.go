// Package luks is the luks format driver (QEMU's block/crypto.c): a LUKS1
// volume over any child node. The header and key slots sit at the start
// of the child, the encrypted payload follows at the header's payload
// offset; every guest sector is encrypted with the master key that the
// password of --object secret unlocks from one of the eight key slots.
// The cryptography itself lives in blk/qcrypto, shared with qcow2.
package luks

import (
	"errors"

	"gio/blk"
	"gio/blk/qcrypto"

	"golang.org/x/sys/unix"
)

// Driver is the luks format driver.
var Driver = &blk.Driver{
	Name:   "luks",
	Format: true,
	Probe: func(head []byte) int {
		if qcrypto.Probe(head) {
			return 100
		}
		return 0
	},
	Open:   open,
	Create: create,
}

// maxIO bounds the bounce buffer of one request (BLOCK_CRYPTO_MAX_IO_SIZE).
const maxIO = 1 << 20

type node struct {
	file    *blk.Child
	hdr     *qcrypto.Header
	cipher  *qcrypto.Cipher
	payload int64
}

var (
	_ blk.BlockStatuser   = (*node)(nil)
	_ blk.Truncater       = (*node)(nil)
	_ blk.LimitsRefresher = (*node)(nil)
	_ blk.Infoer          = (*node)(nil)
)

// open is block_crypto_open_luks.
func open(a *blk.OpenArgs) (blk.Impl, error) {
	n := &node{}
	var err error
	if n.file, err = a.OpenChild("file", true, true); err != nil {
		return nil, err
	}
	id, ok := a.Opts.TakeString("key-secret")
	if !ok {
		return nil, blk.Msgf(unix.EINVAL, "Parameter 'key-secret' is required for cipher")
	}
	password, err := a.Password(id)
	if err != nil {
		return nil, blk.Msgf(unix.EINVAL, "%v", err)
	}
	err = runSync(a.Loop, func(co *blk.Co) error {
		size, err := n.file.Node.Length(co)
		if err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not read encryption header")
		}
		// Past the end of the file the header and key material read as
		// zeroes, as in QEMU (a short read of a file is padded), without
		// asking the child for bytes it does not have: a header whose
		// key slots point past the end is refused like a wrong password.
		read := func(off int64, buf []byte) error {
			in := buf[:max(0, min(int64(len(buf)), size-off))]
			clear(buf[len(in):])
			if len(in) == 0 {
				return nil
			}
			if err := n.file.Node.PRead(co, off, in, 0); err != nil {
				return blk.Errorf(blk.ErrnoOf(err), "Could not read encryption header")
			}
			return nil
		}
		buf := make([]byte, qcrypto.HeaderSize)
		if err := read(0, buf); err != nil {
			return err
		}
		if n.hdr, err = qcrypto.DecodeHeader(buf); err != nil {
			return blk.Msgf(unix.EINVAL, "%v", err)
		}
		if n.cipher, err = n.hdr.Unlock(password, read); err != nil {
			var be *blk.Error
			if errors.As(err, &be) {
				return err
			}
			return blk.Msgf(unix.EACCES, "%v", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	n.payload = n.hdr.PayloadOffset()
	return n, nil
}

// runSync runs fn as a request on loop (opening and creating happen
// outside any other request).
func runSync(loop *blk.Loop, fn func(co *blk.Co) error) error {
	if loop == nil {
		loop = blk.NewLoop(blk.NewVirtualClock())
	}
	var err error
	co := loop.Spawn("luks", func(co *blk.Co) { err = fn(co) })
	if e := loop.RunUntil(co.Name(), co.Done); e != nil {
		return e
	}
	return err
}

// PRead reads and decrypts through a bounce buffer of at most 1 MiB
// (block_crypto_co_preadv).
func (n *node) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	for len(buf) > 0 {
		cur := buf[:min(len(buf), maxIO)]
		n.file.Event(co, blk.EvReadAIO)
		if err := n.file.Node.PRead(co, n.payload+off, cur, 0); err != nil {
			return err
		}
		n.cipher.Decrypt(off, cur)
		buf = buf[len(cur):]
		off += int64(len(cur))
	}
	return nil
}

// PWrite encrypts into a bounce buffer and writes (block_crypto_co_pwritev).
func (n *node) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	bounce := make([]byte, min(len(buf), maxIO))
	for len(buf) > 0 {
		cur := bounce[:min(len(buf), maxIO)]
		copy(cur, buf)
		n.cipher.Encrypt(off, cur)
		n.file.Event(co, blk.EvWriteAIO)
		if err := n.file.Node.PWrite(co, n.payload+off, cur, flags); err != nil {
			return err
		}
		buf = buf[len(cur):]
		off += int64(len(cur))
	}
	return nil
}

// Length is the child's length minus the header (block_crypto_getlength).
func (n *node) Length(co *blk.Co) (int64, error) {
	l, err := n.file.Node.Length(co)
	if err != nil {
		return 0, err
	}
	if n.payload > l {
		return 0, unix.EIO
	}
	return l - n.payload, nil
}

// BlockStatus: luks has no block status of its own, so QEMU reports all
// data (bdrv_co_block_status without a driver callback).
func (n *node) BlockStatus(co *blk.Co, wantZero bool, off, bytes int64) (blk.Status, error) {
	return blk.Status{Flags: blk.StatusData | blk.StatusAllocated, Pnum: bytes}, nil
}

// Truncate resizes the payload (block_crypto_co_truncate).
func (n *node) Truncate(co *blk.Co, size int64, exact bool, prealloc blk.Prealloc) error {
	if n.payload > 1<<63-1-size {
		return blk.Msgf(unix.EINVAL, "The requested file size is too large")
	}
	return n.file.Node.Truncate(co, size+n.payload, exact, prealloc)
}

// RefreshLimits: no sub-sector I/O (block_crypto_refresh_limits); FUA
// passes through when the child takes it.
func (n *node) RefreshLimits(l *blk.Limits) {
	l.RequestAlignment = max(l.RequestAlignment, qcrypto.SectorSize)
	l.SupportedWriteFlags = n.file.Node.Limits().SupportedWriteFlags & blk.FUA
	l.SupportedZeroFlags = 0
	l.PwriteZeroesAlignment, l.MaxPwriteZeroes = 0, 0
	l.PdiscardAlignment, l.MaxPdiscard = 0, 0
}

// Info is block_crypto_get_specific_info_luks: the LUKS header. The
// cluster size is the child's, which for a protocol node is 0
// (block_crypto_get_info_luks).
func (n *node) Info() (blk.Info, error) {
	return blk.Info{Specific: n.hdr.Info(0, false)}, nil
}

func (n *node) Close() error { return nil }

// create is block_crypto_co_create_opts_luks: the header and slot 0 at
// the start of the file, which is sized to header plus payload.
func create(co *blk.Co, a *blk.CreateArgs) error {
	o, id, err := qcrypto.TakeCreateOptions(a.Opts, "")
	if err != nil {
		return blk.Msgf(unix.EINVAL, "%v", err)
	}
	if pa, ok := a.Opts.TakeString("preallocation"); ok && pa != "off" && pa != "metadata" {
		if _, ok := blk.ParsePrealloc(pa); !ok {
			return blk.Msgf(unix.EINVAL, "Parameter 'preallocation' does not accept value '%s'", pa)
		}
		return blk.Msgf(unix.ENOTSUP, "luks: preallocation=%s is not supported by gio", pa)
	}
	password, err := a.Password(id)
	if err != nil {
		return blk.Msgf(unix.EINVAL, "%v", err)
	}
	hdr, material, _, err := qcrypto.Create(o, password)
	if err != nil {
		return blk.Msgf(unix.EINVAL, "%v", err)
	}
	if hdr.PayloadOffset() > 1<<63-1-a.Size {
		return blk.Msgf(unix.EFBIG, "The requested file size is too large")
	}
	if err := a.File.Truncate(co, hdr.PayloadOffset()+a.Size, false, blk.PreallocOff); err != nil {
		return err
	}
	if err := a.File.PWrite(co, hdr.KeyMaterialOffset(), material, 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not write encryption header")
	}
	if err := a.File.PWrite(co, 0, hdr.Encode(), 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not write encryption header")
	}
	return nil
}
