package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillAfterFlush kills gio with SIGKILL as soon as a flushed (or
// FUA, or writethrough) write is reported and checks that the data is
// in the image. Commands come through a pipe; gio prints its prompt
// after each command, so the prompt after the flush means it returned.
// When strace works here, the test also checks that an fdatasync of the
// image's descriptor followed the write: a kill only shows the data
// reached the kernel, the fdatasync shows it was sent to the disk.
func TestKillAfterFlush(t *testing.T) {
	t.Parallel()
	strace, _ := exec.LookPath("strace")
	for _, tc := range []struct {
		name  string
		args  []string
		lines []string
	}{
		{"flush, writeback", []string{"-t", "writeback", "-f", "raw", "img.raw"}, []string{"write -P 0x5a 65536 4096", "flush"}},
		{"write -f, writeback", []string{"-t", "writeback", "-f", "raw", "img.raw"}, []string{"write -f -P 0x5a 65536 4096"}},
		{"aio_write -f, writeback", []string{"-t", "writeback", "-f", "raw", "img.raw"}, []string{"aio_write -f -P 0x5a 65536 4096", "aio_flush"}},
		{"writethrough", []string{"-f", "raw", "img.raw"}, []string{"write -P 0x5a 65536 4096"}},
		{"flush through blkdebug", []string{"-t", "writeback", "-f", "raw", "blkdebug::img.raw"}, []string{"write -P 0x5a 65536 4096", "flush"}},
		{"write -f through blkdebug align=4k, unaligned", []string{"-t", "writeback", "--image-opts", "driver=raw,file.driver=blkdebug,file.align=4k,file.image.filename=img.raw"},
			[]string{"write -f -P 0x5a 65536 4096", "write -f -P 0x5a 66000 100"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, traced := range []bool{false, true} {
				if traced && strace == "" {
					t.Log("strace not installed: fdatasync not checked")
					continue
				}
				dir := t.TempDir()
				img := filepath.Join(dir, "img.raw")
				if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
					t.Fatal(err)
				}
				bin, args := gioBin, tc.args
				trace := filepath.Join(dir, "trace")
				if traced {
					bin = strace
					args = append([]string{"-f", "-qq", "-o", trace, "-e", "trace=openat,pwrite64,fdatasync,fsync", gioBin}, tc.args...)
				}
				cmd := exec.Command(bin, args...)
				cmd.Dir = dir
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				stdin, _ := cmd.StdinPipe()
				stdout, _ := cmd.StdoutPipe()
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				killed := false
				kill := func() {
					if !killed {
						killed = true
						_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
						_ = cmd.Wait()
					}
				}
				defer kill()
				out := bufio.NewReader(stdout)
				var seen bytes.Buffer
				waitPrompt := func() {
					t.Helper()
					timer := time.AfterFunc(20*time.Second, kill)
					defer timer.Stop()
					for !bytes.HasSuffix(seen.Bytes(), []byte("qemu-io> ")) {
						b, err := out.ReadByte()
						if err != nil {
							if traced && strings.Contains(stderr.String(), "ptrace") {
								t.Skipf("strace cannot trace here: %s", stderr.String())
							}
							t.Fatalf("gio ended early: %q, stderr %q", seen.String(), stderr.String())
						}
						seen.WriteByte(b)
					}
				}
				waitPrompt()
				for _, l := range tc.lines {
					seen.Reset()
					fmt.Fprintln(stdin, l)
					waitPrompt()
					if strings.Contains(seen.String(), "failed") {
						t.Fatalf("%s: %s", l, seen.String())
					}
				}
				kill() // SIGKILL: no exit flush, no close
				data, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(data[65536:65536+4096], bytes.Repeat([]byte{0x5a}, 4096)) {
					t.Fatalf("traced=%v: the data is not in the image after SIGKILL", traced)
				}
				if traced {
					checkSynced(t, trace)
				}
			}
		})
	}
}

// checkSynced reads an strace log and checks that after the last write
// to the image's descriptor, the descriptor was fdatasync'ed with
// success.
func checkSynced(t *testing.T, trace string) {
	t.Helper()
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	log := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	fd, wrote, synced := syncedAfterWrite(log)
	if !wrote {
		t.Fatalf("the trace shows no write to img.raw:\n%s", strings.Join(log, "\n"))
	}
	if !synced {
		t.Fatalf("no fdatasync of img.raw (fd %s) after its last write:\n%s", fd, strings.Join(log, "\n"))
	}
}

