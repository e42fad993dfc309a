package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Event is one event object of a trace file, as Writer writes it.
type Event struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Ts   float64        `json:"ts"`            // microseconds
	Dur  float64        `json:"dur,omitempty"` // a complete ("X") slice's length
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	ID   any            `json:"id,omitempty"`
	S    string         `json:"s,omitempty"`
	Args map[string]any `json:"args,omitempty"`
}

// Arg returns the argument k rendered as text ("" if absent).
func (e *Event) Arg(k string) string { return text(e.Args[k]) }

// text renders a decoded JSON value (a string, number or bool) as text.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(v)
}

// IntArg returns the integer argument k (0 if absent or not a number).
func (e *Event) IntArg(k string) int {
	v, _ := e.Args[k].(float64)
	return int(v)
}

// IDString returns the event's id as text.
func (e *Event) IDString() string { return text(e.ID) }

// ErrMalformed is wrapped by every error Read returns for bad input.
var ErrMalformed = errors.New("malformed trace")

// maxTraceBytes bounds what Read accepts, so that a huge or endless input
// fails instead of exhausting memory.
const maxTraceBytes = 1 << 30

// Read parses a trace in either format: a JSON array of events (a missing
// closing bracket is tolerated, as Chrome does for a trace cut short), an
// object with a "traceEvents" array, or JSON lines.
func Read(r io.Reader) ([]Event, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxTraceBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTraceBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, maxTraceBytes)
	}
	trim := bytes.TrimSpace(data)
	if len(trim) == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrMalformed)
	}
	var evs []Event
	switch trim[0] {
	case '[':
		evs, err = readArray(trim)
	case '{':
		var obj struct {
			TraceEvents *[]Event `json:"traceEvents"`
		}
		if json.Unmarshal(trim, &obj) == nil && obj.TraceEvents != nil {
			evs = *obj.TraceEvents
		} else {
			evs, err = readLines(trim)
		}
	default:
		return nil, fmt.Errorf("%w: not JSON (starts with %q)", ErrMalformed, firstLine(trim))
	}
	if err != nil {
		return nil, err
	}
	for i := range evs {
		if evs[i].Ph == "" {
			return nil, fmt.Errorf("%w: event %d has no \"ph\"", ErrMalformed, i+1)
		}
	}
	return unfold(evs), nil
}

// unfold returns evs with each folded chain (see Writer) as the events
// it stands for: a complete slice of a request ("ph":"X", cat
// "request") or of a span (cat "req") becomes its begin ("B" or "b")
// where it is, and its end ("E" or "e") comes, with those of the rest
// of its chain, right after the chain's innermost event, in the reverse
// order of the begins. A chain is a run of such slices, with perhaps a
// yield's complete slice last, of one request, each lying inside the one
// before; metadata events between them (a lane's name, given when the
// lane first appears) do not break it, and go before the next event. A
// request slice that heads a chain may hold its yield as its "yield" arg
// (the reason; the yield lasted as long as the request): it becomes the
// chain's innermost slice. A span's slice that continues a chain and has
// no "req" arg takes its request from the slice before it, and its
// parent, if that is a span's, from its id. Readers then
// see every request and span as a begin and an end, as in traces
// written before chains were folded, which read as they are.
func unfold(evs []Event) []Event {
	type link struct {
		ev    *Event
		req   int
		ts    float64
		end   float64
		leaf  bool // a yield: nothing goes inside
		child bool
		yield string // a request's yield, written as its "yield" arg
	}
	var chain []link
	var meta []Event // metadata events met inside a chain
	out := evs[:0:0]
	closeChain := func() {
		if len(chain) > 0 && chain[0].yield != "" { // the innermost
			c := chain[0]
			out = append(out, Event{Name: c.yield, Cat: "yield", Ph: "X", Ts: c.ts, Dur: c.ev.Dur, Pid: c.ev.Pid, Tid: c.ev.Tid})
		}
		for i := len(chain) - 1; i >= 0; i-- {
			c := chain[i]
			if c.leaf {
				continue
			}
			e := Event{Ph: "E", Ts: c.end, Pid: c.ev.Pid, Tid: c.ev.Tid}
			if c.ev.Cat == "req" {
				e.Cat, e.Ph, e.ID = "req", "e", c.ev.ID
			}
			out = append(out, e)
		}
		chain = chain[:0]
	}
	for i := range evs {
		e := &evs[i]
		if e.Ph == "M" {
			if len(chain) > 0 { // the chain's or what follows it's
				meta = append(meta, *e)
			} else {
				out = append(out, *e)
			}
			continue
		}
		fold := e.Ph == "X" && (e.Cat == "request" || e.Cat == "req")
		yield := e.Ph == "X" && e.Cat == "yield"
		req := e.Tid
		_, hasReq := e.Args["req"]
		derived := fold && e.Cat == "req" && !hasReq // see below
		if e.Cat == "req" {
			req = e.IntArg("req")
		}
		var parent any // a derived span's parent
		end := e.End()
		if k := len(chain); k > 0 {
			top := &chain[k-1]
			if derived {
				req = top.req
			}
			if !(fold || yield) || top.leaf || top.child || req != top.req || e.Ts < top.ts || end > top.end ||
				yield && chain[0].yield != "" {
				closeChain()
				derived = false
			} else {
				top.child = true
				if top.ev.Cat == "req" {
					parent = top.ev.ID
				}
			}
			out = append(out, meta...)
			meta = meta[:0]
		} else {
			derived = false
		}
		if !fold && !(yield && len(chain) > 0) {
			out = append(out, *e)
			continue
		}
		out = append(out, *e)
		b := &out[len(out)-1]
		l := link{ev: e, req: req, ts: e.Ts, end: end, leaf: yield}
		if fold {
			b.Ph, b.Dur = "B", 0
			if e.Cat == "req" {
				b.Ph = "b"
			}
		}
		if derived { // its request and parent, as the writer left them out
			args := map[string]any{"req": float64(req)}
			if parent != nil {
				args["parent"] = parent
			}
			for k, v := range e.Args {
				args[k] = v
			}
			b.Args = args
		}
		if why, ok := e.Args["yield"].(string); ok && fold && e.Cat == "request" && len(chain) == 0 {
			l.yield = why
			b.Args = nil
			for k, v := range e.Args {
				if k != "yield" {
					if b.Args == nil {
						b.Args = map[string]any{}
					}
					b.Args[k] = v
				}
			}
		}
		chain = append(chain, l)
	}
	closeChain()
	return append(out, meta...)
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 20 {
		b = b[:20]
	}
	return string(b)
}

