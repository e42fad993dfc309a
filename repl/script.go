package repl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gio/blk"
	"gio/commands"
)

// Env is what the shell needs from its program: a way to build the
// driver registry (drivers are chosen by cmd/gio, not by repl) with
// blkdebug printing to the session's stdout.
type Env struct {
	NewRegistry func(out io.Writer) *blk.Registry
	// Explore, if set, runs "gio explore" for the explore command.
	Explore func(args []string, out, errw io.Writer) int
}

// NewSession builds a session writing to out and errw on a fresh loop.
func (e Env) NewSession(out *StdioWriter, errw io.Writer, clock blk.Clock) *commands.Session {
	loop := blk.NewLoop(clock)
	s := commands.NewSession(out, errw, e.NewRegistry(out), loop)
	s.Flush = out.Flush
	s.Explore = e.Explore
	return s
}

// lineErrWriter prefixes each stderr message with FILE:LINE: so that a
// script's failures point at their line. A message is what one Write
// carries: its continuation lines (the probe warning's second and third)
// are not prefixed again. Line 0 is the image opened before the first
// line, -1 the implicit close at exit.
type lineErrWriter struct {
	w    io.Writer
	file string
	line *int
	bol  bool
	// wrote counts the messages written (to tell whether a failed
	// command said anything on stderr).
	wrote int
}

func (l *lineErrWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > 0 && l.bol {
		l.wrote++
		switch {
		case *l.line > 0:
			fmt.Fprintf(l.w, "%s:%d: ", l.file, *l.line)
		case *l.line < 0:
			fmt.Fprintf(l.w, "%s: at exit: ", l.file)
		default:
			fmt.Fprintf(l.w, "%s: ", l.file)
		}
	}
	l.w.Write(p)
	l.bol = p[len(p)-1] == '\n'
	return n, nil
}

// StripComment removes a trailing comment from a script line: a word
// that starts with '#' ends the command, as in a shell. Whole-line
// comments are skipped by the script reader; qemu-io itself has no
// comments, so a script line stripped this way is what qemu-io reads.
func StripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return strings.TrimRight(line[:i], " \t")
		}
	}
	return line
}

// scriptLines returns the executable lines of a .gio script with their
// line numbers: blank lines and lines starting with '#' are skipped, and
// trailing comments are removed.
func scriptLines(src string) (lines []string, numbers []int) {
	for i, l := range strings.Split(src, "\n") {
		l = StripComment(strings.TrimRight(l, "\r"))
		if strings.TrimSpace(l) == "" {
			continue
		}
		lines = append(lines, l)
		numbers = append(numbers, i+1)
	}
	return
}

// isReadBackCheck reports whether a command line is a synchronous read
// that verifies a pattern (read -P, readv -P): what echo mode's verdict
// counts.
func isReadBackCheck(line string) bool {
	w := commands.SplitLine(line)
	if len(w) == 0 || (w[0] != "read" && w[0] != "r" && w[0] != "readv") {
		return false
	}
	for _, a := range w[1:] {
		if len(a) > 1 && a[0] == '-' && strings.Contains(a, "P") {
			return true
		}
	}
	return false
}

// ScriptOptions are the ways a script can be run ("gio run"'s flags).
type ScriptOptions struct {
	// Image, if set, is opened before the first line, with Open's
	// options (Format, cache modes...).
	Image string
	Open  commands.OpenOptions
	// ImageOpts reads Image as an option string (--image-opts).
	ImageOpts bool
	// Clock is the loop's clock; nil means virtual time.
	Clock blk.Clock
	// Prefix puts FILE:LINE: before stderr messages, and names a failed
	// command that printed nothing on stderr (its failure is on
	// stdout, such as a pattern mismatch) in a located stderr line.
	Prefix bool
	// Echo prints each command line on stdout, after EchoPrompt, before
	// its output, as a transcript shows it, with the script's comments;
	// at the end a verdict counts the read-back checks (read -P) that
	// passed.
	Echo bool
	// TraceFile, if set, is where the script's trace goes
	// (commands.Session.StartTrace), in TraceFormat ("json", "jsonl").
	TraceFile, TraceFormat string
}