// syncedAfterWrite reads the lines of an strace -f log: the descriptor
// img.raw was opened as, whether it was written, and whether an
// fdatasync or fsync of it succeeded after the last write.
func syncedAfterWrite(log []string) (fd string, wrote, synced bool) {
	openRE := regexp.MustCompile(`openat\(AT_FDCWD, "img\.raw", [^)]*\)\s*= (\d+)`)
	syncRE := regexp.MustCompile(`f(?:data)?sync\((\d+)\)\s*= 0`)
	for _, line := range joinResumed(log) {
		if m := openRE.FindStringSubmatch(line); m != nil {
			fd = m[1]
		}
		if fd == "" {
			continue
		}
		switch {
		case strings.Contains(line, "pwrite64("+fd+","):
			wrote, synced = true, false
		case wrote && syncRE.MatchString(line) && syncRE.FindStringSubmatch(line)[1] == fd:
			synced = true
		}
	}
	return fd, wrote, synced
}

// joinResumed puts back together the system calls strace -f splits when
// another thread's call or signal comes in the middle ("PID
// fdatasync(6 <unfinished ...>", later "PID <... fdatasync resumed>) =
// 0"), which happens more the busier the machine is. A joined call
// takes the place of its resumed line: that is when it returned.
func joinResumed(lines []string) []string {
	var out []string
	pending := map[string]string{} // pid: the unfinished line, without the marker
	for _, l := range lines {
		pid, rest, _ := strings.Cut(l, " ")
		if head, ok := strings.CutSuffix(rest, " <unfinished ...>"); ok {
			pending[pid] = head
			continue
		}
		if strings.HasPrefix(rest, "<... ") {
			if _, tail, ok := strings.Cut(rest, " resumed>"); ok && pending[pid] != "" {
				out = append(out, pid+" "+pending[pid]+tail)
				delete(pending, pid)
				continue
			}
		}
		out = append(out, l)
	}
	return out
}

func TestSyncedAfterWrite(t *testing.T) {
	open := `11897 openat(AT_FDCWD, "img.raw", O_RDWR|O_CLOEXEC) = 6`
	for _, tc := range []struct {
		name   string
		log    []string
		synced bool
	}{
		{"synced", []string{open, `11894 pwrite64(6, "ZZ"..., 4096, 65536) = 4096`, `11894 fdatasync(6) = 0`}, true},
		{"written after the sync", []string{open, `11894 fdatasync(6) = 0`, `11894 pwrite64(6, "ZZ"..., 4096, 65536) = 4096`}, false},
		{"another descriptor synced", []string{open, `11894 pwrite64(6, "ZZ"..., 4096, 65536) = 4096`, `11894 fdatasync(7) = 0`}, false},
		// A signal to another thread splits the call (seen at load 35).
		{"split sync", []string{open, `11894 pwrite64(6, "ZZ"..., 4096, 65536) = 4096`, `11894 fdatasync(6 <unfinished ...>`,
			`11897 --- SIGURG {si_signo=SIGURG, si_code=SI_TKILL, si_pid=11870, si_uid=0} ---`, `11894 <... fdatasync resumed>) = 0`}, true},
		{"split sync that failed", []string{open, `11894 pwrite64(6, "ZZ"..., 4096, 65536) = 4096`, `11894 fdatasync(6 <unfinished ...>`,
			`11897 --- SIGURG {si_signo=SIGURG} ---`, `11894 <... fdatasync resumed>) = -1 EIO (Input/output error)`}, false},
		// A write that returns after a sync in another thread started.
		{"split write", []string{open, `11894 pwrite64(6, "ZZ"..., 4096, 65536 <unfinished ...>`, `11895 fdatasync(6) = 0`,
			`11894 <... pwrite64 resumed>) = 4096`}, false},
		{"split open", []string{`11897 openat(AT_FDCWD, "img.raw", O_RDWR|O_CLOEXEC <unfinished ...>`, `11894 fdatasync(3) = 0`,
			`11897 <... openat resumed>) = 6`, `11894 pwrite64(6, "ZZ"..., 4096, 65536) = 4096`, `11894 fdatasync(6) = 0`}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if fd, wrote, synced := syncedAfterWrite(tc.log); fd != "6" || !wrote || synced != tc.synced {
				t.Errorf("fd %q, wrote %v, synced %v; want fd 6, wrote, synced %v", fd, wrote, synced, tc.synced)
			}
		})
	}
}
