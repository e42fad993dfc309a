package null_test

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/null"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

func openNull(t testing.TB, driver string, kv ...string) (*blk.Backend, error) {
	t.Helper()
	opts := qdict.New()
	for i := 0; i+1 < len(kv); i += 2 {
		opts.Set(kv[i], kv[i+1])
	}
	reg := blk.NewRegistry(null.CoDriver, null.AIODriver)
	return reg.Open(blk.Spec{Format: driver, Opts: opts}, blk.NewLoop(blk.NewVirtualClock()))
}

func mustOpen(t testing.TB, driver string, kv ...string) *blk.Backend {
	t.Helper()
	b, err := openNull(t, driver, kv...)
	if err != nil {
		t.Fatalf("open %s %v: %v", driver, kv, err)
	}
	return b
}

func do(t testing.TB, b *blk.Backend, fn func(co *blk.Co) error) error {
	t.Helper()
	return blktest.Do(t, b, "test", fn)
}

var drivers = []string{"null-co", "null-aio"}

func TestConformance(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) {
			blktest.Run(t, func(t *testing.T) *blk.Backend { return mustOpen(t, d, "size", "1M") }, blktest.NoData())
		})
		t.Run(d+"/default-size", func(t *testing.T) {
			blktest.Run(t, func(t *testing.T) *blk.Backend { return mustOpen(t, d) }, blktest.NoData())
		})
		t.Run(d+"/read-zeroes", func(t *testing.T) {
			blktest.Run(t, func(t *testing.T) *blk.Backend {
				return mustOpen(t, d, "size", "1000000", "read-zeroes", "on")
			}, blktest.ReadsZeroes())
		})
		t.Run(d+"/latency", func(t *testing.T) {
			blktest.Run(t, func(t *testing.T) *blk.Backend {
				return mustOpen(t, d, "size", "256k", "latency-ns", "1000000")
			}, blktest.NoData())
		})
	}
}

func TestParseFilename(t *testing.T) {
	tests := []struct {
		driver *blk.Driver
		in     string
		want   string
	}{
		{null.CoDriver, "null-co://", ""},
		{null.CoDriver, "null-co:", "The only allowed filename for this driver is 'null-co://'"},
		{null.CoDriver, "null-co://foo", "The only allowed filename for this driver is 'null-co://'"},
		{null.CoDriver, "null-co:foo", "The only allowed filename for this driver is 'null-co://'"},
		{null.CoDriver, "null-aio://", "The only allowed filename for this driver is 'null-co://'"},
		{null.AIODriver, "null-aio://", ""},
		{null.AIODriver, "null-aio:x", "The only allowed filename for this driver is 'null-aio://'"},
	}
	for _, tc := range tests {
		opts := qdict.New()
		err := tc.driver.ParseFilename(tc.in, opts)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s.ParseFilename(%q) = %q, want %q", tc.driver.Name, tc.in, got, tc.want)
		}
		if opts.Len() != 0 {
			t.Errorf("%s.ParseFilename(%q) set options %v", tc.driver.Name, tc.in, opts.Keys())
		}
	}
}

func TestDriverFacts(t *testing.T) {
	for _, d := range []*blk.Driver{null.CoDriver, null.AIODriver} {
		if d.Protocol != d.Name || d.Format {
			t.Errorf("%s: protocol %q format %v", d.Name, d.Protocol, d.Format)
		}
	}
}

