package commands

import (
	"fmt"

	"gio/blk"
	"gio/internal/getopt"
)

func aioCommands() []*Command {
	return []*Command{
		{Name: "aio_read", Args: "[-Ciqv] [-P pattern] off len [len..]",
			Oneline: "asynchronously reads a number of bytes", Help: aioReadHelp,
			Flags: []Flag{{Letter: 'C'}, {Letter: 'P', Arg: "pattern"}, {Letter: 'i'}, {Letter: 'q'}, {Letter: 'v'}}, MinArgs: 2, MaxArgs: -1, NeedsFile: true, Family: "aio", Run: aioReadCmd, CheckOpts: checkAIO("injecting invalid read request")},
		{Name: "aio_write", Args: "[-Cfiquz] [-P pattern] off len [len..]",
			Oneline: "asynchronously writes a number of bytes", Help: aioWriteHelp,
			Flags: []Flag{{Letter: 'C'}, {Letter: 'f'}, {Letter: 'i'}, {Letter: 'q'}, {Letter: 'P', Arg: "pattern"}, {Letter: 'u'}, {Letter: 'z'}}, MinArgs: 2, MaxArgs: -1, NeedsFile: true, Write: true, Family: "aio", Run: aioWriteCmd, CheckOpts: checkAIO("injecting invalid write request")},
		{Name: "aio_flush", Oneline: "completes all outstanding aio requests",
			MinArgs: 0, MaxArgs: 0, NeedsFile: true, Family: "aio", Run: aioFlushCmd},
	}
}

// checkAIO is Command.CheckOpts for aio_read and aio_write: a bad
// pattern fails, and -i ends the command (its report printed) before
// getopt meets the bad option.
func checkAIO(invalidMsg string) func(s *Session, opts []getopt.Opt) error {
	return func(s *Session, opts []getopt.Opt) error {
		_, invalid, err := s.parseVecOpts(opts, invalidMsg)
		if invalid {
			return errDone
		}
		return err
	}
}

// aioReadCmd is qemu-io's aio_read_f: validation is synchronous, the
// result is printed on completion and never changes the exit status.
func aioReadCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	vo, invalid, err := s.parseVecOpts(opts, "injecting invalid read request")
	if invalid || err != nil {
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
	start := s.Loop.Now()
	s.runAIO(fmt.Sprintf("aio_read %d %d", off, total),
		func(co *blk.Co) error { return s.Img.PRead(co, off, buf) },
		func(err error) {
			if err != nil {
				fmt.Fprintf(s.Out, "readv failed: %s\n", errText(err))
				return
			}
			if vo.P && mismatch(buf, vo.pat) {
				fmt.Fprintf(s.Out, "Pattern verification failed at offset %d, %d bytes\n", off, total)
			}
			if vo.q {
				return
			}
			if vo.v {
				s.hexDump(off, buf)
			}
			s.report("read", total, off, s.Loop.Now()-start, vo.C)
		})
	return nil
}

// aioWriteCmd is qemu-io's aio_write_f.
func aioWriteCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	vo, invalid, err := s.parseVecOpts(opts, "injecting invalid write request")
	if invalid || err != nil {
		return err
	}
	if len(args) < 2 {
		return errUsage
	}
	if vo.z && len(args) != 2 {
		fmt.Fprintln(s.Out, "-z supports only a single length parameter")
		return errFailed
	}
	if vo.u && !vo.z {
		fmt.Fprintln(s.Out, "-u requires -z to be specified")
		return errFailed
	}
	off, ok := s.num(args[0])
	if !ok {
		return errFailed
	}
	var flags blk.ReqFlags
	if vo.f {
		flags |= blk.FUA
	}
	if vo.u {
		flags |= blk.MayUnmap
	}
	var total int64
	var buf []byte
	if vo.z {
		// No length limit for -z, as in qemu-io 7.2.
		if total, ok = s.num(args[1]); !ok {
			return errFailed
		}
	} else {
		if total, ok = s.iovec(args[1:]); !ok {
			return errFailed
		}
		pat := byte(0xcd)
		if vo.P {
			pat = vo.pat
		}
		buf = s.patternBuf(total, pat)
	}
	start := s.Loop.Now()
	s.runAIO(fmt.Sprintf("aio_write %d %d", off, total),
		func(co *blk.Co) error {
			if vo.z {
				return s.Img.PWriteZeroes(co, off, total, flags)
			}
			return s.Img.PWrite(co, off, buf, flags)
		},
		func(err error) {
			if err != nil {
				fmt.Fprintf(s.Out, "aio_write failed: %s\n", errText(err))
				return
			}
			if !vo.q {
				s.report("wrote", total, off, s.Loop.Now()-start, vo.C)
			}
		})
	return nil
}

// aioFlushCmd waits for every in-flight request (blk_drain_all). Where
// qemu-io hangs forever (a request suspended at a breakpoint), gio
// reports who waits for what and fails the command.
func aioFlushCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	if err := s.Loop.Drain("aio_flush"); err != nil {
		return s.stuck(err)
	}
	return nil
}
