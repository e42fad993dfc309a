package cvt

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"syscall"
	"testing"
	"time"
)

// Expected texts below come from the reference, from qemu-io runs, and
// from qemu's cvtstr/timestr/print_report compiled with gcc against glibc
// 2.36 (which is how the corner cases such as "-nan" were obtained).

func TestSize(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{0, "0 bytes"},
		{math.Copysign(0, -1), "-0 bytes"},
		{1, "1 bytes"},
		{0.5, "0.500000 bytes"},
		{512, "512 bytes"},
		{340.783438, "340.783438 bytes"},
		{12.0004, "12 bytes"}, // cut at ".000" drops the 4
		{12.0005, "12 bytes"},
		{0.0000015, "0 bytes"}, // "0.000002" also contains ".000"
		{1e-300, "0 bytes"},
		{1023.5, "1023.500000 bytes"},
		{1023.9999999, "1024 bytes"},
		{1024, "1 KiB"},
		{1024 * 1.0004, "1 KiB"},
		{1536, "1.500 KiB"},
		{1539, "1.503 KiB"},
		{1048064, "1023.500 KiB"},
		{1048575.9, "1024 KiB"}, // rounds up without switching unit
		{64 << 10, "64 KiB"},
		{1 << 20, "1 MiB"},
		{104858, "102.400 KiB"},
		{1 << 30, "1 GiB"},
		{2147483136, "2 GiB"},
		{454288785.5, "433.244 MiB"},
		{1 << 40, "1 TiB"},
		{1 << 50, "1 PiB"},
		{0x1p60 * 7.5, "7.500 EiB"},
		{0x1p63, "8 EiB"},
		// 64-byte buffer: the number is cut to 59 (or 57) characters
		{1e300, "86736173798840359274658234831451388757757712143575605765245 EiB"},
		{-1e300, "-10000000000000000525047602552044202487044685811081591549 bytes"},
		{-1, "-1 bytes"},
		{math.Inf(1), "inf EiB"},
		{math.Inf(-1), "-inf bytes"},
		{math.NaN(), "nan bytes"},
		{math.Float64frombits(0xfff8000000000000), "-nan bytes"},
	} {
		if got := Size(c.in); got != c.want {
			t.Errorf("Size(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func ts(sec, nsec int64) time.Duration {
	return time.Duration(sec)*time.Second + time.Duration(nsec)
}

func TestTimeText(t *testing.T) {
	for _, c := range []struct {
		d       time.Duration
		machine bool
		want    string
	}{
		{0, false, "00.00 sec"},
		{0, true, "0:00:00.00"},
		{ts(0, 250000000), false, "00.25 sec"},
		{ts(0, 500000000), true, "0:00:00.50"},
		{ts(0, 994999999), false, "00.99 sec"},
		{ts(0, 995000000), false, "00.99 sec"}, // 0.995 is below .995 in binary
		{ts(0, 995000001), false, "01.00 sec"},
		{ts(1, 500000000), false, "0:00:01.50"},
		{ts(1, 5000000), false, "0:00:01.00"},
		{ts(59, 995000000), false, "0:00:59.99"},
		{ts(59, 996000000), true, "0:00:60.00"},
		{ts(296, 550000000), false, "0:04:56.55"},
		{ts(3599, 999999999), false, "0:59:60.00"},
		{ts(3600, 0), true, "1:00:00.00"},
		{ts(360000, 0), false, "100:00:00.00"},
		// negative durations are formatted as C would format the timespec
		{-1, false, "0:00:-0.00"},
		{-time.Hour, true, "4294967295:00:00.00"},
	} {
		if got := TimeText(c.d, c.machine); got != c.want {
			t.Errorf("TimeText(%v, %v) = %q, want %q", c.d, c.machine, got, c.want)
		}
	}
}

func TestRate(t *testing.T) {
	if got := Rate(512, 1500*time.Millisecond); got != 512/1.5 {
		t.Errorf("Rate(512, 1.5s) = %v", got)
	}
	if got := Rate(1, 0); !math.IsInf(got, 1) {
		t.Errorf("Rate(1, 0) = %v, want +Inf", got)
	}
	if got := Rate(0, 0); !math.IsNaN(got) || !math.Signbit(got) {
		t.Errorf("Rate(0, 0) = %v (sign %v), want negative NaN", got, math.Signbit(got))
	}
	if got := Rate(0, time.Second); got != 0 {
		t.Errorf("Rate(0, 1s) = %v", got)
	}
}

func TestReport(t *testing.T) {
	for _, c := range []struct {
		op            string
		total, offset int64
		d             time.Duration
		machine       bool
		want          string
	}{
		{"read", 512, 0, ts(1, 500000000), false,
			"read 512/512 bytes at offset 0\n512 bytes, 1 ops; 0:00:01.50 (341.333333 bytes/sec and 0.6667 ops/sec)\n"},
		{"wrote", 512, 0, ts(0, 500000000), true, "512,1,0:00:00.50,1024.000,2.000\n"},
		{"read", 0, 16, ts(0, 43234), false,
			"read 0/0 bytes at offset 16\n0 bytes, 1 ops; 00.00 sec (0 bytes/sec and 23129.9440 ops/sec)\n"},
		{"wrote", 1539, 0, ts(0, 809810), false,
			"wrote 1539/1539 bytes at offset 0\n1.503 KiB, 1 ops; 00.00 sec (1.812 MiB/sec and 1234.8576 ops/sec)\n"},
		{"read", 2147483136, 0, ts(4, 730000000), false,
			"read 2147483136/2147483136 bytes at offset 0\n2 GiB, 1 ops; 0:00:04.73 (432.981 MiB/sec and 0.2114 ops/sec)\n"},
		{"wrote", 4294967296, 0, ts(300, 680000000), true, "4294967296,1,0:05:00.68,14284180.178,0.003\n"},
		{"discard", 512, 4611686018427387904, 1, false,
			"discard 512/512 bytes at offset 4611686018427387904\n512 bytes, 1 ops; 00.00 sec (476.837 GiB/sec and 1000000000.0000 ops/sec)\n"},
		// a zero elapsed time divides by zero like C
		{"read", 512, 0, 0, false,
			"read 512/512 bytes at offset 0\n512 bytes, 1 ops; 00.00 sec (inf EiB/sec and inf ops/sec)\n"},
		{"read", 0, 0, 0, false,
			"read 0/0 bytes at offset 0\n0 bytes, 1 ops; 00.00 sec (-nan bytes/sec and inf ops/sec)\n"},
		{"read", 512, 0, 0, true, "512,1,0:00:00.00,inf,inf\n"},
		{"read", 0, 0, 0, true, "0,1,0:00:00.00,-nan,inf\n"},
	} {
		if got := Report(c.op, c.total, c.offset, c.d, 1, c.machine); got != c.want {
			t.Errorf("Report(%q, %d, %d, %v, 1, %v) =\n%q\nwant\n%q", c.op, c.total, c.offset, c.d, c.machine, got, c.want)
		}
	}
}

func TestHexDump(t *testing.T) {
	data := []byte("Hello, World! abcXYZ_09\x00\x01\x7f\x80\xff-H\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	for _, c := range []struct {
		off  int64
		buf  []byte
		want string
	}{
		{0, data, "" +
			"00000000:  48 65 6c 6c 6f 2c 20 57 6f 72 6c 64 21 20 61 62  Hello..World..ab\n" +
			"00000010:  63 58 59 5a 5f 30 39 00 01 7f 80 ff 2d 48 00 00  cXYZ.09......H..\n" +
			"00000020:  00 00 00 00 00 00 00 00  ........\n"},
		{3, data[3:8], "00000003:  6c 6f 2c 20 57  lo..W\n"},
		{0xffffffff, make([]byte, 20), "" +
			"ffffffff:  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................\n" +
			"10000000f:  00 00 00 00  ....\n"},
		{1020, []byte{0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xbb, 0xbb}, "000003fc:  aa aa aa aa bb bb bb bb  ........\n"},
		{0, nil, ""},
		{math.MaxInt64, []byte{'a'}, "7fffffffffffffff:  61  a\n"},
	} {
		var b bytes.Buffer
		if err := HexDump(&b, c.off, c.buf); err != nil {
			t.Fatal(err)
		}
		if b.String() != c.want {
			t.Errorf("HexDump(%#x, % x) =\n%s\nwant\n%s", c.off, c.buf, b.String(), c.want)
		}
	}
}

func TestHexDumpLarge(t *testing.T) {
	// Crosses the internal flush threshold; the output must not change.
	buf := make([]byte, 100000)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var got, want bytes.Buffer
	if err := HexDump(&got, 512, buf); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(buf); i += 16 {
		row := buf[i:min(i+16, len(buf))]
		fmt.Fprintf(&want, "%08x:  ", 512+i)
		for _, c := range row {
			fmt.Fprintf(&want, "%02x ", c)
		}
		want.WriteByte(' ')
		for _, c := range row {
			if isAlnum(c) {
				want.WriteByte(c)
			} else {
				want.WriteByte('.')
			}
		}
		want.WriteByte('\n')
	}
	if got.String() != want.String() {
		t.Error("large dump differs")
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	w.n++
	return 0, errors.New("boom")
}

func TestHexDumpError(t *testing.T) {
	w := &failWriter{}
	if err := HexDump(w, 0, make([]byte, 1<<20)); err == nil || w.n != 1 {
		t.Errorf("HexDump error %v after %d writes, want one failed write", err, w.n)
	}
}

func TestStrerror(t *testing.T) {
	for _, c := range []struct {
		e    int
		want string
	}{
		{0, "Success"},
		{int(syscall.EPERM), "Operation not permitted"},
		{int(syscall.ENOENT), "No such file or directory"},
		{int(syscall.EIO), "Input/output error"},
		{int(syscall.EAGAIN), "Resource temporarily unavailable"},
		{int(syscall.EACCES), "Permission denied"},
		{int(syscall.EISDIR), "Is a directory"},
		{int(syscall.EINVAL), "Invalid argument"},
		{int(syscall.EFBIG), "File too large"},
		{int(syscall.ENOSPC), "No space left on device"},
		{int(syscall.EROFS), "Read-only file system"},
		{int(syscall.EDEADLK), "Resource deadlock avoided"},
		{int(syscall.ENOTSUP), "Operation not supported"},
		{int(syscall.EOPNOTSUPP), "Operation not supported"},
		{int(syscall.ENOMEDIUM), "No medium found"},
		{int(syscall.ECANCELED), "Operation canceled"},
		{81, ".lib section in a.out corrupted"},
		{133, "Memory page has hardware error"},
		{41, "Unknown error 41"},
		{58, "Unknown error 58"},
		{134, "Unknown error 134"},
		{999, "Unknown error 999"},
		{-1, "Unknown error -1"},
		{-28, "Unknown error -28"},
	} {
		if got := StrerrorErrno(c.e); got != c.want {
			t.Errorf("StrerrorErrno(%d) = %q, want %q", c.e, got, c.want)
		}
	}
	// every slot 1..133 except the two holes has a text
	for e := 1; e <= 133; e++ {
		if (errnoText[e] == "") != (e == 41 || e == 58) {
			t.Errorf("errnoText[%d] = %q", e, errnoText[e])
		}
	}
}

func TestStrerrorError(t *testing.T) {
	_, openErr := os.Open("/nonexistent/gio-cvt-test")
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "Success"},
		{syscall.ENOSPC, "No space left on device"},
		{fmt.Errorf("pwrite: %w", syscall.EIO), "Input/output error"},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EROFS}, "Read-only file system"},
		{openErr, "No such file or directory"},
		{syscall.Errno(1000), "Unknown error 1000"},
		{errors.New("no errno here"), "no errno here"},
	} {
		if got := Strerror(c.err); got != c.want {
			t.Errorf("Strerror(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
