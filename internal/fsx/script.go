package fsx

import (
	"fmt"
	"strings"
)

// Reproducer formats a failing sequence as a .gio script: comments that
// say what failed and how to replay it, then the lines that create and
// open the image, then the body. "gio run" replays it; "gio fsx -check"
// replays it under the model and prints the failure again.
func Reproducer(cfg Config, setup, body []string, f *Failure) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# gio fsx reproducer: seed %d, align %d, size %d", cfg.Seed, cfg.Align, cfg.Size)
	if cfg.NoSerialise {
		b.WriteString(", serialise=off")
	}
	b.WriteString("\n")
	if f != nil {
		fmt.Fprintf(&b, "# failure: %s\n", f)
	}
	b.WriteString("# replay: gio run FILE; check against the model: gio fsx -check FILE\n")
	for _, l := range setup {
		b.WriteString(l + "\n")
	}
	for _, l := range body {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// ParseScript splits a .gio script into its setup (the create and open
// lines before anything else) and its body. Comments and blank lines go.
func ParseScript(src string) (setup, body []string, err error) {
	for _, l := range strings.Split(src, "\n") {
		l = strings.TrimRight(l, "\r")
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		name := strings.Fields(t)[0]
		if len(body) == 0 && (name == "create" || name == "open") {
			setup = append(setup, l)
			continue
		}
		body = append(body, l)
	}
	if len(setup) == 0 {
		return nil, nil, fmt.Errorf("no create or open line before the first command")
	}
	return setup, body, nil
}
