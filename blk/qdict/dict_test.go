package qdict

import (
	"reflect"
	"testing"
)

func TestBasics(t *testing.T) {
	var d Dict // the zero value works
	d.Set("b", "1")
	d.Set("a", "2")
	d.Set("b", "3") // keeps its position
	if got := d.Keys(); !reflect.DeepEqual(got, []string{"b", "a"}) {
		t.Fatalf("Keys = %q", got)
	}
	if v, ok := d.Get("b"); v != "3" || !ok {
		t.Fatalf("Get = %q %v", v, ok)
	}
	c := d.Clone()
	if !d.Del("b") || d.Del("b") || d.Len() != 1 {
		t.Fatalf("Del misbehaves: %q", d.Keys())
	}
	if c.Len() != 2 || !c.Has("b") {
		t.Fatal("Clone shares storage")
	}
	if v, ok := d.Get("a"); v != "2" || !ok {
		t.Fatalf("index stale after Del: %q %v", v, ok)
	}
	var nilDict *Dict
	if nilDict.Len() != 0 || nilDict.Has("x") || nilDict.Keys() != nil || nilDict.Clone().Len() != 0 {
		t.Fatal("nil Dict not empty")
	}
	d.SetKind("n", "", Null)
	if _, ok := d.Get("n"); ok || !d.Has("n") {
		t.Fatal("Null visible to Get or invisible to Has")
	}
}

func TestExtractPrefix(t *testing.T) {
	d := FromPairs("driver", "raw", "file", "node0", "file.driver", "blkdebug", "filex", "1",
		"file.image.filename", "img.raw", "file.align", "4k")
	if !d.HasPrefix("file") || d.HasPrefix("fil") || d.HasPrefix("driver") {
		t.Fatal("HasPrefix")
	}
	sub := d.ExtractPrefix("file")
	// In d's hash order (buckets: file.image.filename 56, file.driver
	// 130, file.align 195), not the typed one.
	if got := pairs(sub); !reflect.DeepEqual(got, []string{"image.filename=img.raw", "driver=blkdebug", "align=4k"}) {
		t.Errorf("sub = %q", got)
	}
	if got := pairs(d); !reflect.DeepEqual(got, []string{"driver=raw", "file=node0", "filex=1"}) {
		t.Errorf("rest = %q", got)
	}
	if v, ok := d.Get("filex"); v != "1" || !ok {
		t.Error("index stale after ExtractPrefix")
	}
	img := sub.ExtractPrefix("image")
	if got := pairs(img); !reflect.DeepEqual(got, []string{"filename=img.raw"}) {
		t.Errorf("image = %q", got)
	}
}

// TestExtractPrefixOrder: the child's dict does not depend on the order
// the keys were typed in. "file.rb" (bucket 266) comes before "file.a"
// (303) in the parent's hash order, so it is put into the child first;
// "a" and "rb" then share the child's bucket 233, where the later insert
// is visited first. (qemu-io 7.2 names "rb" as the unsupported option in
// either typed order, after the open path's further copies of the dict:
// cmd/gio/testdata/diff/open.txt, open/child-options-hash-order.)
func TestExtractPrefixOrder(t *testing.T) {
	for _, typed := range [][]string{{"file.a", "1", "file.rb", "1"}, {"file.rb", "1", "file.a", "1"}} {
		sub := FromPairs(typed...).ExtractPrefix("file")
		if got := sub.HashOrderKeys(); !reflect.DeepEqual(got, []string{"a", "rb"}) {
			t.Errorf("typed %q: child's hash order %q, want [a rb]", typed, got)
		}
	}
}

func TestListIndices(t *testing.T) {
	d := FromPairs("inject-error.2.event", "a", "inject-error.0.event", "b", "inject-error.0.errno", "5",
		"inject-error.event", "c", "inject-error.00.x", "d", "inject-error.1", "e", "set-state.3.x", "f")
	if got := d.ListIndices("inject-error"); !reflect.DeepEqual(got, []int{0, 1, 2}) {
		t.Errorf("ListIndices = %v", got)
	}
}

var blkdebugErrorKeys = []string{"event", "state", "iotype", "errno", "sector", "once", "immediately"}

