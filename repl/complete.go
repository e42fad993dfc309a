package repl

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gio/blk"
	"gio/commands"
)

// completer is the interactive shell's tab completion (a
// readline.AutoCompleter): command names and aliases, the flags of the
// command being typed, option values (cache, discard and aio modes),
// blkdebug event names after break, breakpoint tags after resume,
// wait_break and remove_break, file paths (and scratch image names)
// after open and write -s, and subcommands with their flags and file
// names (trace start -f jsonl FILE).
type completer struct {
	s *commands.Session
}

// Do implements readline.AutoCompleter: the suffixes that complete the
// word before the cursor, and that word's length.
func (c *completer) Do(line []rune, pos int) ([][]rune, int) {
	cur, cands := c.complete(string(line[:pos]))
	out := make([][]rune, 0, len(cands))
	for _, w := range cands {
		suffix := w[len(cur):]
		// A directory, an option key waiting for its value and a child
		// prefix ("file.") go on without a space.
		if !strings.HasSuffix(w, "/") && !strings.HasSuffix(w, "=") && !strings.HasSuffix(w, ".") {
			suffix += " "
		}
		out = append(out, []rune(suffix))
	}
	return out, len([]rune(cur))
}

// complete returns the word being completed (the text after the last
// space of before) and the full words that could replace it, sorted.
func (c *completer) complete(before string) (string, []string) {
	words := commands.SplitLine(before)
	cur := ""
	if !strings.HasSuffix(before, " ") && len(words) > 0 {
		cur = words[len(words)-1]
		words = words[:len(words)-1]
	}
	if len(words) == 0 {
		return cur, matching(c.s.Table.Names(), cur)
	}
	cmd := c.s.Table.Lookup(words[0])
	if cmd == nil {
		return cur, nil
	}
	args := words[1:]
	// The value of an option that takes one (-t none, write -s FILE).
	if n := len(args); n > 0 && len(cmd.Flags) > 0 {
		if prev := args[n-1]; len(prev) >= 2 && prev[0] == '-' && prev[1] != '-' {
			if f := cmd.FlagFor(prev[len(prev)-1]); f != nil && f.Arg != "" {
				switch {
				case f.Path:
					return cur, c.paths(cur)
				case f.Arg == "options":
					return cur, c.options(f, cur)
				}
				return cur, matching(f.Values, cur)
			}
		}
	}
	if len(cmd.Subs) > 0 {
		return cur, c.sub(cmd, args, cur)
	}
	if strings.HasPrefix(cur, "-") {
		return cur, matching(flags(cmd), cur)
	}
	switch cmd.Name {
	case "help":
		if len(args) == 0 {
			return cur, matching(append(c.s.Table.Names(), "gio"), cur)
		}
	case "break":
		if len(args) == 0 {
			return cur, matching(blk.EventNames(), cur)
		}
	case "resume", "wait_break", "remove_break":
		if len(args) == 0 {
			return cur, matching(c.tags(), cur)
		}
	case "open", "bench":
		return cur, c.paths(cur)
	case "record":
		if len(args) == 0 {
			return cur, append(matching([]string{"off"}, cur), c.paths(cur)...)
		}
	}
	return cur, nil
}

// sub completes the words of a command with subcommands (trace): the
// subcommand first, then its flags, a flag's value, and file names.
func (c *completer) sub(cmd *commands.Command, args []string, cur string) []string {
	if len(args) == 0 {
		var names []string
		for _, sc := range cmd.Subs {
			names = append(names, sc.Name)
		}
		return matching(names, cur)
	}
	sc := cmd.SubFor(args[0])
	if sc == nil {
		return nil
	}
	if n := len(args); n > 1 {
		if prev := args[n-1]; len(prev) == 2 && prev[0] == '-' {
			if f := sc.FlagFor(prev[1]); f != nil && f.Arg != "" {
				if f.Path {
					return c.paths(cur)
				}
				return matching(f.Values, cur)
			}
		}
	}
	if strings.HasPrefix(cur, "-") {
		var fs []string
		for _, f := range sc.Flags {
			fs = append(fs, "-"+string(f.Letter))
		}
		return matching(fs, cur)
	}
	if sc.Paths {
		return c.paths(cur)
	}
	return nil
}

