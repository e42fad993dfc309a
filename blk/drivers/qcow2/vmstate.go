package qcow2

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// The VM state area is the guest range that starts at the first L1 entry
// past the disk (l1VMStateIndex): savevm keeps a VM's RAM and device
// state there, and qemu-io's read -b and write -b reach it. It is mapped
// like guest data, through the same L1/L2 tables, so a write far beyond
// the disk grows the L1 table.

var _ blk.VMStater = (*state)(nil)

// LoadVMState is qcow2_load_vmstate.
func (s *state) LoadVMState(co *blk.Co, buf []byte, pos int64) error {
	s.file.Event(co, blk.EvVMStateLoad)
	off, err := s.vmStateAt(pos, len(buf))
	if err != nil {
		return err
	}
	return s.PRead(co, off, buf, 0)
}

// SaveVMState is qcow2_save_vmstate.
func (s *state) SaveVMState(co *blk.Co, buf []byte, pos int64) error {
	s.file.Event(co, blk.EvVMStateSave)
	off, err := s.vmStateAt(pos, len(buf))
	if err != nil {
		return err
	}
	return s.PWrite(co, off, buf, 0)
}

// vmStateAt is the guest offset of pos in the VM state area. A range that
// would overflow the guest offsets is refused (QEMU would overflow).
func (s *state) vmStateAt(pos int64, n int) (int64, error) {
	base := s.vmStateOffset()
	if pos > 1<<62-base-int64(n) {
		return 0, unix.EFBIG
	}
	return base + pos, nil
}
