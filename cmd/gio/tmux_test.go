package main

// The interactive shell, tested the way a person uses it: the real binary
// in a tmux pane, keys sent with send-keys, the screen read back with
// capture-pane (-e keeps the colours). Skipped when tmux is missing.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pane is one gio running in its own tmux server.
type pane struct {
	t    *testing.T
	sock string
	env  []string
}

// startPane starts gio with args in dir, in a fresh tmux server whose
// environment (inherited by the pane) is env.
func startPane(t *testing.T, dir string, env []string, args ...string) *pane {
	t.Helper()
	p := &pane{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock"), env: env}
	cmdline := strconv.Quote(gioBin)
	for _, a := range args {
		cmdline += " " + strconv.Quote(a)
	}
	p.tmux("-f", "/dev/null", "new-session", "-d", "-s", "gio", "-x", "120", "-y", "60", "-c", dir, cmdline,
		";", "set-option", "-g", "remain-on-exit", "on")
	t.Cleanup(func() { exec.Command("tmux", "-S", p.sock, "kill-server").Run() })
	p.waitLast("gio>", "the first prompt")
	return p
}

func (p *pane) tmux(args ...string) string {
	p.t.Helper()
	cmd := exec.Command("tmux", append([]string{"-S", p.sock}, args...)...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// typeLine types text literally, then presses the given keys.
func (p *pane) typeLine(text string, keys ...string) {
	p.t.Helper()
	if text != "" {
		p.tmux("send-keys", "-t", "gio", "-l", text)
	}
	if len(keys) > 0 {
		p.tmux(append([]string{"send-keys", "-t", "gio"}, keys...)...)
	}
}

// screen is the pane's text, trailing blank lines dropped.
func (p *pane) screen() string {
	return strings.TrimRight(p.tmux("capture-pane", "-p", "-t", "gio"), "\n ")
}

// lastLine is the screen's last non-blank line, trailing spaces dropped.
func lastLine(screen string) string {
	ls := strings.Split(screen, "\n")
	return strings.TrimRight(ls[len(ls)-1], " ")
}

// waitFor polls the screen until ok holds, failing after 10 seconds.
func (p *pane) waitFor(what string, ok func(screen string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := p.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s; screen:\n%s", what, s)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func (p *pane) waitText(text string) string {
	p.t.Helper()
	return p.waitFor(fmt.Sprintf("%q", text), func(s string) bool { return strings.Contains(s, text) })
}

func (p *pane) waitLast(line, what string) string {
	p.t.Helper()
	return p.waitFor(what, func(s string) bool { return lastLine(s) == line })
}

// run types a command, presses Enter and waits for the next prompt.
func (p *pane) run(line string) string {
	p.t.Helper()
	before := strings.Count(p.screen(), "gio>")
	p.typeLine(line, "Enter")
	return p.waitFor("the prompt after "+line, func(s string) bool {
		return strings.Count(s, "gio>") > before && lastLine(s) == "gio>"
	})
}

// waitExit waits for gio to end and returns its exit status.
func (p *pane) waitExit() int {
	p.t.Helper()
	start := time.Now()
	for {
		f := strings.Fields(p.tmux("display-message", "-p", "-t", "gio", "#{pane_dead} #{pane_dead_status}"))
		if len(f) == 2 && f[0] == "1" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
		// tmux is sometimes slow to reap its pane's process (seen in the
		// full suite on a quiet machine: 20 s, twice in one run): a gio
		// that has exited shows as a zombie. After a grace second that is
		// an exit, with the status the kernel keeps for it; after 20 s anything else
		// is a hang.
		if waited := time.Since(start); waited > time.Second {
			pid := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "gio", "#{pane_pid}"))
			stat, err := os.ReadFile("/proc/" + pid + "/stat")
			if err == nil && zombie(string(stat)) {
				p.t.Logf("gio (pid %s) exited but tmux has not reaped it yet", pid)
				return zombieStatus(p.t, string(stat))
			}
			if err != nil {
				p.t.Logf("gio (pid %s) is gone, its status unknown", pid)
				return 0
			}
			if waited > 20*time.Second {
				p.t.Fatalf("gio did not exit; screen:\n%s", p.screen())
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// attr is how a character is drawn: foreground colour (0 = default,
// else the SGR code 30-37 or 90-97) and boldness.
type attr struct {
	fg   int
	bold bool
}

// styledLines parses capture-pane -e output: each line's text, and the
// attribute of its non-blank characters (with mixed set when they differ).
// tmux carries attributes across line ends, so the stream is parsed whole.
func styledLines(capture string) (texts []string, attrs []attr, mixed []bool) {
	var cur attr
	var text strings.Builder
	var la attr
	seen, mix := false, false
	flush := func() {
		texts = append(texts, strings.TrimRight(text.String(), " "))
		attrs = append(attrs, la)
		mixed = append(mixed, mix)
		text.Reset()
		seen, mix, la = false, false, attr{}
	}
	for i := 0; i < len(capture); i++ {
		c := capture[i]
		switch {
		case c == 0x1b && i+1 < len(capture) && capture[i+1] == '[':
			j := i + 2
			for j < len(capture) && (capture[j] < 0x40 || capture[j] > 0x7e) {
				j++
			}
			if j < len(capture) && capture[j] == 'm' {
				cur = applySGR(cur, capture[i+2:j])
			}
			i = j
		case c == '\n':
			flush()
		default:
			text.WriteByte(c)
			if c != ' ' {
				if seen && la != cur {
					mix = true
				}
				if !seen {
					la, seen = cur, true
				}
			}
		}
	}
	if text.Len() > 0 {
		flush()
	}
	return
}

func applySGR(a attr, params string) attr {
	ps := strings.Split(params, ";")
	for k := 0; k < len(ps); k++ {
		n, _ := strconv.Atoi(ps[k])
		switch {
		case n == 0:
			a = attr{}
		case n == 1:
			a.bold = true
		case n == 22:
			a.bold = false
		case n >= 30 && n <= 37, n >= 90 && n <= 97:
			a.fg = n
		case n == 39:
			a.fg = 0
		case n == 38 || n == 48: // 38;5;N or 38;2;R;G;B
			if k+1 < len(ps) && ps[k+1] == "5" {
				k += 2
			} else {
				k += 4
			}
			if n == 38 {
				a.fg = -1 // a colour this test never expects
			}
		}
	}
	return a
}

// TestInteractiveTmux drives two sessions sharing one history file.
func TestInteractiveTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed")
	}
	home := t.TempDir()
	state := filepath.Join(home, "state")
	work := t.TempDir()
	env := editEnv(os.Environ(), []string{"HOME=" + home, "XDG_STATE_HOME=" + state,
		"TERM=xterm-256color", "NO_COLOR", "TMUX", "TMUX_PANE"})

	// Session one: recorded, with every kind of line the shell paints.
	p := startPane(t, work, env, "--record", "rec.gio")
	p.run("create img 64k")
	p.run("open -o driver=raw,file.align=4k blkdebug::img")
	p.run("write -P 0xab 0 512")
	p.run("wiat_break A")
	p.run("break pwritev_rmw_head A")
	p.run("aio_write -P 0xcd 512 512")
	p.typeLine("resume ", "Tab") // the only tag: A
	p.waitLast("gio> resume A", "tag completion after resume")
	p.typeLine("", "Enter")
	p.waitText("blkdebug: Resuming request 'A'")
	p.run("aio_flush")
	p.run("read -P 0xcd 512 512")
	p.run("read 64k 1")
	p.run("help sleep")

	capture := p.tmux("capture-pane", "-p", "-e", "-t", "gio")
	texts, attrs, mixed := styledLines(capture)
	want := map[string]attr{
		`command "wiat_break" not found`:                     {fg: 31},
		`gio: did you mean "wait_break"?`:                    {bold: true},
		"blkdebug: Suspended request 'A'":                    {fg: 35},
		"blkdebug: Resuming request 'A'":                     {fg: 36},
		"read failed: Input/output error":                    {fg: 31},
		"wrote 512/512 bytes at offset 0":                    {},
		"read 512/512 bytes at offset 512":                   {},
		"sleep -- waits for the given value in milliseconds": {},
	}
	found := map[string]bool{}
	for i, text := range texts {
		if text == "" {
			continue
		}
		if mixed[i] {
			t.Errorf("line %q mixes colours", text)
		}
		w, listed := want[text]
		switch {
		case listed:
			found[text] = true
		case strings.HasPrefix(text, "gio>"), strings.Contains(text, " ops; "):
			// prompts, typed lines and report lines stay plain
		default:
			continue
		}
		if attrs[i] != w {
			t.Errorf("line %q drawn as %+v, want %+v", text, attrs[i], w)
		}
	}
	for text := range want {
		if !found[text] {
			t.Errorf("line %q not on screen:\n%s", text, strings.Join(texts, "\n"))
		}
	}

	p.typeLine("", "C-d")
	p.waitExit()
	hist, err := os.ReadFile(filepath.Join(state, "gio", "history"))
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	if !strings.HasSuffix(string(hist), "help sleep\n") {
		t.Errorf("history does not end with the last command:\n%s", hist)
	}

	// The recording is a script: gio test -update makes it a test that
	// then passes.
	rec, err := os.ReadFile(filepath.Join(work, "rec.gio"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(rec), "# Recorded by gio") || !strings.Contains(string(rec), "\nwiat_break A\n") ||
		!strings.Contains(string(rec), "\nresume A\naio_flush\n") {
		t.Errorf("recording:\n%s", rec)
	}
	for _, args := range [][]string{{"test", "-update", "rec.gio"}, {"test", "rec.gio"}} {
		cmd := exec.Command(gioBin, args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "1 passed, 0 failed") {
			t.Errorf("gio %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out, _ := os.ReadFile(filepath.Join(work, "rec.out")); !strings.Contains(string(out), "blkdebug: Resuming request 'A'") {
		t.Errorf("rec.out:\n%s", out)
	}

	// Session two: history from session one, completion, Ctrl-C.
	p = startPane(t, work, env)
	p.typeLine("", "Up")
	p.waitLast("gio> help sleep", "the previous session's last command after Up")
	p.typeLine("", "Enter")
	p.waitLast("gio>", "the prompt after the recalled command")
	if s := p.screen(); !strings.Contains(s, "sleep -- waits for the given value in milliseconds") {
		t.Errorf("the recalled command did not run:\n%s", s)
	}

	p.typeLine("wai", "Tab")
	p.waitLast("gio> wait_break", "wai<TAB> completed to wait_break")
	p.typeLine("", "C-c") // abandons the line
	p.waitLast("gio>", "a fresh prompt after Ctrl-C on a line")

	p.typeLine("break pwritev_rmw_h", "Tab")
	p.waitLast("gio> break pwritev_rmw_head", "event name completion after break")
	p.typeLine("", "C-c")
	p.waitLast("gio>", "a fresh prompt after Ctrl-C")

	p.typeLine("sleep 100000", "Enter") // 100 s on the real clock
	// Give the sleep time to start; on a loaded machine the echo itself
	// may come later, so wait for it too (no new prompt: it is running).
	time.Sleep(300 * time.Millisecond)
	p.waitLast("gio> sleep 100000", "sleep 100000 running")
	start := time.Now()
	p.typeLine("", "C-c")
	p.waitLast("gio>", "the prompt after Ctrl-C during sleep 100000")
	// Far below the 100 s of the sleep, and far above what a loaded
	// machine takes to deliver a key press.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Ctrl-C took %v to interrupt sleep", d)
	}
	p.run("help quit") // the shell survived
	if s := p.screen(); !strings.Contains(s, "quit -- exit the program") {
		t.Errorf("the shell did not run a command after the interrupt:\n%s", s)
	}
	p.typeLine("", "C-d")
	if rc := p.waitExit(); rc != 0 {
		t.Errorf("exit status after Ctrl-D: %d, want 0", rc)
	}
}

// zombie reports whether a /proc/PID/stat line is that of a zombie.
// zombieStatus is a zombie's exit status: /proc/PID/stat's last field
// (exit_code, Linux 3.5+) holds it in waitpid's form.
func zombieStatus(t *testing.T, stat string) int {
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	code, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		t.Fatalf("exit code in %q: %v", stat, err)
	}
	return (code >> 8) & 0xff
}

func zombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i >= 0 && len(stat) > i+2 && stat[i+2] == 'Z'
}
