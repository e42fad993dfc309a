package timeline

import (
	"strings"
	"testing"

	"gio/trace"
)

func TestRender(t *testing.T) {
	in := `{"name":"process_name","ph":"M","ts":0,"pid":1,"tid":0,"args":{"name":"nodes"}}
{"name":"thread_name","ph":"M","ts":0,"pid":1,"tid":1,"args":{"name":"blkdebug"}}
{"name":"aio_write </script><b>","cat":"request","ph":"B","ts":0,"pid":2,"tid":1}
{"name":"aio_write 0 4096","cat":"request","ph":"B","ts":1,"pid":2,"tid":2}
{"name":"write","cat":"req","ph":"b","ts":1,"pid":1,"tid":1,"id":1,"args":{"req":1,"range":"0x0+0x1000"}}
{"name":"waits for I/O","cat":"yield","ph":"X","ts":1,"dur":0.5,"pid":2,"tid":2}
{"name":"suspend","cat":"mark","ph":"i","ts":2,"pid":1,"tid":1,"s":"t","args":{"req":1,"tag":"A","event":"pwritev"}}
{"name":"suspended at 'A'","cat":"yield","ph":"B","ts":2,"pid":2,"tid":1}
{"name":"wait","cat":"mark","ph":"i","ts":3,"pid":1,"tid":1,"s":"t","args":{"req":2,"waits_for":1,"overlap":"0x0+0x1000"}}
{"name":"error","cat":"mark","ph":"i","ts":4,"pid":1,"tid":1,"s":"t","args":{"req":1,"where":"injected","error":"EIO"}}
{"ph":"E","ts":5,"pid":2,"tid":1}
{"cat":"req","ph":"e","ts":5,"pid":1,"tid":1,"id":1}
{"ph":"E","ts":100005,"pid":2,"tid":1,"args":{"error":"Input/output error"}}
`
	evs, err := trace.Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	page := string(Render(evs, "t.jsonl"))
	for _, want := range []string{
		`class="arrow" data-req="2"`, `#2 waits for #1 (overlap 0x0+0x1000)`,
		`class="mark suspend"`, `class="mark error"`, `class="bar y-susp"`, `class="bar req failed"`,
		`: write 0x0+0x1000 on blkdebug`, `100.005 ms`, `(unfinished)`,
		`\u003c/script\u003e\u003cb\u003e`, `&lt;/script&gt;&lt;b&gt;`, `#2 aio_write 0 4096`,
		`class="bar y-io"`, `#2 aio_write 0 4096: waits for I/O (at 1.000 µs)`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "</script><b>") {
		t.Errorf("a command line reached the page unescaped")
	}
	if strings.Count(page, "<script") != 2 || strings.Contains(page, "src=") || strings.Contains(page, "href=") {
		t.Errorf("the page loads something or has unexpected scripts")
	}
}

// FuzzRender: whatever trace.Read accepts renders without panicking.
func FuzzRender(f *testing.F) {
	f.Add([]byte(`{"name":"x","cat":"request","ph":"B","ts":0,"pid":2,"tid":1}
{"name":"wait","ph":"i","ts":1,"pid":1,"tid":1,"args":{"req":1,"waits_for":1}}
{"name":"","cat":"req","ph":"e","ts":-5,"pid":1,"tid":1,"id":"7"}
{"name":"","ph":"E","ts":1e300,"pid":2,"tid":1}
{"name":"y","ph":"X","ts":2,"dur":-1e300,"pid":2,"tid":1}`))
	f.Add([]byte(`[{"name":"thread_name","ph":"M","ts":0,"pid":1,"tid":3,"args":{"name":7}},{"name":"b","cat":"flush","ph":"b","ts":2,"pid":1,"tid":3,"id":1}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := trace.Read(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		Render(evs, "fuzz")
	})
}

// TestRenderOldFormat: traces written before 2026-12-02 named request
// lanes with thread_name events; their lanes keep those names.
func TestRenderOldFormat(t *testing.T) {
	in := `{"name":"thread_name","ph":"M","ts":0,"pid":2,"tid":1,"args":{"name":"#1 old lane name"}}
{"name":"w","cat":"request","ph":"B","ts":0,"pid":2,"tid":1,"args":{"req":1}}
{"name":"","cat":"request","ph":"E","ts":1,"pid":2,"tid":1}
`
	evs, err := trace.Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if page := string(Render(evs, "old.jsonl")); !strings.Contains(page, "#1 old lane name") || strings.Contains(page, "#1 w<") {
		t.Errorf("the request lane is not named by its thread_name")
	}
}

// TestRenderFolded: a plain write written as a folded chain (three
// complete slices, its yield in the request's args) renders as its seven
// events did.
func TestRenderFolded(t *testing.T) {
	const meta = `{"name":"thread_name","ph":"M","ts":0,"pid":1,"tid":1,"args":{"name":"raw"}}
{"name":"thread_name","ph":"M","ts":0,"pid":1,"tid":2,"args":{"name":"file"}}
`
	folded := meta + `{"name":"write 0 4096","cat":"request","ph":"X","ts":0,"dur":103.815,"pid":2,"tid":1,"args":{"yield":"waits for I/O"}}
{"name":"write","cat":"req","ph":"X","ts":0,"dur":103.815,"pid":1,"tid":1,"id":1,"args":{"req":1,"range":"0x0+0x1000"}}
{"name":"write","cat":"req","ph":"X","ts":0,"dur":103.815,"pid":1,"tid":2,"id":2,"args":{"req":1,"parent":1,"range":"0x0+0x1000"}}
`
	unfolded := meta + `{"name":"write 0 4096","cat":"request","ph":"B","ts":0,"pid":2,"tid":1}
{"name":"write","cat":"req","ph":"b","ts":0,"pid":1,"tid":1,"id":1,"args":{"req":1,"range":"0x0+0x1000"}}
{"name":"write","cat":"req","ph":"b","ts":0,"pid":1,"tid":2,"id":2,"args":{"req":1,"parent":1,"range":"0x0+0x1000"}}
{"name":"waits for I/O","cat":"yield","ph":"X","ts":0,"dur":103.815,"pid":2,"tid":1}
{"cat":"req","ph":"e","ts":103.815,"pid":1,"tid":2,"id":2}
{"cat":"req","ph":"e","ts":103.815,"pid":1,"tid":1,"id":1}
{"ph":"E","ts":103.815,"pid":2,"tid":1}
`
	var pages [2]string
	for i, in := range []string{folded, unfolded} {
		evs, err := trace.Read(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if err := trace.Check(evs); err != nil {
			t.Fatal(err)
		}
		pages[i] = string(Render(evs, "w.jsonl"))
	}
	if pages[0] != pages[1] {
		t.Errorf("the folded trace renders differently")
	}
	if !strings.Contains(pages[0], "waits for I/O") {
		t.Errorf("no yield on the page")
	}
}
