package cvt

import (
	"bytes"
	"io"
	"math"
	"strconv"
	"time"
)

// sizeUnits are cvtstr()'s thresholds, largest first.
var sizeUnits = [...]struct {
	min    float64
	suffix string
}{
	{0x1p60, " EiB"},
	{0x1p50, " PiB"},
	{0x1p40, " TiB"},
	{0x1p30, " GiB"},
	{0x1p20, " MiB"},
	{0x1p10, " KiB"},
}

// Size is qemu-io's cvtstr(): a byte count (or bytes per second) in human
// form, "512 bytes", "1.500 KiB", "2 GiB". Values from 1 KiB up are printed
// with %.3f in the largest fitting binary unit, smaller ones with %f and
// " bytes". If the number contains ".000" it is cut there, which also drops
// any non-zero digits after it (12.0004 gives "12 bytes").
//
// Like qemu-io, which formats into a 64-byte buffer, the number is cut to
// 59 characters (57 for " bytes"); only values near the double range and
// negative ones can be that long. Infinity gives "inf EiB", NaN gives
// "nan bytes" or "-nan bytes" as glibc prints them.
func Size(v float64) string {
	return string(appendSize(nil, v))
}

func appendSize(dst []byte, v float64) []byte {
	start := len(dst)
	suffix, limit := " bytes", 64-6-1 // snprintf(str, size - 6, "%f")
	for _, u := range sizeUnits {
		if v >= u.min {
			suffix, limit = u.suffix, 64-4-1 // snprintf(str, size - 4, "%.3f")
			dst = appendCFloat(dst, v/u.min, 3)
			break
		}
	}
	if suffix == " bytes" {
		dst = appendCFloat(dst, v, 6)
	}
	if len(dst)-start > limit {
		dst = dst[:start+limit] // snprintf truncation
	}
	if i := bytes.Index(dst[start:], []byte(".000")); i >= 0 {
		dst = dst[:start+i]
	}
	return append(dst, suffix...)
}

// appendCFloat appends v formatted like C's "%.*f" with glibc: Go's 'f'
// format rounds the exact binary value to nearest-even exactly like glibc,
// but infinities and NaNs are spelled "inf", "-inf", "nan" and "-nan" (the
// sign of a NaN is printed).
func appendCFloat(dst []byte, v float64, prec int) []byte {
	switch {
	case math.IsNaN(v):
		if math.Signbit(v) {
			return append(dst, "-nan"...)
		}
		return append(dst, "nan"...)
	case math.IsInf(v, 1):
		return append(dst, "inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-inf"...)
	}
	return strconv.AppendFloat(dst, v, 'f', prec, 64)
}

// appendCFloat052 appends v like C's "%05.2f": zero-padded to width 5,
// zeros going after a minus sign.
func appendCFloat052(dst []byte, v float64) []byte {
	start := len(dst)
	dst = appendCFloat(dst, v, 2)
	n := len(dst) - start
	if n >= 5 {
		return dst
	}
	// C ignores the 0 flag for inf and nan, but values reaching here are
	// finite (they come from a timespec).
	pad := 5 - n
	at := start
	if dst[at] == '-' {
		at++
	}
	dst = append(dst, "00000"[:pad]...)
	copy(dst[at+pad:], dst[at:len(dst)-pad])
	copy(dst[at:at+pad], "00000")
	return dst
}

// timespec splits d like a normalised struct timespec: 0 <= nsec < 1e9,
// sec rounded towards minus infinity.
func timespec(d time.Duration) (sec, nsec int64) {
	sec, nsec = int64(d/time.Second), int64(d%time.Second)
	if nsec < 0 {
		sec--
		nsec += int64(time.Second)
	}
	return sec, nsec
}

// Rate is qemu-io's tdiv(): n divided by the elapsed time in seconds, with
// the seconds computed as sec + nsec/1e9 in double precision like qemu
// does. Division by a zero elapsed time gives +Inf, or NaN with the sign
// bit set for 0/0 (the x86 default NaN, which glibc prints as "-nan").
// Report uses it for both the byte rate and the ops rate.
func Rate(n float64, elapsed time.Duration) float64 {
	sec, nsec := timespec(elapsed)
	seconds := float64(sec) + float64(nsec)/1e9
	if n == 0 && seconds == 0 {
		// Go leaves the sign of 0/0 to the hardware; qemu-io runs on x86,
		// whose divsd yields the negative "default NaN".
		return math.Float64frombits(0xfff8000000000000)
	}
	return n / seconds
}

// TimeText is qemu-io's timestr() for an elapsed time: "00.25 sec" if it is
// below one second and machine is false, otherwise "H:MM:SS.ss" (hours
// unpadded, seconds "%05.2f", which can round up to "60.00"). machine
// selects the -C format, which always uses the H:MM:SS.ss form.
//
// It takes a time.Duration rather than float seconds because qemu formats
// the seconds and nanoseconds of a timespec separately (SECONDS(sec) +
// nsec/1e9); a single float64 loses nanoseconds on long times and can
// then round the last digit differently.
func TimeText(elapsed time.Duration, machine bool) string {
	return string(appendTime(nil, elapsed, machine))
}