func readArray(data []byte) ([]Event, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	if _, err := d.Token(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var evs []Event
	for d.More() {
		var e Event
		if err := d.Decode(&e); err != nil {
			return nil, fmt.Errorf("%w: event %d: %v", ErrMalformed, len(evs)+1, err)
		}
		evs = append(evs, e)
	}
	// The closing bracket may be missing (a trace cut short); anything
	// else after the events is an error.
	tok, err := d.Token()
	switch {
	case err == io.EOF:
		return evs, nil
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	case tok != json.Delim(']'):
		return nil, fmt.Errorf("%w: unexpected %v after event %d", ErrMalformed, tok, len(evs))
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the closing bracket", ErrMalformed)
	}
	return evs, nil
}

func readLines(data []byte) ([]Event, error) {
	var evs []Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxTraceBytes)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, n, err)
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return evs, nil
}

// End returns the time a complete ("X") slice ends, Ts for any other
// event. It adds in whole nanoseconds (the writer's unit), so that the
// end equals the timestamp of an event written at that time.
func (e *Event) End() float64 {
	if e.Ph != "X" {
		return e.Ts
	}
	end := float64(math.Round(e.Ts*1000)+math.Round(e.Dur*1000)) / 1000
	if math.IsNaN(end) || math.IsInf(end, 0) { // a malformed trace
		return e.Ts
	}
	return end
}

// Check validates a trace's structure as Writer promises it: on each lane
// timestamps never go backwards (what follows a complete "X" slice comes
// no earlier than its end); every "X" on a request's lane lies inside
// the request's slice; every "B" has its "E" on the same lane
// and every async "b" its "e" (same category and id); every flow end "f"
// has its start "s"; every span's parent
// and request exist when it begins; every wait names a request that
// exists. It returns every problem found, joined.
func Check(evs []Event) error {
	type lane struct{ pid, tid int }
	var errs []error
	bad := func(i int, format string, a ...any) {
		errs = append(errs, fmt.Errorf("event %d: "+format, append([]any{i + 1}, a...)...))
	}
	last := map[lane]float64{}
	stacks := map[lane]int{}
	async := map[string]bool{}
	spans := map[string]bool{} // span ids (the span numbers)
	reqs := map[int]bool{}
	flows := map[string]bool{}
	for i := range evs {
		e := &evs[i]
		if e.Ph == "M" {
			continue
		}
		l := lane{e.Pid, e.Tid}
		if t, ok := last[l]; ok && e.Ts < t {
			bad(i, "ts %.3f before %.3f on lane %d/%d", e.Ts, t, e.Pid, e.Tid)
		}
		last[l] = e.End()
		switch e.Ph {
		case "B":
			if stacks[l] == 0 && e.Pid == pidRequests {
				reqs[e.Tid] = true
			}
			stacks[l]++
		case "X":
			if e.Dur < 0 {
				bad(i, "slice of negative duration %.3f on lane %d/%d", e.Dur, e.Pid, e.Tid)
			}
			if stacks[l] == 0 && e.Pid == pidRequests {
				bad(i, "slice outside its request on lane %d/%d", e.Pid, e.Tid)
			}
		case "E":
			if stacks[l] == 0 {
				bad(i, "end without begin on lane %d/%d", e.Pid, e.Tid)
				continue
			}
			stacks[l]--
		case "b":
			key := e.Cat + "/" + e.IDString()
			if async[key] {
				bad(i, "span %s begun twice", key)
			}
			async[key] = true
			if e.Cat == "req" {
				if p := e.IntArg("parent"); p != 0 && !spans[strconv.Itoa(p)] {
					bad(i, "span %s: parent span %d does not exist", key, p)
				}
				if r := e.IntArg("req"); r != 0 && !reqs[r] {
					bad(i, "span %s: request #%d was never submitted", key, r)
				}
				spans[e.IDString()] = true
			}
		case "e":
			key := e.Cat + "/" + e.IDString()
			if !async[key] {
				bad(i, "span %s ends without a begin", key)
			}
			delete(async, key)
		case "s":
			flows[e.IDString()] = true
		case "f":
			if !flows[e.IDString()] {
				bad(i, "flow %s ends without a start", e.IDString())
			}
		case "i":
			if e.Name == "wait" && !reqs[e.IntArg("waits_for")] {
				bad(i, "wait for request #%d that was never submitted", e.IntArg("waits_for"))
			}
		}
	}
	for l, d := range stacks {
		if d != 0 {
			errs = append(errs, fmt.Errorf("lane %d/%d: %d slices never end", l.pid, l.tid, d))
		}
	}
	for k := range async {
		errs = append(errs, fmt.Errorf("span %s never ends", k))
	}
	return errors.Join(errs...)
}
