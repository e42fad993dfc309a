package raw

import (
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/qdict"
)

// TestPrepareReopen moves raw's window (qemu-iotests 171's reopen -o
// offset=1536,size=1024) and refuses one that does not fit, changing
// nothing then.
func TestPrepareReopen(t *testing.T) {
	reg := blk.NewRegistry(Driver, blktest.MemDriver)
	loop := blk.NewLoop(blk.NewVirtualClock())
	img, err := reg.Open(blk.Spec{Opts: qdict.FromPairs("driver", "raw", "offset", "512", "size", "512",
		"file.driver", "mem", "file.size", "4096")}, loop)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	r := img.Root.Impl().(*node)
	for _, tc := range []struct {
		opts         []string
		wantErr      string
		offset, size int64
		left         int
	}{
		{opts: []string{"offset", "1536", "size", "1024"}, offset: 1536, size: 1024},
		{opts: []string{"driver", "raw", "offset", "0"}, offset: 0, size: 1024, left: 1},
		{opts: []string{"offset", "8192"}, wantErr: "Offset (8192) cannot be greater than size of the containing file (4096)", offset: 0, size: 1024},
		{opts: []string{"size", "100"}, wantErr: "Specified size is not multiple of 512", offset: 0, size: 1024},
		{opts: []string{"size", "x"}, wantErr: "Parameter 'size' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.", offset: 0, size: 1024},
	} {
		opts := qdict.FromPairs(tc.opts...)
		commit, err := r.PrepareReopen(opts, false)
		switch {
		case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
			t.Errorf("%v: error %v, want %q", tc.opts, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.opts, err)
		case err == nil:
			commit()
		}
		if r.offset != tc.offset || r.size != tc.size || !r.hasSize {
			t.Errorf("%v: window %d+%d (size set %v), want %d+%d", tc.opts, r.offset, r.size, r.hasSize, tc.offset, tc.size)
		}
		if err == nil && opts.Len() != tc.left {
			t.Errorf("%v: %d options left, want %d", tc.opts, opts.Len(), tc.left)
		}
	}
}
