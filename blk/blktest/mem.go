package blktest

import "gio/blk"

// In-memory protocol drivers for the tests of blk, blkdebug and the
// format drivers.
//
// MemDriver ("mem") is a byte slice of the size option (default 1 MiB)
// that grows on writes past its end, with efficient zero writes,
// discards and truncation. Its requests complete without yielding unless
// yield=on, when each one gives up the token once as the file driver's
// do, so that concurrent requests interleave. flags=on claims native FUA
// and every zero-write flag.
//
// CrashDriver ("crashmem") is the same disk made crashable (the idea of
// pebble's memfs_crashable): Data is what reads see (the OS page cache),
// Durable what a power cut leaves; Crash forgets everything since the
// last flush to disk. Its requests always yield; its size defaults to
// 64 KiB; it claims MayUnmap for zero writes, and with fua=on native FUA
// (a FUA write then reaches Durable at once). A FUA request reaching it
// without fua=on is a bug of blk, which must emulate FUA with a flush:
// it panics.
var (
	MemDriver   = &blk.Driver{Name: "mem", Open: memOpener(false)}
	CrashDriver = &blk.Driver{Name: "crashmem", Open: memOpener(true)}
)

// Mem is a node of MemDriver or CrashDriver. Tests read and poke its
// fields directly (under the token, or with no request running).
type Mem struct {
	// Data is what reads see.
	Data []byte
	// Durable is what survives Crash (crashmem only).
	Durable []byte
	// DiskFlushes counts flushes to disk.
	DiskFlushes int

	crashable, yield, flags, fua bool
}

func memOpener(crashable bool) func(a *blk.OpenArgs) (blk.Impl, error) {
	return func(a *blk.OpenArgs) (blk.Impl, error) {
		def := uint64(1 << 20)
		if crashable {
			def = 64 << 10
		}
		size, _, err := a.Opts.TakeSize("size", def)
		if err != nil {
			return nil, err
		}
		m := &Mem{Data: make([]byte, size), crashable: crashable}
		if m.yield, err = a.Opts.TakeBool("yield", crashable); err != nil {
			return nil, err
		}
		if m.flags, err = a.Opts.TakeBool("flags", false); err != nil {
			return nil, err
		}
		if m.fua, err = a.Opts.TakeBool("fua", false); err != nil {
			return nil, err
		}
		if crashable {
			m.Durable = make([]byte, size)
		}
		return m, nil
	}
}

// Find returns the first Mem node on the file/image chain below b's root.
func Find(b *blk.Backend) *Mem {
	for n := b.Root; n != nil; {
		if m, ok := n.Impl().(*Mem); ok {
			return m
		}
		if n.File() == nil {
			break
		}
		n = n.File().Node
	}
	return nil
}

// Crash is the power cut: what was not flushed to disk is lost.
func (m *Mem) Crash() { copy(m.Data, m.Durable) }

func (m *Mem) RefreshLimits(l *blk.Limits) {
	if m.crashable {
		l.SupportedZeroFlags = blk.MayUnmap
	}
	if m.fua {
		l.SupportedWriteFlags = blk.FUA
		l.SupportedZeroFlags |= blk.FUA
	}
	if m.flags {
		l.SupportedWriteFlags = blk.FUA
		l.SupportedZeroFlags = blk.FUA | blk.MayUnmap | blk.NoFallback
	}
}

func (m *Mem) io(co *blk.Co) {
	if m.yield {
		co.YieldIO()
	}
}

func (m *Mem) grow(end int64) {
	if end > int64(len(m.Data)) {
		m.Data = append(m.Data, make([]byte, end-int64(len(m.Data)))...)
	}
	if m.crashable && end > int64(len(m.Durable)) {
		m.Durable = append(m.Durable, make([]byte, end-int64(len(m.Durable)))...)
	}
}

// durable says whether a write with flags f goes to Durable at once.
func (m *Mem) durable(f blk.ReqFlags) bool {
	if !m.crashable || f&blk.FUA == 0 {
		return false
	}
	if !m.fua && !m.flags {
		panic("crashmem: FUA passed down to a disk that does not claim it")
	}
	return true
}

func (m *Mem) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	clear(buf)
	if off < int64(len(m.Data)) {
		copy(buf, m.Data[off:])
	}
	m.io(co)
	return nil
}

func (m *Mem) PWrite(co *blk.Co, off int64, buf []byte, f blk.ReqFlags) error {
	m.grow(off + int64(len(buf)))
	copy(m.Data[off:], buf)
	if m.durable(f) {
		copy(m.Durable[off:], buf)
	}
	m.io(co)
	return nil
}

func (m *Mem) PWriteZeroes(co *blk.Co, off, n int64, f blk.ReqFlags) error {
	m.grow(off + n)
	clear(m.Data[off : off+n])
	if m.durable(f) {
		clear(m.Durable[off : off+n])
	}
	m.io(co)
	return nil
}

func (m *Mem) PDiscard(co *blk.Co, off, n int64) error {
	if end := min(off+n, int64(len(m.Data))); off < end {
		clear(m.Data[off:end])
	}
	m.io(co)
	return nil
}

func (m *Mem) FlushToDisk(co *blk.Co) error {
	m.DiskFlushes++
	if m.crashable {
		copy(m.Durable, m.Data)
		m.io(co)
	}
	return nil
}

func (m *Mem) Truncate(co *blk.Co, size int64, exact bool, p blk.Prealloc) error {
	if size < int64(len(m.Data)) {
		m.Data = m.Data[:size]
	} else {
		m.grow(size)
	}
	return nil
}

func (m *Mem) Length(*blk.Co) (int64, error) { return int64(len(m.Data)), nil }
func (m *Mem) Close() error                  { return nil }