// flags lists a command's options as "-x" words, plus its gio-only
// option words (map -s).
func flags(cmd *commands.Command) []string {
	var fs []string
	for _, f := range cmd.Flags {
		fs = append(fs, "-"+string(f.Letter))
	}
	for _, g := range cmd.GioArgs {
		if strings.HasPrefix(g, "-") {
			fs = append(fs, g)
		}
	}
	return fs
}

// tags lists the open image's breakpoint tags.
func (c *completer) tags() []string {
	if c.s.Img == nil || c.s.Img.Root == nil {
		return nil
	}
	b := c.s.Img.Root.Breakpointer()
	if b == nil {
		return nil
	}
	return b.Tags()
}

// paths completes a file name, also after a protocol prefix
// (blkdebug::img, file:img); scratch images made by create count as
// names in the current directory.
func (c *completer) paths(cur string) []string {
	if strings.HasPrefix(cur, "json:") {
		return nil
	}
	prefix, name := "", cur
	if i := strings.LastIndexByte(cur, ':'); i >= 0 {
		prefix, name = cur[:i+1], cur[i+1:]
	}
	var cands []string
	if !strings.Contains(name, "/") {
		cands = append(cands, matching(c.s.ScratchNames(), name)...)
	}
	cands = append(cands, completePath(name)...)
	for i := range cands {
		cands[i] = prefix + cands[i]
	}
	return uniq(cands)
}

