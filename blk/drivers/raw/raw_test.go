package raw

import (
	"strings"
	"testing"

	"gio/blk"
	"gio/blk/qdict"
)

// slowLen is a protocol driver whose Length yields, as a format child
// reading its header or a network protocol asking its server would.
var slowLen = &blk.Driver{Name: "slowlen", Open: func(a *blk.OpenArgs) (blk.Impl, error) {
	size, _, err := a.Opts.TakeSize("size", 64<<10)
	return &slowNode{size: int64(size)}, err
}}

type slowNode struct{ size int64 }

func (s *slowNode) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	clear(buf)
	return nil
}
func (s *slowNode) PWrite(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error { return nil }
func (s *slowNode) Length(co *blk.Co) (int64, error) {
	co.YieldIO() // dereferences co: a nil *Co panics here
	return s.size, nil
}
func (s *slowNode) Close() error { return nil }

// TestOpenOverYieldingLength: raw checks offset and size against its
// child's length at open (raw_apply_options). The child may yield while
// it answers, so raw must ask from inside a request, never with a nil
// *Co (issue 14, item 4).
func TestOpenOverYieldingLength(t *testing.T) {
	for _, tc := range []struct{ opts, err string }{
		{"driver=raw,file.driver=slowlen", ""},
		{"driver=raw,offset=4096,size=8192,file.driver=slowlen", ""},
		{"driver=raw,offset=128k,file.driver=slowlen", "Offset (131072) cannot be greater than size of the containing file (65536)"},
		{"driver=raw,offset=60k,size=8k,file.driver=slowlen", "has to be smaller or equal to the  actual size"},
	} {
		t.Run(tc.opts, func(t *testing.T) {
			d, _, err := qdict.ParseKeyValue(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			b, err := blk.NewRegistry(Driver, slowLen).Open(blk.Spec{Opts: d}, blk.NewLoop(blk.NewVirtualClock()))
			if tc.err == "" {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				b.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("open: %v, want an error containing %q", err, tc.err)
			}
		})
	}
}
