package commands

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gio/blk"
	"gio/internal/getopt"
)

func ioCommands() []*Command {
	return []*Command{
		{Name: "read", Alias: "r", Args: "[-abCqv] [-P pattern [-s off] [-l len]] off len",
			Oneline: "reads a number of bytes at a specified offset", Help: readHelp,
			Flags: []Flag{{Letter: 'b'}, {Letter: 'C'}, {Letter: 'l', Arg: "len"}, {Letter: 'p'}, {Letter: 'P', Arg: "pattern"}, {Letter: 'q'}, {Letter: 's', Arg: "off"}, {Letter: 'v'}}, MinArgs: 2, MaxArgs: -1, NeedsFile: true, Family: "I/O", Run: readCmd, CheckOpts: checkValues("ls")},
		{Name: "readv", Args: "[-Cqv] [-P pattern] off len [len..]",
			Oneline: "reads a number of bytes at a specified offset", Help: readvHelp,
			Flags: []Flag{{Letter: 'C'}, {Letter: 'P', Arg: "pattern"}, {Letter: 'q'}, {Letter: 'v'}}, MinArgs: 2, MaxArgs: -1, NeedsFile: true, Family: "I/O", Run: readvCmd, CheckOpts: checkValues("")},
		{Name: "write", Alias: "w", Args: "[-bcCfnquz] [-P pattern | -s source_file] off len",
			Oneline: "writes a number of bytes at a specified offset", Help: writeHelp,
			Flags: []Flag{{Letter: 'b'}, {Letter: 'c'}, {Letter: 'C'}, {Letter: 'f'}, {Letter: 'n'}, {Letter: 'p'}, {Letter: 'P', Arg: "pattern"}, {Letter: 'q'}, {Letter: 's', Arg: "source_file", Path: true}, {Letter: 'u'}, {Letter: 'z'}}, MinArgs: 2, MaxArgs: -1, NeedsFile: true, Write: true, Family: "I/O", Run: writeCmd, CheckOpts: checkValues("")},
		{Name: "writev", Args: "[-Cfq] [-P pattern] off len [len..]",
			Oneline: "writes a number of bytes at a specified offset", Help: writevHelp,
			Flags: []Flag{{Letter: 'C'}, {Letter: 'f'}, {Letter: 'q'}, {Letter: 'P', Arg: "pattern"}}, MinArgs: 2, MaxArgs: -1, NeedsFile: true, Write: true, Family: "I/O", Run: writevCmd, CheckOpts: checkValues("")},
		{Name: "discard", Alias: "d", Args: "[-Cq] off len",
			Oneline: "discards a number of bytes at a specified offset", Help: discardHelp,
			Flags: []Flag{{Letter: 'C'}, {Letter: 'q'}}, MinArgs: 2, MaxArgs: -1, NeedsFile: true, Write: true, Family: "I/O", Run: discardCmd},
		{Name: "flush", Alias: "f", Oneline: "flush all in-core file state to disk",
			MinArgs: 0, MaxArgs: 0, NeedsFile: true, Family: "I/O", Run: flushCmd},
	}
}

// readCmd is qemu-io's read_f.
func readCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	var cflag, qflag, vflag, pflag, sflag, lflag, bflag bool
	var pat byte
	var patOff, patCount int64
	for _, o := range opts {
		switch o.Name {
		case 'b':
			bflag = true
		case 'C':
			cflag = true
		case 'l':
			lflag = true
			v, ok := s.num(o.Arg)
			if !ok {
				return errFailed
			}
			patCount = v
		case 'p':
		case 'P':
			pflag = true
			p, ok := s.pattern(o.Arg)
			if !ok {
				return errFailed
			}
			pat = p
		case 'q':
			qflag = true
		case 's':
			sflag = true
			v, ok := s.num(o.Arg)
			if !ok {
				return errFailed
			}
			patOff = v
		case 'v':
			vflag = true
		}
	}
	if len(args) != 2 {
		return errUsage
	}
	off, ok := s.num(args[0])
	if !ok {
		return errFailed
	}
	count, ok := s.num(args[1])
	if !ok {
		return errFailed
	}
	if count > maxRequestBytes {
		fmt.Fprintf(s.Out, "length cannot exceed %d, given %s\n", int64(maxRequestBytes), args[1])
		return errFailed
	}
	if !pflag && (lflag || sflag) {
		return errUsage
	}
	if !lflag {
		patCount = count - patOff
	}
	if patCount < 0 || patCount+patOff > count {
		fmt.Fprintln(s.Out, "pattern verification range exceeds end of read data")
		return errFailed
	}
	if bflag {
		if err := sectorAligned(s, off, count); err != nil {
			return err
		}
	}
	if !vflag && !bflag && s.canStream(count) {
		return s.readStream(off, count, pflag, pat, patOff, patCount, qflag, cflag)
	}
	buf := s.syncBuf(count, 0xab)
	defer s.syncDone()
	return s.timedIO("read", off, count, func(co *blk.Co) error {
		if bflag {
			return s.Img.LoadVMState(co, buf, off)
		}
		return s.Img.PRead(co, off, buf)
	}, func(elapsed time.Duration) error {
		var result error
		if pflag && mismatch(buf[patOff:patOff+patCount], pat) {
			fmt.Fprintf(s.Out, "Pattern verification failed at offset %d, %d bytes\n", off+patOff, patCount)
			result = errFailed
		}
		if qflag {
			return result
		}
		if vflag {
			s.hexDump(off, buf)
		}
		s.report("read", count, off, elapsed, cflag)
		return result
	})
}