// Messages measured with --image-opts driver=raw,file.driver=blkdebug,...
func TestTakeGroup(t *testing.T) {
	tests := []struct {
		in   string
		want [][]string
		err  string
	}{
		{in: "x=1", want: nil},
		{in: "inject-error.event=read_aio,inject-error.once=y",
			want: [][]string{{"event=read_aio", "once=y"}}},
		{in: "inject-error.0.event=read_aio,inject-error.1.event=write_aio,inject-error.0.errno=28",
			want: [][]string{{"event=read_aio", "errno=28"}, {"event=write_aio"}}},
		{in: "inject-error.event=read_aio,inject-error.0.event=write_aio",
			err: "Unknown option '0.event' for [inject-error]"},
		{in: "inject-error.0.event=read_aio,inject-error.x=1",
			err: "Unused option 'x' for [inject-error]"},
		{in: "inject-error.0.event=read_aio,inject-error.2.event=read_aio",
			err: "Unused option '2.event' for [inject-error]"},
		{in: "inject-error.0=read_aio",
			err: "[inject-error] section (index 0) does not consist of keys"},
		{in: "inject-error.0.event=read_aio,inject-error.0.bogus=1",
			err: "[inject-error] section doesn't support the option 'bogus'"},
		{in: "inject-error.event=read_aio,inject-error.bogus=1",
			err: "Unknown option 'bogus' for [inject-error]"},
		{in: "inject-error.bogus=1",
			err: "Unused option 'bogus' for [inject-error]"},
	}
	for _, tt := range tests {
		d, _, err := ParseKeyValue(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		secs, err := d.TakeGroup("inject-error", blkdebugErrorKeys)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		var got [][]string
		for _, s := range secs {
			got = append(got, pairs(s))
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
		if d.HasPrefix("inject-error") {
			t.Errorf("%q: group keys left behind", tt.in)
		}
	}
}

func TestTakeGroupJSON(t *testing.T) {
	// "inject-error":[{}] is an empty section (blkdebug then complains
	// about the missing event), "inject-error":[null] is not a section.
	d, _ := ParseJSON(`{"inject-error":[{}]}`)
	secs, err := d.TakeGroup("inject-error", blkdebugErrorKeys)
	if err != nil || len(secs) != 1 || secs[0].Len() != 0 {
		t.Errorf("[{}]: %v %v", secs, err)
	}
	d, _ = ParseJSON(`{"inject-error":[null]}`)
	if _, err := d.TakeGroup("inject-error", blkdebugErrorKeys); err == nil ||
		err.Error() != "[inject-error] section (index 0) does not consist of keys" {
		t.Errorf("[null]: %v", err)
	}
}

func TestHashOrder(t *testing.T) {
	// Orders observed in qemu-io's generated json: filenames.
	d := FromPairs("driver", "blkdebug", "image", "x", "align", "4k", "max-transfer", "4096",
		"inject-error.0.event", "read_aio", "inject-error.0.errno", "28")
	want := []string{"image", "max-transfer", "driver", "inject-error.0.errno", "inject-error.0.event", "align"}
	if got := d.HashOrderKeys(); !reflect.DeepEqual(got, want) {
		t.Errorf("HashOrderKeys = %q, want %q", got, want)
	}
}

func TestJSONRender(t *testing.T) {
	tests := []struct {
		opts     string
		children []string
		want     string
	}{
		// qemu-io -c 'open -o file.align=4k blkdebug::img.raw' (the
		// probe warning names the blkdebug node).
		{"driver=blkdebug,align=4k,image.driver=file,image.filename=img.raw", []string{"image"},
			`{"image": {"driver": "file", "filename": "img.raw"}, "driver": "blkdebug", "align": "4k"}`},
		{"driver=blkdebug,align=4k,inject-error.0.event=read_aio,inject-error.0.errno=28,max-transfer=4096,image.driver=file,image.filename=img.raw",
			[]string{"image"},
			`{"image": {"driver": "file", "filename": "img.raw"}, "max-transfer": "4096", "driver": "blkdebug", "inject-error.0.errno": "28", "inject-error.0.event": "read_aio", "align": "4k"}`},
		{"driver=blkdebug,align=4k,inject-error.event=read_aio,set-state.0.event=read_aio,set-state.0.new_state=2,image.driver=file,image.filename=img.raw",
			[]string{"image"},
			`{"set-state.0.event": "read_aio", "image": {"driver": "file", "filename": "img.raw"}, "driver": "blkdebug", "inject-error.event": "read_aio", "set-state.0.new_state": "2", "align": "4k"}`},
		// A grandchild named relative to the root.
		{"driver=raw,file.driver=blkdebug,file.image.driver=file,file.image.filename=a", []string{"file", "file.image"},
			`{"driver": "raw", "file": {"image": {"driver": "file", "filename": "a"}, "driver": "blkdebug"}}`},
		{"", nil, `{}`},
	}
	for _, tt := range tests {
		d, _, err := ParseKeyValue(tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.JSON(tt.children...); got != tt.want {
			t.Errorf("JSON(%q)\n got %s\nwant %s", tt.opts, got, tt.want)
		}
	}
}

func TestJSONEscaping(t *testing.T) {
	// The file name a"b\cé<DEL><SOH>😀<TAB>.raw as QEMU's writer shows it.
	d := FromPairs("filename", "a\"b\\c\xc3\xa9\x7f\x01\xf0\x9f\x98\x80\t.raw")
	want := `{"filename": "a\"b\\c\u00E9\u007F\u0001\uD83D\uDE00\t.raw"}`
	if got := d.JSON(); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	d = FromPairs("x", "\xff\xc3(\xc0\x80\b\f\n\r/nul\x00cut")
	want = `{"x": "\uFFFD\uFFFD(\u0000\b\f\n\r/nul"}`
	if got := d.JSON(); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	d, _ = ParseJSON(`{"n":1.5,"t":true,"f":false,"z":null,"o":{},"l":[]}`)
	if got := d.JSON(); got != `{"n": 1.5, "o": {}, "t": true, "f": false, "z": null, "l": []}` {
		t.Errorf("got %s", got)
	}
}