// EchoPrompt starts the command lines that echo mode prints.
const EchoPrompt = "gio> "

// RunScript runs a .gio script the way qemu-io runs piped stdin, without
// prompts: before each line stdout is flushed and the loop delivers ready
// completions. stderr lines get a FILE:LINE: prefix when prefix is set.
// It returns whether every command succeeded.
func (e Env) RunScript(name, src string, image string, stdout, stderr io.Writer, prefix bool) bool {
	return e.RunScriptOpts(name, src, stdout, stderr, ScriptOptions{Image: image, Prefix: prefix})
}

// RunScriptOpts is RunScript with every option.
func (e Env) RunScriptOpts(name, src string, stdout, stderr io.Writer, o ScriptOptions) bool {
	out := NewStdioWriter(stdout, false)
	lineNo := 0
	var errw io.Writer = stderr
	var lw *lineErrWriter
	if o.Prefix {
		lw = &lineErrWriter{w: stderr, file: name, line: &lineNo, bol: true}
		errw = lw
	}
	clock := o.Clock
	if clock == nil {
		clock = blk.NewVirtualClock()
	}
	s := e.NewSession(out, errw, clock)
	defer s.Cleanup()
	if o.TraceFile != "" {
		if err := s.StartTrace(o.TraceFile, o.TraceFormat); err != nil {
			fmt.Fprintf(stderr, "gio: trace: %v\n", err)
			return false
		}
	}
	if o.Image != "" {
		image, open := o.Image, o.Open
		if o.ImageOpts {
			d, ok := s.ParseOptions(image)
			if !ok {
				out.Flush()
				return false
			}
			image, open.Opts = "", d
		}
		if !s.OpenImage(image, open) {
			out.Flush()
			return false
		}
	}
	lines, numbers := scriptLines(src)
	raw := strings.Split(src, "\n")
	echoed := 0 // raw lines echoed so far
	var checks, failedChecks int
	for i, l := range lines {
		if s.Quit {
			break
		}
		lineNo = numbers[i]
		out.Flush()
		s.Loop.RunPending()
		if o.Echo {
			// The comments before the line, then the line as written:
			// the script reads as the transcript of a session.
			for ; echoed < lineNo-1; echoed++ {
				fmt.Fprintln(out, strings.TrimRight(raw[echoed], "\r"))
			}
			fmt.Fprintf(out, "%s%s\n", EchoPrompt, strings.TrimRight(raw[lineNo-1], "\r"))
			echoed = lineNo
		}
		before := 0
		if lw != nil {
			before = lw.wrote
		}
		ok := s.Execute(l)
		if isReadBackCheck(l) {
			checks++
			if !ok {
				failedChecks++
			}
		}
		if !ok && lw != nil && lw.wrote == before {
			out.Flush()
			fmt.Fprintf(errw, "gio: command failed: %s\n", strings.TrimSpace(l))
		}
	}
	if o.Echo {
		for ; echoed < len(raw); echoed++ {
			if t := strings.TrimSpace(raw[echoed]); t != "" {
				fmt.Fprintln(out, strings.TrimRight(raw[echoed], "\r"))
			}
		}
		switch {
		case checks == 0:
		case checks == 1 && failedChecks == 0:
			fmt.Fprintln(out, "gio: the read-back check passed")
		case checks == 1:
			fmt.Fprintln(out, "gio: the read-back check failed")
		case failedChecks == 0:
			fmt.Fprintf(out, "gio: all %d read-back checks passed\n", checks)
		default:
			fmt.Fprintf(out, "gio: %d of %d read-back checks failed\n", failedChecks, checks)
		}
	}
	out.Flush()
	lineNo = -1
	if !s.CloseImage() {
		s.Failed = true
	}
	s.StopTrace()
	out.Flush()
	return !s.Failed
}

// reportLine matches the statistics tail of a report line, exactly the
// expression of qemu-iotests' _filter_qemu_io.
var reportLine = regexp.MustCompile(`[0-9]* ops; [0-9/:. sec]* \([0-9/.inf]* [EPTGMKiBbytes]*/sec and [0-9/.inf]* ops/sec\)`)

