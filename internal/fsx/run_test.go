package fsx

import (
	"regexp"
	"strconv"
	"testing"
)

// TestXferLine: the hand parser agrees with readLine and wroteLine.
func TestXferLine(t *testing.T) {
	for _, l := range []string{"read 512/512 bytes at offset 0", "wrote 4096/4096 bytes at offset 1048576",
		"read 512/512 bytes at offset ", "read /512 bytes at offset 0", "read 512/512 bytes at offset 0x", "read 512/512 bytes at offset 0 ",
		"wrote 1/2 bytes at offset 3", "read 99999999999999999999/1 bytes at offset 0", "reads 1/1 bytes at offset 0", "read 1/1 bytes  at offset 0"} {
		for _, c := range []struct {
			verb string
			re   *regexp.Regexp
		}{{"read ", readLine}, {"wrote ", wroteLine}} {
			n, off, ok := xferLine(l, c.verb)
			m := c.re.FindStringSubmatch(l)
			var wn, woff int64
			var werr1, werr2 error
			if m != nil {
				wn, werr1 = strconv.ParseInt(m[1], 10, 64)
				woff, werr2 = strconv.ParseInt(m[3], 10, 64)
			}
			want := m != nil && werr1 == nil && werr2 == nil
			if ok != want || (ok && (n != wn || off != woff)) {
				t.Errorf("xferLine(%q, %q) = %d, %d, %v; the regexp says %v (%d, %d)", l, c.verb, n, off, ok, want, wn, woff)
			}
		}
	}
}

// TestIsStats: the hand check agrees with statsLine.
func TestIsStats(t *testing.T) {
	for _, l := range []string{"512 bytes, 1 ops; 0.0000 sec (488.281 KiB/sec and 976.5625 ops/sec)",
		"4 KiB, 1 ops; 00.00 sec", "1.5 MiB, 12 ops; x", "512 bytes, 1 ops;", "512 bytes, ops; ", "512 bytes 1 ops; ",
		" bytes, 1 ops; ", "512  bytes, 1 ops; ", "5.1.2 b, 1 ops; ", "512 bytes, 1 ops ; ", "512 b2, 1 ops; ", "", "512", "512 ",
		"read 512/512 bytes at offset 0"} {
		if got, want := isStats(l), statsLine.MatchString(l); got != want {
			t.Errorf("isStats(%q) = %v, statsLine says %v", l, got, want)
		}
	}
}