// completePath lists the directory entries that complete name; a
// directory ends in "/" so that completion can go on inside it. Hidden
// entries show only when name's last element starts with ".".
func completePath(name string) []string {
	dir, base := filepath.Split(name)
	d := dir
	if d == "" {
		d = "."
	}
	entries, err := os.ReadDir(d)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, base) || (strings.HasPrefix(n, ".") && !strings.HasPrefix(base, ".")) {
			continue
		}
		p := dir + n
		if st, err := os.Stat(filepath.Join(d, n)); err == nil && st.IsDir() {
			p += "/"
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// matching returns the words with the given prefix, sorted, each once.
func matching(words []string, prefix string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return uniq(out)
}

func uniq(s []string) []string {
	out := s[:0]
	seen := map[string]bool{}
	for _, w := range s {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// synonyms are words other programs use for a command, which no edit
// distance relates to it.
var synonyms = map[string]string{"exit": "quit", "bye": "quit", "logout": "quit"}

// contains reports whether w is one of ws.
func contains(ws []string, w string) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

// suggest returns the command name closest to a mistyped word, or "":
// the only command the word is a prefix of, else the nearest by edit
// distance (adjacent transpositions count once) within a distance that
// grows with the word's length. Aliases are never suggested.
func suggest(word string, names []string) string {
	w := strings.ToLower(word)
	if w == "" {
		return ""
	}
	if m, ok := synonyms[w]; ok && contains(names, m) {
		return m
	}
	var prefixed []string
	for _, n := range names {
		if strings.HasPrefix(n, w) {
			prefixed = append(prefixed, n)
		}
	}
	if len(prefixed) == 1 && len(w) >= 2 {
		return prefixed[0]
	}
	limit := 1
	switch {
	case len(w) >= 9:
		limit = 3
	case len(w) >= 5:
		limit = 2
	}
	best, bestD := "", limit+1
	for _, n := range names {
		if d := editDistance(w, n); d < bestD || (d == bestD && n < best) {
			best, bestD = n, d
		}
	}
	if bestD > limit {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and adjacent transpositions cost one each.
func editDistance(a, b string) int {
	n, m := len(a), len(b)
	d := make([][]int, n+1)
	for i := range d {
		d[i] = make([]int, m+1)
		d[i][0] = i
	}
	for j := 0; j <= m; j++ {
		d[0][j] = j
	}
	for i := 1; i <= n; i++ {
		for j := 1; j <= m; j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[n][m]
}

// options completes a driver option string (open -o, reopen -o,
// create -o): the piece after the last comma is a key, or a key's value
// after '='. Keys come from the drivers' option lists, following the
// driver each level names ("driver=raw,file.driver=blkdebug,file.")
// or, without one, the file driver for a child.
func (c *completer) options(f *commands.Flag, cur string) []string {
	head, piece := "", cur
	if i := strings.LastIndexByte(cur, ','); i >= 0 {
		head, piece = cur[:i+1], cur[i+1:]
	}
	given := map[string]string{}
	for _, kv := range strings.Split(head, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			given[k] = v
		}
	}
	var cands []string
	if f.Keys != nil {
		return fixedOptions(f.Keys, head, piece)
	}
	if k, v, ok := strings.Cut(piece, "="); ok {
		vals := c.optionValues(given, k)
		if n := k[strings.LastIndexByte(k, '.')+1:]; n == "filename" || n == "config" || n == "backing" {
			vals = c.paths(v)
		}
		for _, w := range matching(vals, v) {
			cands = append(cands, head+k+"="+w)
		}
		return cands
	}
	prefix := ""
	if i := strings.LastIndexByte(piece, '.'); i >= 0 {
		prefix = piece[:i+1]
	}
	for _, k := range matching(c.optionKeys(given, prefix), piece) {
		if !strings.HasSuffix(k, ".") {
			k += "="
		}
		cands = append(cands, head+k)
	}
	return cands
}

// optionLevel returns the driver of the node that option keys starting
// with prefix ("", "file.", "file.image.") configure, or nil when it is
// not known (a probed format).
func (c *completer) optionLevel(given map[string]string, prefix string) *blk.Driver {
	if c.s.Reg == nil {
		return nil
	}
	if d, ok := given[prefix+"driver"]; ok {
		return c.s.Reg.Lookup(d)
	}
	if prefix == "" {
		return nil
	}
	return c.s.Reg.Lookup("file")
}

// optionKeys lists the keys at prefix's level, prefix included.
func (c *completer) optionKeys(given map[string]string, prefix string) []string {
	keys := []string{prefix + "driver"}
	if prefix == "" {
		keys = append(keys, "read-only")
	}
	d := c.optionLevel(given, prefix)
	if d == nil || d.Format {
		keys = append(keys, prefix+"file.")
	}
	if d == nil || d.SupportsBacking {
		keys = append(keys, prefix+"backing.")
	}
	if d != nil {
		for _, o := range d.Options {
			keys = append(keys, prefix+o.Name)
		}
	}
	return keys
}

// optionValues lists the values worth completing for key.
func (c *completer) optionValues(given map[string]string, key string) []string {
	prefix, name := "", key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		prefix, name = key[:i+1], key[i+1:]
	}
	switch name {
	case "driver":
		var ns []string
		if c.s.Reg != nil {
			for _, d := range c.s.Reg.Drivers() {
				ns = append(ns, d.Name)
			}
		}
		return ns
	case "read-only":
		return blk.OnOff()
	}
	if d := c.optionLevel(given, prefix); d != nil {
		for _, o := range d.Options {
			if o.Name == name {
				return o.Values
			}
		}
	}
	return nil
}

// fixedOptions completes an option string whose keys are a fixed list.
func fixedOptions(keys []blk.Option, head, piece string) []string {
	var cands []string
	if k, v, ok := strings.Cut(piece, "="); ok {
		for _, o := range keys {
			if o.Name == k {
				for _, w := range matching(o.Values, v) {
					cands = append(cands, head+k+"="+w)
				}
			}
		}
		return cands
	}
	for _, o := range keys {
		if strings.HasPrefix(o.Name, piece) {
			cands = append(cands, head+o.Name+"=")
		}
	}
	sort.Strings(cands)
	return cands
}