// TestOptions checks the options against what qemu-io 7.2 does with
// --image-opts driver=null-co,OPT -c length. Where qemu-io aborts, gio
// gives the message QEMU prints before aborting.
func TestOptions(t *testing.T) {
	tests := []struct {
		kv      []string
		length  int64 // rounded, as blk reports it
		wantErr string
	}{
		{nil, 1 << 30, ""},
		{[]string{"size", "4096"}, 4096, ""},
		{[]string{"size", "1000"}, 1024, ""},
		{[]string{"size", "1.5k"}, 1536, ""},
		{[]string{"size", "0x100"}, 512, ""},
		{[]string{"size", " 1k"}, 1024, ""},
		{[]string{"size", "1K"}, 1024, ""},
		{[]string{"size", "0"}, 0, ""},
		{[]string{"size", "7E"}, 7 << 60, ""},
		{[]string{"size", "abc"}, 0, "Parameter 'size' expects a non-negative number below 2^64"},
		{[]string{"size", "-1"}, 0, "Parameter 'size' expects a non-negative number below 2^64"},
		{[]string{"size", "1x"}, 0, "Parameter 'size' expects a non-negative number below 2^64"},
		{[]string{"size", ""}, 0, "Parameter 'size' expects a non-negative number below 2^64"},
		{[]string{"size", "1e3"}, 0, "Parameter 'size' expects a non-negative number below 2^64"},
		{[]string{"size", "1kB"}, 0, "Parameter 'size' expects a non-negative number below 2^64"},
		{[]string{"size", "16E"}, 0, "Value '16E' is out of range for parameter 'size'"},
		{[]string{"size", "9223372036854775807"}, 0, "Could not refresh total sector count: File too large"},
		{[]string{"size", "8E"}, 0, "Could not refresh total sector count: File too large"},
		{[]string{"latency-ns", "abc"}, 0, "Parameter 'latency-ns' expects a number"},
		{[]string{"latency-ns", "1.5"}, 0, "Parameter 'latency-ns' expects a number"},
		{[]string{"latency-ns", "-1"}, 0, "latency-ns is invalid"},
		{[]string{"latency-ns", "0"}, 1 << 30, ""},
		{[]string{"read-zeroes", "yes"}, 1 << 30, ""},
		{[]string{"read-zeroes", "true"}, 1 << 30, ""},
		{[]string{"read-zeroes", "bogus"}, 0, "Parameter 'read-zeroes' expects 'on' or 'off'"},
		{[]string{"bogus", "1"}, 0, "Block protocol 'null-co' doesn't support the option 'bogus'"},
	}
	for _, tc := range tests {
		b, err := openNull(t, "null-co", tc.kv...)
		if tc.wantErr != "" {
			if err == nil {
				b.Close()
				t.Errorf("open %v succeeded, want %q", tc.kv, tc.wantErr)
			} else if !equalFoldErr(err, tc.wantErr) {
				t.Errorf("open %v: %q, want %q", tc.kv, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("open %v: %v", tc.kv, err)
			continue
		}
		var l int64
		do(t, b, func(co *blk.Co) (err error) { l, err = b.Length(co); return err })
		if l != tc.length {
			t.Errorf("open %v: length %d, want %d", tc.kv, l, tc.length)
		}
		b.Close()
	}
}

// equalFoldErr compares an error's text, ignoring the case of the
// strerror part (blk prints Go's lower-case wording for now).
func equalFoldErr(err error, want string) bool {
	return bytes.EqualFold([]byte(err.Error()), []byte(want))
}

func TestReadZeroes(t *testing.T) {
	for _, d := range drivers {
		for _, zeroes := range []bool{false, true} {
			kv := []string{"size", "1M"}
			if zeroes {
				kv = append(kv, "read-zeroes", "on")
			}
			b := mustOpen(t, d, kv...)
			buf := bytes.Repeat([]byte{0xab}, 4096)
			if err := do(t, b, func(co *blk.Co) error { return b.PRead(co, 100, buf) }); err != nil {
				t.Fatal(err)
			}
			want := byte(0xab)
			if zeroes {
				want = 0
			}
			if !bytes.Equal(buf, bytes.Repeat([]byte{want}, len(buf))) {
				t.Errorf("%s read-zeroes=%v: buffer not all %#x", d, zeroes, want)
			}
			b.Close()
		}
	}
}

func TestBlockStatus(t *testing.T) {
	for _, d := range drivers {
		for _, zeroes := range []bool{false, true} {
			kv := []string{}
			if zeroes {
				kv = append(kv, "read-zeroes", "on")
			}
			b := mustOpen(t, d, kv...)
			err := do(t, b, func(co *blk.Co) error {
				alloc, pnum, err := b.IsAllocated(co, 0, 1<<30)
				if err != nil {
					return err
				}
				if alloc != zeroes || pnum != 1<<30 {
					t.Errorf("%s read-zeroes=%v: IsAllocated = %v, %d; want %v, 1 GiB", d, zeroes, alloc, pnum, zeroes)
				}
				st, err := b.BlockStatus(co, 4096, 8192)
				if err != nil {
					return err
				}
				want := blk.StatusOffsetValid
				if zeroes {
					want |= blk.StatusZero | blk.StatusAllocated
				}
				if st.Flags != want || st.Pnum != 8192 || st.Map != 4096 || st.File != b.Root {
					t.Errorf("%s read-zeroes=%v: BlockStatus = %+v, want flags %#x, 8192 bytes mapped at 4096 on the node", d, zeroes, st, want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			b.Close()
		}
	}
}

// TestNoOps: writes, zero writes, discards and flushes succeed; a zero
// write that must not fall back is refused (write -z -n), truncate and
// info are unsupported.
func TestNoOps(t *testing.T) {
	for _, d := range drivers {
		b := mustOpen(t, d, "size", "1M")
		steps := []struct {
			name  string
			fn    func(co *blk.Co) error
			errno unix.Errno
			msg   string
		}{
			{"write", func(co *blk.Co) error { return b.PWrite(co, 1, []byte("abc"), blk.FUA) }, 0, ""},
			{"zero", func(co *blk.Co) error { return b.PWriteZeroes(co, 0, 1<<20, 0) }, 0, ""},
			{"zero unmap", func(co *blk.Co) error { return b.PWriteZeroes(co, 3, 5000, blk.MayUnmap) }, 0, ""},
			{"zero no fallback", func(co *blk.Co) error { return b.PWriteZeroes(co, 0, 4096, blk.NoFallback) }, unix.ENOTSUP, ""},
			{"zero no fallback unmap", func(co *blk.Co) error {
				return b.PWriteZeroes(co, 0, 4096, blk.NoFallback|blk.MayUnmap)
			}, unix.ENOTSUP, ""},
			{"discard", func(co *blk.Co) error { return b.PDiscard(co, 7, 100000) }, 0, ""},
			{"flush", b.Flush, 0, ""},
			{"truncate", func(co *blk.Co) error { return b.Truncate(co, 2<<20, blk.PreallocOff) }, unix.ENOTSUP, "Image format driver does not support resize"},
		}
		for _, s := range steps {
			err := do(t, b, s.fn)
			switch {
			case s.errno == 0 && err != nil:
				t.Errorf("%s %s: %v", d, s.name, err)
			case s.errno != 0 && !errors.Is(err, s.errno):
				t.Errorf("%s %s: %v, want %v", d, s.name, err, s.errno)
			case s.msg != "" && (err == nil || err.Error() != s.msg):
				t.Errorf("%s %s: %v, want %q", d, s.name, err, s.msg)
			}
		}
		if _, err := b.Info(); err == nil {
			t.Errorf("%s: Info succeeded, want failure", d)
		}
		l := b.Root.Limits()
		if l.SupportedWriteFlags != blk.FUA || l.SupportedZeroFlags&blk.NoFallback != 0 {
			t.Errorf("%s: write flags %v zero flags %v, want FUA and no NoFallback", d, l.SupportedWriteFlags, l.SupportedZeroFlags)
		}
		b.Close()
	}
}

// TestLatency: without latency-ns a request completes without yielding;
// with it, every read, write and flush sleeps that long on the loop's
// clock (virtual here, so the test takes no time).
func TestLatency(t *testing.T) {
	for _, d := range drivers {
		b := mustOpen(t, d, "size", "1M")
		loop := b.Loop()
		co := loop.Spawn("read", func(co *blk.Co) { b.PRead(co, 0, make([]byte, 512)) })
		loop.RunReady()
		if !co.Done() || co.Yielded() {
			t.Errorf("%s: request without latency yielded", d)
		}
		b.Close()

		const lat = 250 * time.Millisecond
		b = mustOpen(t, d, "size", "1M", "latency-ns", "250000000")
		loop = b.Loop()
		ops := []struct {
			name string
			fn   func(co *blk.Co) error
			n    int // sleeps
		}{
			{"read", func(co *blk.Co) error { return b.PRead(co, 0, make([]byte, 512)) }, 1},
			{"write", func(co *blk.Co) error { return b.PWrite(co, 0, make([]byte, 512), blk.FUA) }, 1},
			{"flush", b.Flush, 1},
			{"flush again", b.Flush, 0},
			{"discard", func(co *blk.Co) error { return b.PDiscard(co, 0, 512) }, 0},
		}
		for _, op := range ops {
			start := loop.Now()
			var err error
			co := loop.Spawn(op.name, func(co *blk.Co) { err = op.fn(co) })
			loop.RunReady()
			if op.n > 0 && co.Done() {
				t.Errorf("%s %s: finished without sleeping", d, op.name)
			}
			if e := loop.RunUntil(op.name, co.Done); e != nil {
				t.Fatal(e)
			}
			if err != nil {
				t.Errorf("%s %s: %v", d, op.name, err)
			}
			el := loop.Now() - start
			if want := time.Duration(op.n) * lat; el < want || el > want+lat/2 {
				t.Errorf("%s %s: took %v, want %v", d, op.name, el, want)
			}
		}
		b.Close()
	}
}

// TestHugeZeroWrite: null has no zero-write path, so blk writes zero
// buffers; 100 GiB of them must not need memory in proportion.
func TestHugeZeroWrite(t *testing.T) {
	const size = 100 << 30
	b := mustOpen(t, "null-co", "size", "100G")
	defer b.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := do(t, b, func(co *blk.Co) error { return b.PWriteZeroes(co, 0, size, 0) })
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("PWriteZeroes(100 GiB) = %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
		t.Errorf("zero write of 100 GiB allocated %d bytes", d)
	}
}
