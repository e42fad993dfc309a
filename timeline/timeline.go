// Package timeline renders a gio trace (package trace) as one
// self-contained HTML page: an inline SVG with a lane per block node and
// per request, spans as bars, waits as arrows from the waiting request to
// the request it waits for, breakpoints and injected errors as marks. A
// tooltip (SVG <title>) names every bar and mark; clicking one shows its
// request's command line in a panel. The page loads nothing: no network,
// no external script, no font.
//
// The time axis is not linear. A race is about the order of events, and
// a trace in virtual time mixes 100 µs I/Os with 100 ms sleeps, so every
// event gets its own step and the gap between two events grows with the
// logarithm of the time between them; the axis labels give the times.
package timeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"sort"
	"strings"

	"gio/trace"
)

const (
	laneH   = 22  // height of one row
	labelW  = 230 // width of the lane labels
	stepX   = 7   // horizontal step between two events at the same time
	topPad  = 34
	markH   = 14 // strip above a node's bars where its marks go
	maxGapX = 90
)

type laneKey struct{ pid, tid int }

type bar struct {
	x0, x1 float64
	row    int // sub-row within the lane
	label  string
	tip    string
	class  string
	req    int
}

type mark struct {
	x     float64
	lane  laneKey
	kind  string
	tip   string
	req   int
	row   int
	label string
}

type arrow struct {
	x        float64
	from, to int // request numbers
	tip      string
}

