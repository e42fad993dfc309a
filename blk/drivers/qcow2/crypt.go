package qcow2

import (
	"encoding/binary"
	"errors"

	"gio/blk"
	"gio/blk/qcrypto"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// This file holds qcow2 encryption (QEMU's crypto parts of block/qcow2.c):
// the legacy AES-CBC method, keyed by the password and numbering sectors
// by guest offset, and LUKS, whose header lives in clusters named by the
// crypto header extension and which numbers sectors by host offset. The
// rest of the driver calls in at a few points: options, the header's
// crypt method and extension, the data path (decrypt after reading a
// cluster, encrypt before writing data and COW regions), limits, info,
// header rewrites and create.

// Crypt methods of the header.
const (
	cryptNone = 0
	cryptAES  = 1
	cryptLUKS = 2
)

// maxCryptClusters bounds one encrypted request step (QCOW_MAX_CRYPT_CLUSTERS).
const maxCryptClusters = 32

// cryptState is the encryption of an open image.
type cryptState struct {
	method uint32
	// unexpected is the first encrypt.* option no method takes.
	unexpected string
	// Open options: encrypt.format and encrypt.key-secret.
	format, keySecret       string
	hasFormat, hasKeySecret bool
	// hdrOffset, hdrLength locate the LUKS header (the extension).
	hdrOffset, hdrLength int64
	luks                 *qcrypto.Header
	cipher               *qcrypto.Cipher
	password             func(id string) ([]byte, error)
}

// takeCryptOptions takes the encrypt.* runtime options (checked against
// the header later, in checkCrypt).
func (s *state) takeCryptOptions(a *blk.OpenArgs) error {
	o := a.Opts
	c := &cryptState{password: a.Password}
	c.format, c.hasFormat = o.TakeString("encrypt.format")
	c.keySecret, c.hasKeySecret = o.TakeString("encrypt.key-secret")
	s.crypt = c
	if rest := o.ExtractPrefix("encrypt"); rest.Len() > 0 {
		c.unexpected = rest.Keys()[0]
	}
	return nil
}

// checkCrypt is the crypt method part of qcow2_do_open and
// qcow2_update_options_prepare: the options must match the header.
func (s *state) checkCrypt(method uint32) error {
	c := s.crypt
	if c == nil {
		c = &cryptState{}
		s.crypt = c
	}
	c.method = method
	switch method {
	case cryptNone:
		if c.hasFormat {
			return blk.Msgf(unix.EINVAL, "No encryption in image header, but options specified format '%s'", c.format)
		}
		s.crypt = nil
	case cryptAES:
		if c.hasFormat && c.format != "aes" {
			return blk.Msgf(unix.EINVAL, "Header reported 'aes' encryption format but options specify '%s'", c.format)
		}
	case cryptLUKS:
		if c.hasFormat && c.format != "luks" {
			return blk.Msgf(unix.EINVAL, "Header reported 'luks' encryption format but options specify '%s'", c.format)
		}
	default:
		return blk.Msgf(unix.EINVAL, "Unsupported encryption method %d", method)
	}
	if method != cryptNone && c.unexpected != "" {
		return blk.Msgf(unix.EINVAL, "Parameter '%s' is unexpected", c.unexpected)
	}
	return nil
}

// cryptPassword is qcrypto_secret_lookup_as_utf8 for encrypt.key-secret.
func (c *cryptState) cryptPassword() ([]byte, error) {
	if !c.hasKeySecret {
		return nil, blk.Msgf(unix.EINVAL, "Parameter 'encrypt.key-secret' is required for cipher")
	}
	if c.password == nil {
		return nil, blk.Msgf(unix.EINVAL, "No secret with id '%s'", c.keySecret)
	}
	p, err := c.password(c.keySecret)
	if err != nil {
		return nil, blk.Msgf(unix.EINVAL, "%v", err)
	}
	return p, nil
}

// cryptoHeaderExt opens the LUKS header the crypto header extension
// points to (the QCOW2_EXT_MAGIC_CRYPTO_HEADER case of
// qcow2_read_extensions).
func (s *state) cryptoHeaderExt(co *blk.Co, data []byte) error {
	c := s.crypt
	if c == nil || c.method != cryptLUKS {
		return blk.Msgf(unix.EINVAL, "CRYPTO header extension only expected with LUKS encryption method")
	}
	if len(data) != 16 {
		return blk.Msgf(unix.EINVAL, "CRYPTO header extension size %d, but expected size 16", len(data))
	}
	off, length := binary.BigEndian.Uint64(data), binary.BigEndian.Uint64(data[8:])
	if off%uint64(s.clusterSize) != 0 {
		return blk.Msgf(unix.EINVAL, "Encryption header offset '%d' is not a multiple of cluster size '%d'", off, s.clusterSize)
	}
	c.hdrOffset, c.hdrLength = int64(off), int64(length)
	if off > 1<<62 || length > 1<<62 {
		c.hdrOffset, c.hdrLength = 0, 0
	}
	password, err := c.cryptPassword()
	if err != nil {
		return err
	}
	read := func(o int64, buf []byte) error {
		if o+int64(len(buf)) > c.hdrLength {
			return blk.Msgf(unix.EINVAL, "Request for data outside of extension header")
		}
		if err := s.file.Node.PRead(co, c.hdrOffset+o, buf, 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not read encryption header")
		}
		return nil
	}
	buf := make([]byte, qcrypto.HeaderSize)
	if err := read(0, buf); err != nil {
		return err
	}
	if c.luks, err = qcrypto.DecodeHeader(buf); err != nil {
		return blk.Msgf(unix.EINVAL, "%v", err)
	}
	if c.cipher, err = c.luks.Unlock(password, read); err != nil {
		var be *blk.Error
		if errors.As(err, &be) {
			return err
		}
		return blk.Msgf(unix.EINVAL, "%v", err)
	}
	return nil
}

// finishCryptOpen sets up AES, which has no header, and refuses LUKS
// without one (the end of qcow2_do_open's crypto part).
func (s *state) finishCryptOpen() error {
	c := s.crypt
	if c == nil || c.cipher != nil {
		return nil
	}
	if c.method == cryptAES {
		p, err := c.cryptPassword()
		if err != nil {
			return err
		}
		c.cipher = qcrypto.NewQcowAES(p)
		return nil
	}
	return blk.Msgf(unix.EINVAL, "Missing CRYPTO header for crypt method %d", c.method)
}

// encrypted reports whether data clusters are encrypted.
func (s *state) encrypted() bool { return s.crypt != nil }

// cryptOffset is the offset that numbers the sectors: the host offset
// for LUKS, the guest offset for AES (crypt_physical_offset).
func (s *state) cryptOffset(host, guest int64) int64 {
	if s.crypt.method == cryptAES {
		return guest
	}
	return host
}

// decrypt decrypts data read from host offset host for guest offset guest.
func (s *state) decrypt(host, guest int64, buf []byte) {
	s.crypt.cipher.Decrypt(s.cryptOffset(host, guest), buf)
}

// encrypt encrypts buf in place for host offset host, guest offset guest.
func (s *state) encrypt(host, guest int64, buf []byte) {
	s.crypt.cipher.Encrypt(s.cryptOffset(host, guest), buf)
}

// encryptedCopy returns the encrypted copy of guest data: the caller's
// buffer is never changed (qcow2_co_pwritev_task's crypt_buf).
func (s *state) encryptedCopy(host, guest int64, data []byte) []byte {
	if !s.encrypted() {
		return data
	}
	out := make([]byte, len(data))
	copy(out, data)
	s.encrypt(host, guest, out)
	return out
}

// cryptStep limits one request step of an encrypted image to 32 clusters
// (from the start of the cluster for writes).
func (s *state) cryptStep(off, n int64, write bool) int64 {
	if !s.encrypted() {
		return n
	}
	limit := maxCryptClusters * s.clusterSize
	if write {
		limit -= s.offsetIntoCluster(off)
	}
	return min(n, limit)
}

// cryptHeaderExt is the crypto header extension to write, or nil.
func (s *state) cryptHeaderExt() []byte {
	if s.crypt == nil || s.crypt.hdrOffset == 0 {
		return nil
	}
	b := binary.BigEndian.AppendUint64(nil, uint64(s.crypt.hdrOffset))
	return binary.BigEndian.AppendUint64(b, uint64(s.crypt.hdrLength))
}

func (s *state) cryptMethod() uint32 {
	if s.crypt == nil {
		return cryptNone
	}
	return s.crypt.method
}

// cryptInfo inserts the "encrypt:" section into the format specific
// lines, where QEMU's QDict order puts it: after "refcount bits".
func (s *state) cryptInfo(lines []string) []string {
	if s.crypt == nil {
		return lines
	}
	sec := []string{"encrypt:"}
	if s.crypt.method == cryptAES {
		sec = append(sec, "    format: aes")
	} else if s.crypt.luks != nil {
		sec = append(sec, s.crypt.luks.Info(4, true)...)
	}
	for i, l := range lines {
		if len(l) > 13 && l[:13] == "refcount bits" {
			out := append(append(append([]string{}, lines[:i+1]...), sec...), lines[i+1:]...)
			return out
		}
	}
	return append(lines, sec...)
}

// createCryptOptions takes qcow2's encryption creation options
// (qcow2_co_create_opts): encrypt=on|off (legacy AES), encrypt.format
// aes|luks, and the LUKS options with their "encrypt." prefix. It
// returns the method and the LUKS options and key secret id.
func createCryptOptions(o *qdict.Dict) (uint32, qcrypto.CreateOptions, string, error) {
	var lo qcrypto.CreateOptions
	format, hasFormat := o.TakeString("encrypt.format")
	if v, ok := o.TakeString("encrypt"); ok {
		switch v {
		case "on":
			if !hasFormat {
				format, hasFormat = "aes", true
			}
		case "off":
		default:
			return 0, lo, "", blk.Msgf(unix.EINVAL, "Parameter 'encrypt' expects 'on' or 'off'")
		}
	}
	if !hasFormat {
		if o.HasPrefix("encrypt") {
			return 0, lo, "", blk.Msgf(unix.EINVAL, "Parameter 'encrypt.format' is missing")
		}
		return cryptNone, lo, "", nil
	}
	switch format {
	case "aes", "qcow":
		id, ok := o.TakeString("encrypt.key-secret")
		if !ok {
			return 0, lo, "", blk.Msgf(unix.EINVAL, "Parameter 'encrypt.key-secret' is required for cipher")
		}
		if rest := o.ExtractPrefix("encrypt"); rest.Len() > 0 {
			return 0, lo, "", blk.Msgf(unix.EINVAL, "Parameter 'encrypt.%s' is unexpected", rest.Keys()[0])
		}
		return cryptAES, lo, id, nil
	case "luks":
		lo, id, err := qcrypto.TakeCreateOptions(o, "encrypt.")
		if err != nil {
			return 0, lo, "", blk.Msgf(unix.EINVAL, "%v", err)
		}
		if rest := o.ExtractPrefix("encrypt"); rest.Len() > 0 {
			return 0, lo, "", blk.Msgf(unix.EINVAL, "Parameter 'encrypt.%s' is unexpected", rest.Keys()[0])
		}
		return cryptLUKS, lo, id, nil
	}
	return 0, lo, "", blk.Msgf(unix.EINVAL, "Parameter 'encrypt.format' does not accept value '%s'", format)
}

// setUpEncryption is qcow2_set_up_encryption on a freshly created image:
// for LUKS, the header in newly allocated, zeroed clusters and slot 0
// written; then the header rewritten with the crypt method.
func (s *state) setUpEncryption(co *blk.Co, method uint32, lo qcrypto.CreateOptions, password []byte) error {
	s.crypt = &cryptState{method: method}
	if method == cryptLUKS {
		hdr, material, _, err := qcrypto.Create(lo, password)
		if err != nil {
			return blk.Msgf(unix.EINVAL, "%v", err)
		}
		n := hdr.PayloadOffset()
		off, err := s.allocClusters(co, n)
		if err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Cannot allocate cluster for LUKS header size %d", n)
		}
		s.crypt.hdrOffset, s.crypt.hdrLength = off, n
		if err := s.file.Node.PWriteZeroes(co, off, s.sizeToClusters(n)*s.clusterSize, 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not zero fill encryption header")
		}
		if err := s.file.Node.PWrite(co, off+hdr.KeyMaterialOffset(), material, 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not read encryption header")
		}
		if err := s.file.Node.PWrite(co, off, hdr.Encode(), 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not read encryption header")
		}
	}
	if err := s.updateHeader(co); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not write encryption header")
	}
	return nil
}