func sectorAligned(s *Session, off, count int64) error {
	if off%512 != 0 {
		fmt.Fprintf(s.Out, "%d is not a sector-aligned value for 'offset'\n", off)
		return errFailed
	}
	if count%512 != 0 {
		fmt.Fprintf(s.Out, "%d is not a sector-aligned value for 'count'\n", count)
		return errFailed
	}
	return nil
}

// checkValues is Command.CheckOpts for the I/O commands: -P takes a
// pattern byte, and the letters in nums (read's -l and -s) a number.
func checkValues(nums string) func(s *Session, opts []getopt.Opt) error {
	return func(s *Session, opts []getopt.Opt) error {
		for _, o := range opts {
			ok := true
			switch {
			case o.Name == 'P':
				_, ok = s.pattern(o.Arg)
			case strings.IndexByte(nums, o.Name) >= 0:
				_, ok = s.num(o.Arg)
			}
			if !ok {
				return errFailed
			}
		}
		return nil
	}
}

// iovec parses readv/writev/aio length lists (create_iovec) and returns
// the total.
func (s *Session) iovec(args []string) (int64, bool) {
	var total int64
	for _, a := range args {
		l, ok := s.num(a)
		if !ok {
			return 0, false
		}
		if l > maxRequestBytes {
			fmt.Fprintf(s.Out, "Argument '%s' exceeds maximum size %d\n", a, int64(maxRequestBytes))
			return 0, false
		}
		if total > maxRequestBytes-l {
			fmt.Fprintf(s.Out, "The total number of bytes exceed the maximum size %d\n", int64(maxRequestBytes))
			return 0, false
		}
		total += l
	}
	return total, true
}

// vecOpts holds the flags shared by readv, writev and the aio commands.
type vecOpts struct {
	C, q, v, P, f, z, u, i bool
	pat                    byte
}

func (s *Session) parseVecOpts(opts []getopt.Opt, invalidMsg string) (vecOpts, bool, error) {
	var vo vecOpts
	for _, o := range opts {
		switch o.Name {
		case 'C':
			vo.C = true
		case 'q':
			vo.q = true
		case 'v':
			vo.v = true
		case 'f':
			vo.f = true
		case 'z':
			vo.z = true
		case 'u':
			vo.u = true
		case 'i':
			// qemu-io returns at once, ignoring the rest of the line.
			fmt.Fprintln(s.Out, invalidMsg)
			return vo, true, nil
		case 'P':
			vo.P = true
			p, ok := s.pattern(o.Arg)
			if !ok {
				return vo, false, errFailed
			}
			vo.pat = p
		}
	}
	return vo, false, nil
}

// readvCmd is qemu-io's readv_f.
func readvCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	vo, _, err := s.parseVecOpts(opts, "")
	if err != nil {
		return err
	}
	if len(args) < 2 {
		return errUsage
	}
	off, ok := s.num(args[0])
	if !ok {
		return errFailed
	}
	total, ok := s.iovec(args[1:])
	if !ok {
		return errFailed
	}
	buf := fill(total, 0xab)
	return s.timedIO("readv", off, total, func(co *blk.Co) error { return s.Img.PRead(co, off, buf) }, func(elapsed time.Duration) error {
		var result error
		if vo.P && mismatch(buf, vo.pat) {
			fmt.Fprintf(s.Out, "Pattern verification failed at offset %d, %d bytes\n", off, total)
			result = errFailed
		}
		if vo.q {
			return result
		}
		if vo.v {
			s.hexDump(off, buf)
		}
		s.report("read", total, off, elapsed, vo.C)
		return result
	})
}