// Normalize applies qemu-iotests' _filter_qemu_io: carriage returns go,
// report-line timings become placeholders, prompts are removed.
func Normalize(s string) string {
	s = strings.ReplaceAll(s, "\r", "")
	s = reportLine.ReplaceAllString(s, "X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)")
	s = strings.ReplaceAll(s, "qemu-io> ", "")
	return s
}

// GoldenResult is the outcome of one script of a golden run.
type GoldenResult struct {
	Script string
	Passed bool
	Diff   string
}

// RunGolden runs each script and compares its output, byte for byte, with
// the .out file beside it (rewriting it with update).
func (e Env) RunGolden(scripts []string, update bool) []GoldenResult {
	var res []GoldenResult
	for _, path := range scripts {
		src, err := os.ReadFile(path)
		if err != nil {
			res = append(res, GoldenResult{Script: path, Diff: err.Error() + "\n"})
			continue
		}
		var buf bytes.Buffer
		dir, _ := os.Getwd()
		e.RunScript(filepath.Base(path), string(src), "", &buf, &buf, true)
		_ = os.Chdir(dir)
		// In virtual time the output is the same bytes on every run
		// (report lines included: blk.CostModel), so gio's own golden
		// files need no filter; Normalize is for comparing with qemu-io.
		got := buf.String()
		outPath := strings.TrimSuffix(path, ".gio") + ".out"
		if update {
			err := os.WriteFile(outPath, []byte(got), 0o644)
			res = append(res, GoldenResult{Script: path, Passed: err == nil})
			continue
		}
		want, err := os.ReadFile(outPath)
		if errors.Is(err, fs.ErrNotExist) {
			res = append(res, GoldenResult{Script: path, Diff: fmt.Sprintf(
				"%s does not exist: \"gio test -update %s\" writes it from this run\n", outPath, path)})
			continue
		}
		if err != nil {
			res = append(res, GoldenResult{Script: path, Diff: err.Error() + "\n"})
			continue
		}
		if string(want) == got {
			res = append(res, GoldenResult{Script: path, Passed: true})
			continue
		}
		res = append(res, GoldenResult{Script: path, Diff: UnifiedDiff(outPath, path+" (actual)", string(want), got)})
	}
	return res
}

// FindScripts expands paths (files or directories) into .gio files,
// filtered by the run regexp (may be nil).
func FindScripts(paths []string, run *regexp.Regexp) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		m, _ := filepath.Glob(filepath.Join(p, "*.gio"))
		sort.Strings(m)
		out = append(out, m...)
	}
	if run == nil {
		return out, nil
	}
	var f []string
	for _, p := range out {
		if run.MatchString(filepath.Base(p)) {
			f = append(f, p)
		}
	}
	return f, nil
}

// UnifiedDiff returns a small line-based unified diff of want and got,
// with 3 lines of context, hunks headed by the expected file's line.
func UnifiedDiff(wantName, gotName, want, got string) string {
	a := splitLines(want)
	b := splitLines(got)
	// LCS table; scripts are small.
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte
		text string
		ai   int
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, op{' ', a[i], i})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			// Removals before additions, as diff -u prints them.
			ops = append(ops, op{'-', a[i], i})
			i++
		default:
			ops = append(ops, op{'+', b[j], i})
			j++
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", wantName, gotName)
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		start := max(0, k-3)
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run-end > 6 || run == len(ops) {
				end = min(end+3, len(ops))
				break
			}
			end = run
		}
		fmt.Fprintf(&sb, "@@ %s:%d @@\n", wantName, ops[start].ai+1)
		for _, o := range ops[start:end] {
			t := o.text
			if !strings.HasSuffix(t, "\n") {
				t += "\n\\ No newline at end of file\n"
			}
			sb.WriteString(string(o.kind) + t)
		}
		k = end
	}
	return sb.String()
}

// splitLines splits text into lines that keep their newline; the empty
// piece after a final newline is not a line (it would show as a
// spurious "No newline at end of file").
func splitLines(text string) []string {
	ls := strings.SplitAfter(text, "\n")
	if ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	return ls
}
