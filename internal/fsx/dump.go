package fsx

import (
	"bytes"
	"encoding/binary"
	"io"
)

// Dump records: fsx (and explore, which runs through fsx) has the
// session hand it the data of "read -v" as a record in the output
// stream instead of a hex dump, so that the data is neither formatted
// nor parsed back (that round trip was a quarter of explore's time). A
// record stands where the dump would have been, so the order of lines
// and dumps is kept:
//
//	NUL, offset (8 bytes), length (4 bytes, both big-endian), data, '\n'
//
// With records on, an output line that starts with NUL is read as a
// record; the shell prints none (its text comes from commands and
// their numbers, and fsx's scripts have no echo of a NUL).

// dumpHeader is the record's length before its data.
const dumpHeader = 1 + 8 + 4

// Dumper is a session that can hand "read -v"'s data to fsx as records
// (commands.Session.SetDump). fsx turns records on for the sessions it
// runs that implement it; the others print hex dumps, which fsx parses
// as before.
type Dumper interface {
	SetDump(f func(w io.Writer, off int64, data []byte))
}

// UseRecords turns dump records on for s, if it can.
func UseRecords(s Session) {
	if d, ok := s.(Dumper); ok {
		d.SetDump(WriteDump)
	}
}

// WriteDump writes data, read at off, as a dump record on w; none for
// no data, as a hex dump has no line for it.
func WriteDump(w io.Writer, off int64, data []byte) {
	if len(data) == 0 {
		return
	}
	var h [dumpHeader]byte
	binary.BigEndian.PutUint64(h[1:], uint64(off))
	binary.BigEndian.PutUint32(h[9:], uint32(len(data)))
	w.Write(h[:])
	w.Write(data)
	w.Write(newline)
}

var newline = []byte{'\n'}

// SplitOutput calls line for every whole line of out (without its
// newline) and dump for every whole record, in order, and returns what
// is left: an unfinished line or record, for the next call to carry on
// from. line and dump must not keep their slices (they are out's).
func SplitOutput(out []byte, line func([]byte), dump func(off int64, data []byte)) []byte {
	for len(out) > 0 {
		if out[0] == 0 {
			if len(out) < dumpHeader {
				return out
			}
			var off uint64
			for i := 1; i < 9; i++ {
				off = off<<8 | uint64(out[i])
			}
			var n uint64
			for i := 9; i < dumpHeader; i++ {
				n = n<<8 | uint64(out[i])
			}
			end := dumpHeader + int(n)
			if len(out) <= end {
				return out
			}
			dump(int64(off), out[dumpHeader:end])
			out = out[end+1:] // the record's newline
			continue
		}
		i := bytes.IndexByte(out, '\n')
		if i < 0 {
			return out
		}
		line(out[:i])
		out = out[i+1:]
	}
	return out
}