// writeCmd is qemu-io's write_f.
func writeCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	var bflag, cflag, Cflag, qflag, pflag, sflag, zflag bool
	var flags blk.ReqFlags
	pat := byte(0xcd)
	var srcFile string
	for _, o := range opts {
		switch o.Name {
		case 'b':
			bflag = true
		case 'c':
			cflag = true
		case 'C':
			Cflag = true
		case 'f':
			flags |= blk.FUA
		case 'n':
			flags |= blk.NoFallback
		case 'p':
		case 'P':
			pflag = true
			p, ok := s.pattern(o.Arg)
			if !ok {
				return errFailed
			}
			pat = p
		case 'q':
			qflag = true
		case 's':
			sflag = true
			srcFile = o.Arg
		case 'u':
			flags |= blk.MayUnmap
		case 'z':
			zflag = true
		}
	}
	if len(args) != 2 {
		return errUsage
	}
	fail := func(msg string) error { fmt.Fprintln(s.Out, msg); return errFailed }
	switch {
	case bflag && zflag:
		return fail("-b and -z cannot be specified at the same time")
	case flags&blk.FUA != 0 && (bflag || cflag):
		return fail("-f and -b or -c cannot be specified at the same time")
	case flags&blk.NoFallback != 0 && !zflag:
		return fail("-n requires -z to be specified")
	case flags&blk.MayUnmap != 0 && !zflag:
		return fail("-u requires -z to be specified")
	case btoi(zflag)+btoi(pflag)+btoi(sflag) > 1:
		return fail("Only one of -z, -P, and -s can be specified at the same time")
	}
	off, ok := s.num(args[0])
	if !ok {
		return errFailed
	}
	count, ok := s.num(args[1])
	if !ok {
		return errFailed
	}
	if count > maxRequestBytes && !(zflag && flags&blk.NoFallback != 0) {
		fmt.Fprintf(s.Out, "length cannot exceed %d without -n, given %s\n", int64(maxRequestBytes), args[1])
		return errFailed
	}
	if bflag || cflag {
		if err := sectorAligned(s, off, count); err != nil {
			return err
		}
	}
	if !zflag && !sflag && !bflag && !cflag && s.canStreamWrite(count) {
		return s.writeStream(off, count, pat, flags, qflag, Cflag)
	}
	var buf []byte
	switch {
	case zflag:
	case sflag:
		b, err := bufferFromFile(srcFile, count)
		if err != nil {
			fmt.Fprintln(s.Err, err)
			return errFailed
		}
		buf = b
	default:
		buf = s.syncBuf(count, pat)
		defer s.syncDone()
	}
	return s.timedIO("write", off, count, func(co *blk.Co) error {
		switch {
		case bflag:
			return s.Img.SaveVMState(co, buf, off)
		case zflag:
			return s.Img.PWriteZeroes(co, off, count, flags)
		case cflag:
			return s.Img.PWriteCompressed(co, off, buf)
		default:
			return s.Img.PWrite(co, off, buf, flags)
		}
	}, s.wrote(count, off, qflag, Cflag))
}

// wrote returns the success half of a write command: its report line.
func (s *Session) wrote(count, off int64, qflag, cflag bool) func(time.Duration) error {
	return func(elapsed time.Duration) error {
		if !qflag {
			s.report("wrote", count, off, elapsed, cflag)
		}
		return nil
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// bufferFromFile fills count bytes cyclically from a file's contents
// (qemu_io_alloc_from_file); errors read like perror's.
func bufferFromFile(name string, count int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, errText(err))
	}
	defer f.Close()
	buf := make([]byte, count)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %s", name, errText(err))
	}
	if n == 0 {
		// fread of nothing (a zero length too) reads as an empty file.
		return nil, fmt.Errorf("%s: file is empty", name)
	}
	for i := n; i < len(buf); i += n {
		copy(buf[i:], buf[:n])
	}
	return buf, nil
}

// writevCmd is qemu-io's writev_f.
func writevCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	vo, _, err := s.parseVecOpts(opts, "")
	if err != nil {
		return err
	}
	if len(args) < 2 {
		return errUsage
	}
	off, ok := s.num(args[0])
	if !ok {
		return errFailed
	}
	total, ok := s.iovec(args[1:])
	if !ok {
		return errFailed
	}
	pat := byte(0xcd)
	if vo.P {
		pat = vo.pat
	}
	var flags blk.ReqFlags
	if vo.f {
		flags |= blk.FUA
	}
	buf := fill(total, pat)
	return s.timedIO("writev", off, total, func(co *blk.Co) error { return s.Img.PWrite(co, off, buf, flags) },
		s.wrote(total, off, vo.q, vo.C))
}

// discardCmd is qemu-io's discard_f.
func discardCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	vo, _, _ := s.parseVecOpts(opts, "")
	if len(args) != 2 {
		return errUsage
	}
	off, ok := s.num(args[0])
	if !ok {
		return errFailed
	}
	count, ok := s.num(args[1])
	if !ok {
		return errFailed
	}
	if count > maxRequestBytes {
		fmt.Fprintf(s.Out, "length cannot exceed %d, given %s\n", int64(maxRequestBytes), args[1])
		return errFailed
	}
	return s.timedIO("discard", off, count, func(co *blk.Co) error { return s.Img.PDiscard(co, off, count) },
		func(elapsed time.Duration) error {
			if !vo.q {
				s.report("discard", count, off, elapsed, vo.C)
			}
			return nil
		})
}

// flushCmd is qemu-io's flush_f: silent, a failure only sets the status.
func flushCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	return s.runSync("flush", func(co *blk.Co) error { return s.Img.Flush(co) }, func(err error) error {
		if err != nil {
			return errFailed
		}
		return nil
	})
}
