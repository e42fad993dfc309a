package commands

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"gio/blk"
	"gio/internal/cvt"

	"golang.org/x/sys/unix"
)

// maxRequestBytes is QEMU's BDRV_REQUEST_MAX_BYTES (2^31 - 512).
const maxRequestBytes = 1<<31 - 512

// num parses an offset or length as qemu-io's cvtnum does, printing its
// errors (stdout) and deprecation warning (stderr).
func (s *Session) num(arg string) (int64, bool) {
	v, warn, err := cvt.ParseNumWarn(arg)
	if warn != "" {
		fmt.Fprintf(s.Err, "%s: warning: %s\n", ProgName, warn)
	}
	if err != nil {
		fmt.Fprintln(s.Out, err)
		return 0, false
	}
	return v, true
}

// pattern parses a -P argument, printing qemu-io's error.
func (s *Session) pattern(arg string) (byte, bool) {
	p, err := cvt.ParsePattern(arg)
	if err != nil {
		fmt.Fprintln(s.Out, err)
		return 0, false
	}
	return p, true
}

// errText renders an error as qemu-io would print it after "X failed: ".
func errText(err error) string {
	var be *blk.Error
	if errors.As(err, &be) {
		switch {
		case be.Msg == "":
			return cvt.Strerror(be.Errno)
		case be.Plain:
			return be.Msg
		default:
			return be.Msg + ": " + cvt.Strerror(be.Errno)
		}
	}
	var stuck *blk.ErrStuck
	if errors.As(err, &stuck) {
		return stuck.Error()
	}
	var errno unix.Errno
	if errors.As(err, &errno) || errors.Is(err, errors.ErrUnsupported) {
		return cvt.Strerror(blk.ErrnoOf(err))
	}
	// A message of its own (option and open errors: "Unknown driver
	// 'bogus'", "Could not parse the JSON options: ...").
	return err.Error()
}

// report prints the two-line (or -C) I/O report.
func (s *Session) report(op string, total, off int64, elapsed time.Duration, machine bool) {
	if total == 0 && elapsed == 0 {
		// A zero-length request that did no I/O takes no virtual time
		// (synchronous or aio); 0 bytes over 0 s would print "-nan",
		// which qemu-io (whose clock always moves) never prints and
		// _filter_qemu_io does not match.
		elapsed = time.Nanosecond
	}
	fmt.Fprint(s.Out, cvt.Report(op, total, off, elapsed, 1, machine))
}

// fill returns a buffer of n bytes set to b.
func fill(n int64, b byte) []byte {
	buf := make([]byte, n)
	if b != 0 && n > 0 {
		buf[0] = b
		for i := 1; i < len(buf); i *= 2 {
			copy(buf[i:], buf[:i])
		}
	}
	return buf
}

// mismatch reports whether buf differs from pattern byte p.
//
// It compares whole blocks with bytes.Equal (a vectorised memcmp, as
// qemu-io's pattern check is a memcmp): a 1 GiB read -P checks in a
// fraction of the time a byte loop takes.
func mismatch(buf []byte, p byte) bool {
	var block [512]byte
	if len(buf) <= len(block) {
		for _, b := range buf {
			if b != p {
				return true
			}
		}
		return false
	}
	fillBytes(block[:], p)
	for len(buf) > 0 {
		n := min(len(buf), len(block))
		if !bytes.Equal(buf[:n], block[:n]) {
			return true
		}
		buf = buf[n:]
	}
	return false
}

// runSync runs fn as the request of a synchronous command, waits for it
// and hands its error to finish, which prints the command's result;
// runSync returns what finish returns.
//
// Where qemu-io would hang (the request can never finish without another
// command: it is suspended at a breakpoint, or waits for one that is),
// and where Ctrl-C stops the wait before the request has finished, gio
// keeps one rule: a command reported as failed has had no effect.
//   - A request that has not started its I/O (it waits in a queue of the
//     generic layer) is withdrawn: finish sees blk.ErrWithdrawn
//     (ECANCELED, "Operation canceled"), or blk.ErrInterrupted after
//     Ctrl-C; nothing reached the image.
//   - Any other is not called failed: it stays in flight, the command
//     returns, and finish runs when the request completes (after a
//     resume), printing what the command would have printed, as an aio
//     request's completion does. A failure it reports then marks the
//     session as failed.
//
// One line on stderr says what happened and who waits for whom (a
// withdrawn interrupted request just fails with "Interrupted system
// call").
func (s *Session) runSync(name string, fn func(co *blk.Co) error, finish func(err error) error) error {
	var err error
	var later func(error)
	co := s.Loop.Spawn(name, func(co *blk.Co) {
		err = fn(co)
		co.NoteError(err)
		if later != nil {
			later(err)
		}
	})
	e := s.Loop.RunUntil(co.Name(), co.Done)
	if e == nil {
		return finish(err)
	}
	// The wait can never finish (ErrStuck), or Ctrl-C cut it short
	// (blk.ErrInterrupted) while the request still waits.
	var st *blk.ErrStuck
	stuck := errors.As(e, &st)
	if s.Loop.Withdraw(co) {
		s.Loop.RunReady() // it unwinds at once
		if co.Done() {
			if !stuck {
				return finish(e) // "X failed: Interrupted system call"
			}
			fmt.Fprintf(s.Err, "gio: %s can never happen, withdrawn: %s\n", co.Name(), strings.Join(st.Waiters, "; "))
			return finish(err)
		}
	}
	if stuck {
		fmt.Fprintf(s.Err, "gio: %s cannot finish now, left in flight (it reports when it completes): %s\n",
			co.Name(), strings.Join(st.Waiters, "; "))
	} else {
		fmt.Fprintf(s.Err, "gio: %s interrupted, left in flight (it reports when it completes)\n", co.Name())
	}
	later = func(err error) {
		if finish(err) != nil {
			s.Failed = true
		}
	}
	return nil
}

// timedIO runs fn as the synchronous request "VERB off count" (runSync)
// and times it. A failure prints qemu-io's "VERB failed: STRERROR" line
// and returns errFailed; success calls done with the elapsed time.
func (s *Session) timedIO(verb string, off, count int64, fn func(co *blk.Co) error, done func(elapsed time.Duration) error) error {
	start := s.Loop.Now()
	return s.runSync(fmt.Sprintf("%s %d %d", verb, off, count), fn, func(err error) error {
		if err != nil {
			fmt.Fprintf(s.Out, "%s failed: %s\n", verb, errText(err))
			return errFailed
		}
		return done(s.Loop.Now() - start)
	})
}

// stuck prints a wait that can never finish and fails the command.
func (s *Session) stuck(err error) error {
	var st *blk.ErrStuck
	if errors.As(err, &st) {
		fmt.Fprintf(s.Err, "gio: %s\n", st.Error())
		return errFailed
	}
	return nil
}

// runAIO submits fn as a request and runs it until it first blocks.
// done runs under the token when the request finishes: inline when the
// request had yielded (its completion comes from the loop), else as a
// bottom half at the next loop point, as QEMU's blk_aio_prwv does.
func (s *Session) runAIO(name string, fn func(co *blk.Co) error, done func(err error)) {
	s.Loop.Spawn(name, func(co *blk.Co) {
		err := fn(co)
		co.NoteError(err) // for the trace
		if co.Yielded() {
			done(err)
		} else {
			s.Loop.ScheduleBH(func() { done(err) })
		}
	})
	s.Loop.RunReady()
}