func appendTime(dst []byte, elapsed time.Duration, machine bool) []byte {
	sec, nsec := timespec(elapsed)
	frac := float64(nsec) / 1e9
	if !machine && sec == 0 {
		dst = appendCFloat052(dst, frac)
		return append(dst, " sec"...)
	}
	// "%u:%02u:%05.2f" with HOURS/MINUTES cast to unsigned int and
	// SECONDS(sec) + frac in double, C's truncating / and %.
	dst = strconv.AppendUint(dst, uint64(uint32(sec/3600)), 10)
	dst = append(dst, ':')
	m := uint32((sec % 3600) / 60)
	if m < 10 {
		dst = append(dst, '0')
	}
	dst = strconv.AppendUint(dst, uint64(m), 10)
	dst = append(dst, ':')
	return appendCFloat052(dst, float64(sec%60)+frac)
}

// Report returns qemu-io's print_report() text for a completed request,
// newline included, for stdout:
//
//	OP TOTAL/TOTAL bytes at offset OFFSET
//	SIZE, OPS ops; TIME (RATE/sec and OPSRATE ops/sec)
//
// or, if machine (-C) is set, the single line
//
//	TOTAL,OPS,H:MM:SS.ss,BYTES_PER_SEC,OPS_PER_SEC
//
// op is "read", "wrote" or "discard". qemu-io 7.2 always passes the
// request length as both numbers of TOTAL/TOTAL and 1 as ops. An elapsed
// time of zero, which a real clock never yields, gives "inf EiB/sec" and
// "inf ops/sec" (or "-nan bytes/sec" if total is 0), as C would print.
func Report(op string, total, offset int64, elapsed time.Duration, ops int, machine bool) string {
	b := make([]byte, 0, 128)
	if machine {
		b = strconv.AppendInt(b, total, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(ops), 10)
		b = append(b, ',')
		b = appendTime(b, elapsed, true)
		b = append(b, ',')
		b = appendCFloat(b, Rate(float64(total), elapsed), 3)
		b = append(b, ',')
		b = appendCFloat(b, Rate(float64(ops), elapsed), 3)
		b = append(b, '\n')
		return string(b)
	}
	b = append(b, op...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, total, 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, total, 10)
	b = append(b, " bytes at offset "...)
	b = strconv.AppendInt(b, offset, 10)
	b = append(b, '\n')
	b = appendSize(b, float64(total))
	b = append(b, ", "...)
	b = strconv.AppendInt(b, int64(ops), 10)
	b = append(b, " ops; "...)
	b = appendTime(b, elapsed, false)
	b = append(b, " ("...)
	b = appendSize(b, Rate(float64(total), elapsed))
	b = append(b, "/sec and "...)
	b = appendCFloat(b, Rate(float64(ops), elapsed), 4)
	b = append(b, " ops/sec)\n"...)
	return string(b)
}

// HexDump writes qemu-io's dump_buffer() output for buf, which was read at
// offset, to w (qemu-io prints it on stdout for -v): rows of 16 bytes as
//
//	0000000f:  48 65 6c 6c 6f 2c 20 57 6f 72 6c 64 21 20 61 62  Hello..World..ab
//
// with the address in %08x of offset+index (wider when needed, not aligned
// to 16), each byte as two hex digits and a space, one more space, and the
// bytes again with everything but ASCII letters and digits shown as '.'.
// The last row is not padded. It returns the first write error.
func HexDump(w io.Writer, offset int64, buf []byte) error {
	const hexDigits = "0123456789abcdef"
	const flushAt = 32 << 10
	out := make([]byte, 0, min(len(buf)/16+1, flushAt/64+2)*80)
	for i := 0; i < len(buf); i += 16 {
		row := buf[i:min(i+16, len(buf))]
		addr := uint64(offset) + uint64(i) // PRIx64 of offset + i, unsigned
		out = appendHex08(out, addr)
		out = append(out, ':', ' ', ' ')
		for _, c := range row {
			out = append(out, hexDigits[c>>4], hexDigits[c&15], ' ')
		}
		out = append(out, ' ')
		for _, c := range row {
			if isAlnum(c) {
				out = append(out, c)
			} else {
				out = append(out, '.')
			}
		}
		out = append(out, '\n')
		if len(out) >= flushAt {
			if _, err := w.Write(out); err != nil {
				return err
			}
			out = out[:0]
		}
	}
	if len(out) > 0 {
		_, err := w.Write(out)
		return err
	}
	return nil
}

// appendHex08 appends v like C's "%08" PRIx64.
func appendHex08(dst []byte, v uint64) []byte {
	var tmp [16]byte
	s := strconv.AppendUint(tmp[:0], v, 16)
	for n := len(s); n < 8; n++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// isAlnum is isalnum() in the C locale (qemu-io never calls setlocale).
func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
