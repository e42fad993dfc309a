package commands

import (
	"fmt"
	"strconv"
	"strings"

	"gio/blk"
	"gio/internal/getopt"
)

// This file holds the requests command: what is in flight on each node
// of the open image, as a developer stopped at a breakpoint wants to see
// it (the same tracked-request state the serialisation code and the
// trace read).

const requestsHelp = `
 lists the requests in flight on each node of the image

 For each node (from the root down) and each request on it, oldest
 first: the request number and command, the range as the node sees it
 (aligned), whether it is serialising and its overlap range, its state
 (running, in the driver, waiting for #N, suspended at 'TAG'), whom it
 waits for and who waits for it.

 -v, -- also show each write's read-modify-write padding and the last
       debug event the request fired

`

func requestsCommand() *Command {
	return &Command{Name: "requests", Args: "[-v]",
		Oneline: "lists the requests in flight per node (gio only)", Help: requestsHelp,
		Flags: []Flag{{Letter: 'v'}}, MinArgs: 0, MaxArgs: 1, NeedsFile: true, Hidden: true, Family: "gio", Run: requestsCmd}
}

func requestsCmd(s *Session, name string, opts []getopt.Opt, args []string) error {
	verbose := len(opts) > 0
	seen := map[*blk.Node]bool{}
	count := map[string]int{}
	any := false
	var walk func(n *blk.Node)
	walk = func(n *blk.Node) {
		if seen[n] {
			return
		}
		seen[n] = true
		label := n.Name()
		count[label]++
		if k := count[label]; k > 1 {
			label += "#" + strconv.Itoa(k)
		}
		if reqs := n.Requests(); len(reqs) > 0 {
			any = true
			fmt.Fprintf(s.Out, "%s (align %d):\n", label, n.Limits().RequestAlignment)
			for _, r := range reqs {
				fmt.Fprintf(s.Out, "  %s\n", requestLine(r))
				if verbose {
					fmt.Fprintf(s.Out, "    %s\n", requestDetail(r))
				}
			}
		}
		for _, c := range n.Children() {
			walk(c.Node)
		}
	}
	walk(s.Img.Root)
	if !any {
		fmt.Fprintln(s.Out, "no requests in flight")
	}
	return nil
}

// requestLine is "#N command: op range[, serialising over range], state
// [, waited for by #M ...]".
func requestLine(r blk.RequestInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s 0x%x+0x%x", r.Name, r.Op, r.Off, r.Bytes)
	if r.Serialising {
		fmt.Fprintf(&b, ", serialising over 0x%x+0x%x", r.OverlapOff, r.OverlapLen)
	}
	b.WriteString(", " + r.State)
	if len(r.Waiters) > 0 {
		b.WriteString(", waited for by")
		for _, w := range r.Waiters {
			fmt.Fprintf(&b, " #%d", w)
		}
	}
	return b.String()
}

// requestDetail is the -v line: padding and last event.
func requestDetail(r blk.RequestInfo) string {
	var b strings.Builder
	switch {
	case r.PadHead == 0 && r.PadTail == 0:
		b.WriteString("no padding")
	default:
		fmt.Fprintf(&b, "rmw padding: head 0x%x, tail 0x%x", r.PadHead, r.PadTail)
		if r.PadMerge {
			b.WriteString(" (one buffer)")
		}
	}
	last := r.LastEvent
	if last == "" {
		last = "none"
	}
	fmt.Fprintf(&b, "; last event %s", last)
	return b.String()
}
