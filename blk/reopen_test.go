package blk_test

import (
	"errors"
	"testing"

	"gio/blk"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// leaf is a protocol node that remembers its descriptor's mode, as the
// file driver's Reopen switches O_RDONLY and O_RDWR. With fail set,
// becoming writable fails (a file that another user owns read-only).
type leaf struct {
	name     string
	ro, fail bool
	reopens  *[]string
}

func (l *leaf) PRead(*blk.Co, int64, []byte, blk.ReqFlags) error  { return nil }
func (l *leaf) PWrite(*blk.Co, int64, []byte, blk.ReqFlags) error { return nil }
func (l *leaf) Length(*blk.Co) (int64, error)                     { return 1 << 20, nil }
func (l *leaf) Close() error                                      { return nil }
func (l *leaf) Reopen(ro bool) error {
	if !ro && l.fail {
		return unix.EACCES
	}
	*l.reopens = append(*l.reopens, l.name)
	l.ro = ro
	return nil
}

// pair is a format with two data children (file, other) and a backing
// file, so that a reopen touches two nodes holding OS resources.
type pair struct{}

func (pair) PRead(*blk.Co, int64, []byte, blk.ReqFlags) error  { return nil }
func (pair) PWrite(*blk.Co, int64, []byte, blk.ReqFlags) error { return nil }
func (pair) Length(*blk.Co) (int64, error)                     { return 1 << 20, nil }
func (pair) Close() error                                      { return nil }

func reopenRegistry(leaves map[string]*leaf, reopens *[]string) *blk.Registry {
	leafDriver := &blk.Driver{Name: "leaf", Open: func(a *blk.OpenArgs) (blk.Impl, error) {
		name, _ := a.Opts.TakeString("name")
		fail, _ := a.Opts.TakeBool("fail", false)
		l := &leaf{name: name, ro: a.Flags.ReadOnly, fail: fail, reopens: reopens}
		leaves[name] = l
		return l, nil
	}}
	pairDriver := &blk.Driver{Name: "pair", Format: true, SupportsBacking: true, Open: func(a *blk.OpenArgs) (blk.Impl, error) {
		for _, c := range []struct {
			name    string
			primary bool
		}{{"file", true}, {"other", false}, {"backing", false}} {
			if _, err := a.OpenChild(c.name, c.primary, true); err != nil {
				return nil, err
			}
		}
		return pair{}, nil
	}}
	return blk.NewRegistry(leafDriver, pairDriver)
}

// TestReopen is issue 14 item 3: reopen changes the data nodes and never
// the backing file, and a reopen that fails half-way reopens back the
// nodes it had already switched, as SetReadOnly promises.
func TestReopen(t *testing.T) {
	for _, tc := range []struct {
		name, failing string
	}{{"all succeed", ""}, {"file fails", "file"}, {"other fails", "other"}} {
		t.Run(tc.name, func(t *testing.T) {
			opts := "driver=pair,file.driver=leaf,file.name=file,other.driver=leaf,other.name=other,backing.driver=leaf,backing.name=backing"
			if tc.failing != "" {
				opts += "," + tc.failing + ".fail=on"
			}
			d, _, err := qdict.ParseKeyValue(opts)
			if err != nil {
				t.Fatal(err)
			}
			leaves := map[string]*leaf{}
			var reopens []string
			b, err := reopenRegistry(leaves, &reopens).Open(blk.Spec{Opts: d, Flags: blk.OpenFlags{ReadOnly: true}}, blk.NewLoop(blk.NewVirtualClock()))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			err = b.SetReadOnly(false)
			if (err != nil) != (tc.failing != "") {
				t.Fatalf("SetReadOnly(false) = %v, want failure %v", err, tc.failing != "")
			}
			wantRO := tc.failing != ""
			for _, name := range []string{"file", "other"} {
				if l := leaves[name]; l.ro != wantRO {
					t.Errorf("%s: descriptor read-only %v, want %v (reopens: %v)", name, l.ro, wantRO, reopens)
				}
			}
			if b.ReadOnly() != wantRO || b.Root.ReadOnly() != wantRO {
				t.Errorf("image read-only %v, want %v", b.ReadOnly(), wantRO)
			}
			if !leaves["backing"].ro || !b.Root.Backing().ReadOnly() {
				t.Errorf("the backing file became writable (reopens: %v)", reopens)
			}
			if err != nil && !errors.Is(err, unix.EACCES) {
				t.Errorf("error %v, want the failing node's EACCES", err)
			}
		})
	}
}
