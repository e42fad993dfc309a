package commands

import (
	"fmt"
	"strings"

	"gio/blk"
)

// mapEntry is one extent of byte-based block status, merged the way
// qemu-img map merges them.
type mapEntry struct {
	start, length, offset int64
	depth                 int
	present, zero, data   bool
	hasOffset             bool
	filename              string
}

func (e mapEntry) mergeable(n mapEntry) bool {
	if e.zero != n.zero || e.data != n.data || e.depth != n.depth || e.present != n.present ||
		e.hasOffset != n.hasOffset || e.filename != n.filename {
		return false
	}
	return !e.hasOffset || e.offset+e.length == n.offset
}

// mapStatusCmd is gio's "map -s" (human) and "map --output=json": the
// byte-based block status qemu-io cannot show, printed exactly as
// "qemu-img map" prints it for the same image.
func mapStatusCmd(s *Session, json bool) error {
	var entries []mapEntry
	var lerr error
	return s.runSync("map -s", func(co *blk.Co) error {
		length, err := s.Img.Length(co)
		if err != nil {
			lerr = err
			return nil
		}
		for off := int64(0); off < length; {
			if co.Loop().Interrupted() {
				return blk.ErrInterrupted
			}
			st, err := s.Img.BlockStatus(co, off, min(1<<30, length-off))
			if err != nil {
				return err
			}
			if st.Pnum <= 0 {
				return errUnexpectedEnd
			}
			e := mapEntry{start: off, length: st.Pnum, depth: st.Depth,
				present: st.Flags&blk.StatusAllocated != 0, zero: st.Flags&blk.StatusZero != 0,
				data: st.Flags&blk.StatusData != 0, hasOffset: st.Flags&blk.StatusOffsetValid != 0, offset: st.Map}
			if st.File != nil && e.hasOffset {
				e.filename = st.File.Filename()
			}
			if n := len(entries); n > 0 && entries[n-1].mergeable(e) {
				entries[n-1].length += e.length
			} else {
				entries = append(entries, e)
			}
			off += st.Pnum
		}
		return nil
	}, func(err error) error { return s.printMapStatus(json, entries, lerr, err) })
}

// printMapStatus prints what mapStatusCmd found.
func (s *Session) printMapStatus(json bool, entries []mapEntry, lerr, err error) error {
	if lerr != nil {
		s.errorReport("Failed to query image length: %s", errText(lerr))
		return errFailed
	}
	if err != nil {
		s.errorReport("Failed to get allocation status: %s", errText(err))
		return errFailed
	}
	if len(entries) == 0 {
		// qemu-img map dumps its initial, empty entry for an empty image.
		entries = []mapEntry{{}}
	}
	var b strings.Builder
	if json {
		b.WriteString("[")
		for i, e := range entries {
			fmt.Fprintf(&b, "{ \"start\": %d, \"length\": %d, \"depth\": %d, \"present\": %t, \"zero\": %t, \"data\": %t",
				e.start, e.length, e.depth, e.present, e.zero, e.data)
			if e.hasOffset {
				fmt.Fprintf(&b, ", \"offset\": %d", e.offset)
			}
			b.WriteString("}")
			if i < len(entries)-1 {
				b.WriteString(",\n")
			}
		}
		b.WriteString("]\n")
	} else {
		fmt.Fprintf(&b, "%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File")
		for _, e := range entries {
			if e.data && !e.zero {
				if !e.hasOffset {
					// qemu-img map stops here too (compressed clusters).
					fmt.Fprint(s.Out, b.String())
					s.errorReport("File contains external, encrypted or compressed clusters.")
					return errFailed
				}
				fmt.Fprintf(&b, "%-16s%-16s%-16s%s\n", cHex(e.start), cHex(e.length), cHex(e.offset), e.filename)
			}
		}
	}
	fmt.Fprint(s.Out, b.String())
	return nil
}

// cHex formats like C's "%#x": no 0x prefix for zero.
func cHex(v int64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%#x", v)
}