// Render returns the page for the events of a trace read from title.
func Render(evs []trace.Event, title string) []byte {
	names := map[laneKey]string{}
	var nodeLanes, reqLanes []laneKey
	seen := map[laneKey]bool{}
	addLane := func(k laneKey) {
		if seen[k] {
			return
		}
		seen[k] = true
		if k.pid == 1 {
			nodeLanes = append(nodeLanes, k)
		} else {
			reqLanes = append(reqLanes, k)
		}
	}
	// x positions: one step per event, wider across time gaps. A
	// complete ("X") slice takes a second step, for its end (xe).
	xs := make([]float64, len(evs))
	xe := map[int]float64{}
	x, lastTs := 0.0, math.Inf(-1)
	var ticks []struct {
		x  float64
		ts float64
	}
	lastTickX := -1e9
	step := func(ts float64) float64 {
		if ts != lastTs {
			if !math.IsInf(lastTs, -1) {
				dt := ts - lastTs
				x += stepX + math.Min(maxGapX, 18*math.Log10(1+math.Max(dt, 0)))
			}
			lastTs = ts
			if x-lastTickX > 70 {
				ticks = append(ticks, struct {
					x  float64
					ts float64
				}{x, ts})
				lastTickX = x
			}
		} else {
			x += stepX
		}
		return x
	}
	for i := range evs {
		e := &evs[i]
		if e.Ph == "M" {
			if e.Name == "thread_name" && e.Tid != 0 {
				names[laneKey{e.Pid, e.Tid}] = e.Arg("name")
				addLane(laneKey{e.Pid, e.Tid})
			}
			continue
		}
		addLane(laneKey{e.Pid, e.Tid})
		xs[i] = step(e.Ts)
		if e.Ph == "X" {
			xe[i] = step(e.End())
		}
	}
	width := x + 40

	// Bars and marks.
	bars := map[laneKey][]*bar{}
	var marks []mark
	var arrows []arrow
	// A request's lane and its name: "#N" and the name of its outermost
	// slice, the command line (older traces named the lanes with
	// thread_name events instead).
	reqName := map[int]string{}
	for k, n := range names {
		if k.pid == 2 {
			reqName[k.tid] = n
		}
	}
	for i := range evs {
		e := &evs[i]
		k := laneKey{e.Pid, e.Tid}
		if e.Pid == 2 && e.Ph == "B" && e.Cat != "yield" && names[k] == "" {
			names[k] = fmt.Sprintf("#%d %s", e.Tid, e.Name)
			reqName[e.Tid] = names[k]
		}
	}
	type open struct {
		b   *bar
		key laneKey
	}
	asyncOpen := map[string]open{}
	stacks := map[laneKey][]*bar{}
	for i := range evs {
		e := &evs[i]
		k := laneKey{e.Pid, e.Tid}
		switch e.Ph {
		case "B":
			depth := len(stacks[k])
			b := &bar{x0: xs[i], x1: -1, row: min(depth, 1), label: e.Name, req: e.Tid, class: "req"}
			if e.Cat == "yield" {
				b.class = yieldClass(e.Name)
				b.tip = fmt.Sprintf("%s: %s (at %s)", reqName[e.Tid], e.Name, usec(e.Ts))
			} else {
				b.tip = fmt.Sprintf("%s submitted at %s", reqName[e.Tid], usec(e.Ts))
			}
			stacks[k] = append(stacks[k], b)
			bars[k] = append(bars[k], b)
		case "X": // a slice with nothing inside it: a yield, as gio writes them
			b := &bar{x0: xs[i], x1: xe[i], row: min(len(stacks[k]), 1), label: e.Name, req: e.Tid, class: "req"}
			if e.Cat == "yield" {
				b.class = yieldClass(e.Name)
			}
			b.tip = fmt.Sprintf("%s: %s (at %s)", reqName[e.Tid], e.Name, usec(e.Ts))
			bars[k] = append(bars[k], b)
		case "E":
			st := stacks[k]
			if len(st) == 0 {
				continue
			}
			b := st[len(st)-1]
			stacks[k] = st[:len(st)-1]
			b.x1 = xs[i]
			if errText := e.Arg("error"); errText != "" {
				b.class += " failed"
				b.tip += "; failed: " + errText
				marks = append(marks, mark{x: xs[i], lane: k, kind: "error", tip: reqName[e.Tid] + " failed: " + errText, req: e.Tid})
			} else if b.class == "req" {
				b.tip += fmt.Sprintf(", completed at %s", usec(e.Ts))
			}
		case "b":
			req := e.IntArg("req")
			b := &bar{x0: xs[i], x1: -1, req: req, class: "span"}
			if e.Cat == "flush" {
				b.class = "flush"
				b.label = "flush"
				b.tip = fmt.Sprintf("%s: flush of %s", reqName[req], names[k])
			} else {
				b.label = fmt.Sprintf("#%d %s %s", req, e.Name, e.Arg("range"))
				b.tip = fmt.Sprintf("%s: %s %s on %s", reqName[req], e.Name, e.Arg("range"), names[k])
			}
			asyncOpen[e.Cat+"/"+e.IDString()] = open{b, k}
			bars[k] = append(bars[k], b)
		case "e":
			key := e.Cat + "/" + e.IDString()
			if o, ok := asyncOpen[key]; ok {
				o.b.x1 = xs[i]
				if e.Arg("unfinished") == "true" {
					o.b.tip += " (unfinished)"
				}
				delete(asyncOpen, key)
			}
		case "i":
			req := e.IntArg("req")
			m := mark{x: xs[i], lane: k, req: req, kind: "event", tip: e.Name}
			switch e.Name {
			case "wait":
				to := e.IntArg("waits_for")
				arrows = append(arrows, arrow{x: xs[i], from: req, to: to,
					tip: fmt.Sprintf("#%d waits for #%d (overlap %s)", req, to, e.Arg("overlap"))})
				m.kind, m.tip = "wait", arrows[len(arrows)-1].tip
			case "suspend":
				m.kind, m.label = "suspend", e.Arg("tag")
				m.tip = fmt.Sprintf("#%d suspended at '%s' (%s)", req, e.Arg("tag"), e.Arg("event"))
			case "resume":
				m.kind, m.label = "resume", e.Arg("tag")
				m.tip = fmt.Sprintf("#%d resumed ('%s')", req, e.Arg("tag"))
			case "break":
				m.kind, m.label = "break", e.Arg("tag")
				m.tip = fmt.Sprintf("break %s %s", e.Arg("event"), e.Arg("tag"))
			case "error":
				m.kind = "error"
				m.tip = fmt.Sprintf("#%d: %s error %s at %s", req, e.Arg("where"), e.Arg("error"), e.Arg("range"))
			case "rule":
				m.kind = "rule"
				m.tip = fmt.Sprintf("#%d: rule fired on %s: %s", req, e.Arg("event"), e.Arg("rule"))
			case "serialising":
				m.kind = "serial"
				m.tip = fmt.Sprintf("#%d serialising, overlap %s", req, e.Arg("overlap"))
			default:
				m.tip = fmt.Sprintf("#%d: event %s", req, e.Name)
			}
			m.tip += " at " + usec(e.Ts)
			marks = append(marks, m)
		}
	}
	for _, st := range stacks {
		for _, b := range st {
			b.x1 = width - 20
			b.tip += " (unfinished)"
		}
	}
	for _, o := range asyncOpen {
		o.b.x1 = width - 20
		o.b.tip += " (unfinished)"
	}

	// Sub-rows on node lanes: spans that overlap in x take the first row
	// free at their start.
	rows := map[laneKey]int{}
	for _, k := range nodeLanes {
		var ends []float64
		for _, b := range bars[k] {
			r := 0
			for r < len(ends) && ends[r] > b.x0 {
				r++
			}
			if r == len(ends) {
				ends = append(ends, 0)
			}
			ends[r] = math.Max(b.x1, b.x0+2)
			b.row = r
		}
		rows[k] = max(1, len(ends))
	}
	for _, k := range reqLanes {
		rows[k] = 2
	}
	sort.Slice(nodeLanes, func(i, j int) bool { return nodeLanes[i].tid < nodeLanes[j].tid })
	sort.Slice(reqLanes, func(i, j int) bool { return reqLanes[i].tid < reqLanes[j].tid })
	laneY := map[laneKey]float64{}
	y := float64(topPad)
	var layout []laneKey
	header := func(text string) {
		layout = append(layout, laneKey{-1, int(y)})
		names[laneKey{-1, int(y)}] = text
		y += laneH
	}
	header("nodes")
	for _, k := range nodeLanes {
		laneY[k] = y
		layout = append(layout, k)
		y += markH + float64(rows[k]*laneH) + 4
	}
	header("requests")
	for _, k := range reqLanes {
		laneY[k] = y
		layout = append(layout, k)
		y += float64(rows[k]*laneH/2) + 8
	}
	height := y + 10
	reqY := func(req int) (float64, bool) {
		yy, ok := laneY[laneKey{2, req}]
		return yy, ok
	}

	var b bytes.Buffer
	esc := html.EscapeString
	fmt.Fprintf(&b, page1, esc(title))
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f">`+"\n", labelW+width, height)
	b.WriteString(`<defs><marker id="ah" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#c0392b"/></marker></defs>` + "\n")
	// Axis.
	fmt.Fprintf(&b, `<g class="axis"><line x1="%d" y1="%d" x2="%.0f" y2="%d"/>`, labelW, topPad-6, labelW+width, topPad-6)
	for _, t := range ticks {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.0f" class="grid"/><text x="%.1f" y="%d">%s</text>`,
			labelW+t.x, topPad-10, labelW+t.x, height, labelW+t.x+2, topPad-12, esc(usec(t.ts)))
	}
	b.WriteString("</g>\n")
	// Lanes.
	for i, k := range layout {
		if k.pid == -1 {
			fmt.Fprintf(&b, `<text class="hdr" x="6" y="%d">%s</text>`+"\n", k.tid+15, esc(names[k]))
			continue
		}
		h := markH + float64(rows[k]*laneH)
		if k.pid == 2 {
			h = float64(rows[k]*laneH/2) + 4
		}
		cls := "lane"
		if i%2 == 0 {
			cls = "lane alt"
		}
		fmt.Fprintf(&b, `<rect class="%s" x="0" y="%.0f" width="%.0f" height="%.0f"/>`, cls, laneY[k]-2, labelW+width, h+2)
		ty := laneY[k] + 14
		if k.pid == 1 {
			ty += markH
		}
		fmt.Fprintf(&b, `<text class="lname" x="6" y="%.0f"><title>%s</title>%s</text>`+"\n", ty, esc(names[k]), esc(shorten(names[k], 30)))
	}
	// Bars.
	for _, k := range layout {
		if k.pid == -1 {
			continue
		}
		for _, br := range bars[k] {
			yy := laneY[k] + markH + float64(br.row*laneH)
			hh := float64(laneH - 4)
			if k.pid == 2 {
				yy = laneY[k] + float64(br.row*6)
				hh = float64(laneH - 4 - br.row*6)
			}
			w := math.Max(br.x1-br.x0, 3)
			fmt.Fprintf(&b, `<g class="bar %s" data-req="%d"><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="2"/>`,
				br.class, br.req, labelW+br.x0, yy, w, hh)
			if k.pid == 1 && w > 60 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`, labelW+br.x0+3, yy+13, esc(shorten(br.label, int(w/6.5))))
			}
			fmt.Fprintf(&b, `<title>%s</title></g>`+"\n", esc(br.tip))
		}
	}
	// Arrows: from the waiting request's lane to the lane of the request
	// it waits for, at the moment it starts waiting.
	for _, a := range arrows {
		y0, ok0 := reqY(a.from)
		y1, ok1 := reqY(a.to)
		if !ok0 || !ok1 {
			continue
		}
		x0 := labelW + a.x
		y0 += 8
		y1 += 8
		fmt.Fprintf(&b, `<g class="arrow" data-req="%d"><path d="M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f" marker-end="url(#ah)"/><title>%s</title></g>`+"\n",
			a.from, x0, y0, x0+30, y0, x0+30, y1, x0+4, y1, esc(a.tip))
	}
	// Marks.
	for _, m := range marks {
		yy := laneY[m.lane] + laneH/2 - 2
		if m.lane.pid == 1 {
			yy = laneY[m.lane] + 2 // the strip above the node's bars
		}
		x := labelW + m.x
		var shape string
		switch m.kind {
		case "suspend":
			shape = fmt.Sprintf(`<path d="M%.1f,%.1f l6,-9 l-12,0z"/>`, x, yy+4)
		case "resume":
			shape = fmt.Sprintf(`<path d="M%.1f,%.1f l6,9 l-12,0z"/>`, x, yy-4)
		case "break":
			shape = fmt.Sprintf(`<path d="M%.1f,%.1f v-14 l8,3 l-8,3"/>`, x, yy+7)
		case "error":
			shape = fmt.Sprintf(`<path d="M%.1f,%.1f l8,8 m0,-8 l-8,8" />`, x-4, yy-4)
		case "wait":
			shape = fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="3"/>`, x, yy)
		default:
			shape = fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="2" height="10"/>`, x-1, yy-5)
		}
		label := ""
		if m.label != "" {
			label = fmt.Sprintf(`<text x="%.1f" y="%.1f">%s</text>`, x+5, yy-6, esc(m.label))
		}
		fmt.Fprintf(&b, `<g class="mark %s" data-req="%d">%s%s<title>%s</title></g>`+"\n", m.kind, m.req, shape, label, esc(m.tip))
	}
	b.WriteString("</svg>\n")
	// The request table the click handler reads: number -> command line.
	// json.Marshal escapes <, > and &, so the table cannot end the
	// script element early whatever a command line holds.
	table := map[string]string{}
	for r, n := range reqName {
		table[fmt.Sprint(r)] = n
	}
	js, _ := json.Marshal(table)
	b.WriteString(`<script type="application/json" id="reqs">`)
	b.Write(js)
	b.WriteString("</script>\n")
	b.WriteString(page2)
	return b.Bytes()
}

func yieldClass(why string) string {
	switch {
	case strings.HasPrefix(why, "suspended"):
		return "y-susp"
	case strings.HasPrefix(why, "waits for I/O"):
		return "y-io"
	case strings.HasPrefix(why, "waits for"):
		return "y-wait"
	case strings.HasPrefix(why, "injected"):
		return "y-err"
	}
	return "y-other"
}

func shorten(s string, n int) string {
	if n < 4 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// usec renders a trace timestamp (microseconds) readably.
func usec(ts float64) string {
	switch {
	case ts >= 1e6:
		return fmt.Sprintf("%.3f s", ts/1e6)
	case ts >= 1e3:
		return fmt.Sprintf("%.3f ms", ts/1e3)
	}
	return fmt.Sprintf("%.3f µs", ts)
}

const page1 = `<!DOCTYPE html>
<html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>gio timeline: %s</title>
<style>
body{font:12px monospace;margin:0;background:#fff;color:#222}
#info{position:sticky;top:0;left:0;background:#f4f4f4;border-bottom:1px solid #ccc;padding:6px 10px;min-height:16px;z-index:1}
#wrap{overflow-x:auto}
svg text{font:11px monospace;fill:#222}
.axis line{stroke:#999}.axis .grid{stroke:#eee}.axis text{fill:#666}
.lane{fill:#fff}.lane.alt{fill:#f7f9fc}
.hdr{font-weight:bold;fill:#555}
.bar rect{stroke:#333;stroke-width:.5;cursor:pointer}
.bar.span rect{fill:#8fb8e8}.bar.flush rect{fill:#b6d7a8}
.bar.req rect{fill:#d9e2ec}.bar.failed rect{fill:#f4b6b6}
.bar.y-wait rect{fill:#f5b041}.bar.y-susp rect{fill:#e74c3c}.bar.y-io rect{fill:#aab7b8}
.bar.y-err rect{fill:#c39bd3}.bar.y-other rect{fill:#f9e79f}
.arrow path{fill:none;stroke:#c0392b;stroke-width:1.5;cursor:pointer}
.mark{cursor:pointer}
.mark.suspend path{fill:#e74c3c}.mark.resume path{fill:#27ae60}
.mark.break path{fill:#e74c3c;stroke:#922;stroke-width:1}
.mark.error path{stroke:#c00;stroke-width:2.5}
.mark.wait circle{fill:#c0392b}.mark.event rect{fill:#7d3c98}.mark.rule rect{fill:#d35400}.mark.serial rect{fill:#1f618d}
.sel rect,.sel path{stroke:#000!important;stroke-width:2!important}
#legend span{display:inline-block;padding:0 6px;margin-right:4px;border:1px solid #999}
</style></head><body>
<div id="info">click a bar or mark to see its request's command line</div>
<div id="legend" style="padding:4px 10px"><span style="background:#8fb8e8">request on node</span><span style="background:#d9e2ec">request</span><span style="background:#f5b041">waits for a request</span><span style="background:#e74c3c">suspended</span><span style="background:#aab7b8">in the driver</span><span style="background:#b6d7a8">flush</span> red arrows: waits</div>
<div id="wrap">
`

const page2 = `</div>
<script>
(function(){
var reqs=JSON.parse(document.getElementById('reqs').textContent);
var info=document.getElementById('info');
document.querySelector('svg').addEventListener('click',function(ev){
  var g=ev.target.closest('[data-req]');
  document.querySelectorAll('.sel').forEach(function(e){e.classList.remove('sel')});
  if(!g){return}
  var r=g.getAttribute('data-req');
  document.querySelectorAll('[data-req="'+r+'"]').forEach(function(e){e.classList.add('sel')});
  var t=g.querySelector('title');
  info.textContent=(reqs[r]||('#'+r))+'  —  '+(t?t.textContent:'');
});
})();
</script>
</body></html>
`
