package repl

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
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
	// TraceFile, if set, is where RunScript writes a trace of the script
	// (commands.Session.StartTrace), in TraceFormat.
	TraceFile, TraceFormat string
}

// NewSession builds a session writing to out and errw on a fresh loop.
func (e Env) NewSession(out *StdioWriter, errw io.Writer, clock blk.Clock) *commands.Session {
	loop := blk.NewLoop(clock)
	s := commands.NewSession(out, errw, e.NewRegistry(out), loop)
	s.Flush = out.Flush
	return s
}

// lineErrWriter prefixes each stderr line with FILE:LINE: so that a
// script's failures point at their line.
type lineErrWriter struct {
	w    io.Writer
	file string
	line *int
	bol  bool
}

func (l *lineErrWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if l.bol {
			fmt.Fprintf(l.w, "%s:%d: ", l.file, *l.line)
			l.bol = false
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.w.Write(p)
			break
		}
		l.w.Write(p[:i+1])
		p = p[i+1:]
		l.bol = true
	}
	return n, nil
}

// scriptLines returns the executable lines of a .gio script with their
// line numbers: blank lines and lines starting with '#' are skipped.
func scriptLines(src string) (lines []string, numbers []int) {
	for i, l := range strings.Split(src, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		lines = append(lines, strings.TrimRight(l, "\r"))
		numbers = append(numbers, i+1)
	}
	return
}

// RunScript runs a .gio script the way qemu-io runs piped stdin, without
// prompts: before each line stdout is flushed and the loop delivers ready
// completions. stderr lines get a FILE:LINE: prefix when prefix is set.
// It returns whether every command succeeded.
func (e Env) RunScript(name, src string, image string, stdout, stderr io.Writer, prefix bool) bool {
	out := NewStdioWriter(stdout, false)
	lineNo := 0
	var errw io.Writer = stderr
	if prefix {
		errw = &lineErrWriter{w: stderr, file: name, line: &lineNo, bol: true}
	}
	s := e.NewSession(out, errw, blk.NewVirtualClock())
	defer s.Cleanup()
	if e.TraceFile != "" {
		if err := s.StartTrace(e.TraceFile, e.TraceFormat); err != nil {
			fmt.Fprintf(stderr, "gio: trace: %v\n", err)
			return false
		}
	}
	if image != "" && !s.OpenImage(image, commands.OpenOptions{}) {
		out.Flush()
		return false
	}
	lines, numbers := scriptLines(src)
	for i, l := range lines {
		if s.Quit {
			break
		}
		lineNo = numbers[i]
		out.Flush()
		s.Loop.RunPending()
		s.Execute(l)
	}
	out.Flush()
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
			res = append(res, GoldenResult{Script: path, Diff: err.Error()})
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
		if err != nil {
			res = append(res, GoldenResult{Script: path, Diff: err.Error()})
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
	a := strings.SplitAfter(want, "\n")
	b := strings.SplitAfter(got, "\n")
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
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			ops = append(ops, op{'+', b[j], i})
			j++
		default:
			ops = append(ops, op{'-', a[i], i})
			i++
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

var _ = bufio.NewReader
