package commands

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"time"
	"unsafe"

	"gio/blk"
	"gio/internal/cvt"
	"gio/internal/getopt"

	"golang.org/x/sys/unix"
)

func debugCommands() []*Command {
	return []*Command{
		{Name: "break", Args: "event tag", Oneline: "sets a breakpoint on event and tags the stopped request as tag",
			MinArgs: 2, MaxArgs: 2, NeedsFile: true, RawArgs: true, Family: "blkdebug", Run: breakCmd},
		{Name: "remove_break", Args: "tag", Oneline: "remove a breakpoint by tag",
			MinArgs: 1, MaxArgs: 1, NeedsFile: true, RawArgs: true, Family: "blkdebug", Run: removeBreakCmd},
		{Name: "resume", Args: "tag", Oneline: "resumes the request tagged as tag",
			MinArgs: 1, MaxArgs: 1, NeedsFile: true, RawArgs: true, Family: "blkdebug", Run: resumeCmd},
		{Name: "wait_break", Args: "tag", Oneline: "waits for the suspension of a request",
			MinArgs: 1, MaxArgs: 1, NeedsFile: true, RawArgs: true, Family: "blkdebug", Run: waitBreakCmd},
		{Name: "sleep", Oneline: "waits for the given value in milliseconds",
			MinArgs: 1, MaxArgs: 1, RawArgs: true, Family: "shell", Run: sleepCmd},
		{Name: "sigraise", Args: "signal", Oneline: "raises a signal", Help: sigraiseHelp,
			MinArgs: 1, MaxArgs: 1, RawArgs: true, Family: "shell", Run: sigraiseCmd},
		{Name: "abort", Oneline: "simulate a program crash using abort(3)",
			MinArgs: 0, MaxArgs: 0, RawArgs: true, Family: "shell", Run: abortCmd},
	}
}

func breakpointer(s *Session) blk.Breakpointer { return s.Img.Root.Breakpointer() }

func breakErr(err error) string {
	if errors.Is(err, unix.ENOENT) {
		return cvt.Strerror(unix.ENOENT)
	}
	return errText(err)
}

func breakCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	b := breakpointer(s)
	if b == nil {
		fmt.Fprintf(s.Out, "Could not set breakpoint: %s\n", cvt.Strerror(unix.ENOTSUP))
		return errFailed
	}
	if err := b.Break(args[0], args[1]); err != nil {
		fmt.Fprintf(s.Out, "Could not set breakpoint: %s\n", breakErr(err))
		if _, known := blk.ParseEvent(args[0]); !known && s.Suggest != nil {
			s.Flush()
			s.Suggest(args[0], blk.EventNames())
		}
		return errFailed
	}
	return nil
}

func removeBreakCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	b := breakpointer(s)
	if b == nil {
		fmt.Fprintf(s.Out, "Could not remove breakpoint %s: %s\n", args[0], cvt.Strerror(unix.ENOTSUP))
		return errFailed
	}
	if err := b.RemoveBreak(args[0]); err != nil {
		fmt.Fprintf(s.Out, "Could not remove breakpoint %s: %s\n", args[0], breakErr(err))
		return errFailed
	}
	s.Loop.RunReady()
	return nil
}

// resumeCmd lets the most recently suspended request with the tag run on
// until it next blocks, as qemu_coroutine_enter does.
func resumeCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	b := breakpointer(s)
	if b == nil {
		fmt.Fprintf(s.Out, "Could not resume request: %s\n", cvt.Strerror(unix.ENOTSUP))
		return errFailed
	}
	if err := b.Resume(args[0]); err != nil {
		fmt.Fprintf(s.Out, "Could not resume request: %s\n", breakErr(err))
		return errFailed
	}
	s.Loop.RunReady()
	return nil
}

// waitBreakCmd runs the loop until a request is suspended under the tag.
// qemu-io waits forever when that cannot happen; gio says so and fails.
func waitBreakCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	tag := args[0]
	b := breakpointer(s)
	cond := func() bool { return b != nil && b.IsSuspended(tag) }
	if err := s.Loop.RunUntil(fmt.Sprintf("wait_break %s", tag), cond); err != nil {
		var st *blk.ErrStuck
		if errors.As(err, &st) {
			if b == nil {
				fmt.Fprintf(s.Err, "gio: wait_break %s: no blkdebug node, nothing can suspend a request\n", tag)
			} else {
				fmt.Fprintf(s.Err, "gio: %s\n", st.Error())
			}
		}
		return errFailed
	}
	return nil
}

// sleepCmd runs the loop for the given milliseconds of loop-clock time
// (virtual in scripts, real at a terminal).
func sleepCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	ms, err := cvt.ParseSleepMS(args[0])
	if err != nil {
		fmt.Fprintln(s.Out, err)
		return errFailed
	}
	s.Loop.Sleep(time.Duration(ms) * time.Millisecond)
	return nil
}

// sigraiseCmd flushes both streams and raises the signal.
func sigraiseCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	sig, ok := s.num(args[0])
	if !ok {
		return errFailed
	}
	if sig > 65 {
		fmt.Fprintf(s.Out, "signal argument '%s' is too large to be a valid signal\n", args[0])
		return errFailed
	}
	if sig == 0 || sig >= 65 {
		return nil
	}
	s.Flush()
	if qemuIgnored[unix.Signal(sig)] {
		return nil
	}
	if terminates(unix.Signal(sig)) {
		RemoveScratchDirs()
	}
	raise(unix.Signal(sig))
	return nil
}

// qemuIgnored are the signals qemu-io survives: SIGPIPE is ignored, QEMU's
// main loop takes SIGUSR1, SIGIO, SIGALRM and SIGBUS through a signalfd,
// and glibc keeps 32 and 33 for itself.
var qemuIgnored = map[unix.Signal]bool{
	unix.SIGPIPE: true, unix.SIGUSR1: true, unix.SIGIO: true, unix.SIGALRM: true, unix.SIGBUS: true,
	32: true, 33: true,
}

// raise delivers sig to the process with its default action, as C's
// raise() does (Go's runtime would otherwise catch some signals).
func raise(sig unix.Signal) {
	signal.Reset(sig)
	// Go's runtime handles SIGABRT, SIGSEGV, SIGQUIT and friends itself
	// (a goroutine dump and exit status 2); the kernel's default action
	// is what C's raise() gets, so install it directly.
	var act [4]uint64 // struct sigaction: SIG_DFL, no flags, empty mask
	_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	runtime.LockOSThread()
	_ = unix.Tgkill(os.Getpid(), unix.Gettid(), sig)
	runtime.UnlockOSThread()
	// A signal whose default action is to ignore returns here; one that
	// terminates may take a moment to be delivered.
	if sig != unix.SIGCHLD && sig != unix.SIGURG && sig != unix.SIGWINCH && sig != unix.SIGCONT {
		time.Sleep(100 * time.Millisecond)
	}
}

// terminates reports whether sig's default action ends the process (it
// neither is ignored nor stops it).
func terminates(sig unix.Signal) bool {
	switch sig {
	case unix.SIGCHLD, unix.SIGURG, unix.SIGWINCH, unix.SIGCONT, unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return false
	}
	return true
}

// abortCmd simulates a crash: SIGABRT without flushing stdout.
func abortCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	RemoveScratchDirs()
	raise(unix.SIGABRT)
	return nil
}
