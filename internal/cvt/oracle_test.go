package cvt

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"gio/internal/cutils"
)

// The oracle tests compare against a real qemu-io 7.2. They only run when
// GIO_QEMU_ORACLE=1 is set and qemu-io is in PATH, since other QEMU
// versions behave differently (8.x rejects hex numbers with a suffix).

// hugeNull is a null-co image as large as QEMU allows (2^63 - 2^31), so
// that "read OFF 0" succeeds and echoes the parsed offset for nearly every
// value ParseNum can return.
const hugeNull = "driver=null-co,size=9223372034707292160"

func oracle(t *testing.T) {
	t.Helper()
	if os.Getenv("GIO_QEMU_ORACLE") != "1" {
		t.Skip("set GIO_QEMU_ORACLE=1 to compare with the installed qemu-io")
	}
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not installed")
	}
}

// runScript feeds lines to qemu-io on stdin (each prompt flushes stdout, so
// stderr and stdout stay in command order) and returns the output of each
// line.
func runScript(t *testing.T, args []string, lines []string) []string {
	t.Helper()
	cmd := exec.Command("qemu-io", args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	_ = cmd.Run() // rc 1 is expected after errors
	parts := strings.Split(out.String(), "qemu-io> ")
	if len(parts) != len(lines)+2 {
		t.Fatalf("got %d prompts for %d lines:\n%s", len(parts)-1, len(lines), out.String())
	}
	return parts[1 : len(lines)+1]
}

// randomNumWord makes words that look enough like numbers to reach every
// branch of qemu_strtosz.
func randomNumWord(r *rand.Rand) string {
	const alpha = "0123456789.xXbBeEkKmMgGtTpP+-\t\va_"
	var b strings.Builder
	switch r.Intn(3) {
	case 0: // random soup
		for n := r.Intn(12) + 1; n > 0; n-- {
			b.WriteByte(alpha[r.Intn(len(alpha))])
		}
	case 1: // decimal, fraction, suffix
		for n := r.Intn(20) + 1; n > 0; n-- {
			b.WriteByte('0' + byte(r.Intn(10)))
		}
		if r.Intn(2) == 0 {
			b.WriteByte('.')
			for n := r.Intn(22); n > 0; n-- {
				b.WriteByte("0123456789999"[r.Intn(13)])
			}
			if r.Intn(4) == 0 {
				b.WriteString([]string{"e3", "e-3", "e", "e+", "e999", "e-999"}[r.Intn(6)])
			}
		}
		if r.Intn(3) != 0 {
			b.WriteByte("bBkKmMgGtTpPeEx"[r.Intn(15)])
		}
	case 2: // hex
		b.WriteString([]string{"0x", "0X", "+0x", "00x", "\t0x"}[r.Intn(5)])
		for n := r.Intn(18); n > 0; n-- {
			b.WriteByte("0123456789abcdefABCDEF"[r.Intn(22)])
		}
		if r.Intn(2) == 0 {
			b.WriteByte("kKmMgGtTpP.bx"[r.Intn(13)])
		}
	}
	return b.String()
}

func TestOracleParseNum(t *testing.T) {
	oracle(t)
	r := rand.New(rand.NewSource(7))
	var words []string
	for _, c := range parseNumCases {
		words = append(words, c.in)
	}
	for len(words) < 3000 {
		words = append(words, randomNumWord(r))
	}
	// alloc takes its arguments without getopt, so words starting with
	// '-' work, and the word is the last one on the line (see overrun).
	var lines []string
	var used []string
	for _, w := range words {
		if strings.ContainsAny(w, " \n") || w == "" || len(w) > 1000 {
			continue // not one word, or longer than qemu-io's 1023-byte line chunks
		}
		if _, _, _, overrun := cutils.Strtosz(w); overrun {
			continue // qemu reads heap memory after the word
		}
		used = append(used, w)
		if strings.HasPrefix(w, "-") {
			lines = append(lines, "alloc "+w)
		} else {
			lines = append(lines, "read "+w+" 0")
		}
	}
	outs := runScript(t, []string{"--image-opts", hugeNull}, lines)
	for i, w := range used {
		got := outs[i]
		v, warn, err := ParseNumWarn(w)
		var want string
		if warn != "" {
			want = "qemu-io: warning: " + warn + "\n"
		}
		switch {
		case err != nil:
			want += err.Error() + "\n"
		case strings.HasPrefix(w, "-"):
			want += "0/512 bytes allocated at offset " + Size(float64(v)) + "\n"
		case v > 9223372034707292160:
			want += "read failed: Input/output error\n"
		default:
			want += "read 0/0 bytes at offset " + strconv.FormatInt(v, 10) + "\n"
			// the statistics line varies; compare only the first line
			if j := strings.Index(got, "bytes at offset "); j >= 0 {
				if k := strings.IndexByte(got[j:], '\n'); k >= 0 {
					got = got[:j+k+1]
				}
			}
		}
		if got != want {
			t.Errorf("%q: qemu-io said %q, want %q", w, got, want)
		}
	}
	t.Logf("%d words compared", len(used))
}

func TestOraclePatternSleep(t *testing.T) {
	oracle(t)
	r := rand.New(rand.NewSource(8))
	var words []string
	for _, c := range patternCases {
		words = append(words, c.in)
	}
	for _, c := range sleepCases {
		words = append(words, c.in)
	}
	const alpha = "0123456789xXabcfg+-\t"
	for len(words) < 1500 {
		var b strings.Builder
		for n := r.Intn(6) + 1; n > 0; n-- {
			b.WriteByte(alpha[r.Intn(len(alpha))])
		}
		words = append(words, b.String())
	}
	var lines, used []string
	for _, w := range words {
		if w == "" || strings.ContainsAny(w, " \n") || strings.HasPrefix(w, "-") {
			continue // "-P -1": getopt takes -1 as the argument, fine, but keep it simple
		}
		used = append(used, w)
		// write the pattern quietly, then dump the byte to see its value
		lines = append(lines, "write -q -P "+w+" 0 1", "read -v 0 1")
	}
	outs := runScript(t, []string{"-f", "raw", "-t", "unsafe", newRaw(t)}, lines)
	cur := byte(0) // newRaw is all zeros
	for i, w := range used {
		p, err := ParsePattern(w)
		want := ""
		if err != nil {
			want = err.Error() + "\n"
		} else {
			cur = p
		}
		if got := outs[2*i]; got != want {
			t.Errorf("write -P %q: qemu-io said %q, want %q", w, got, want)
		}
		var dump bytes.Buffer
		_ = HexDump(&dump, 0, []byte{cur})
		if got := outs[2*i+1]; !strings.HasPrefix(got, dump.String()) {
			t.Errorf("after write -P %q: qemu-io dumped %q, want %q", w, got, dump.String())
		}
	}

	lines = lines[:0]
	var sleeps []string
	for _, w := range used {
		ms, err := ParseSleepMS(w)
		if err == nil && ms > 50 {
			continue
		}
		sleeps = append(sleeps, w)
		lines = append(lines, "sleep "+w)
	}
	outs = runScript(t, nil, lines)
	for i, w := range sleeps {
		want := ""
		if _, err := ParseSleepMS(w); err != nil {
			want = err.Error() + "\n"
		}
		if outs[i] != want {
			t.Errorf("sleep %q: qemu-io said %q, want %q", w, outs[i], want)
		}
	}
}

func TestOracleHexDump(t *testing.T) {
	oracle(t)
	img := newRaw(t)
	buf := make([]byte, 256)
	for i := range buf {
		buf[i] = byte(i)
	}
	if err := os.WriteFile(img, append(buf, make([]byte, 1024-256)...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ off, n int }{{0, 256}, {3, 5}, {250, 6}, {17, 33}, {0, 0}, {255, 1}} {
		out := runScript(t, []string{"-f", "raw", "-r", img},
			[]string{"read -v " + strconv.Itoa(c.off) + " " + strconv.Itoa(c.n)})[0]
		var want bytes.Buffer
		_ = HexDump(&want, int64(c.off), buf[c.off:c.off+c.n])
		if !strings.HasPrefix(out, want.String()+"read ") {
			t.Errorf("read -v %d %d: qemu-io said\n%s\nwant dump\n%s", c.off, c.n, out, want.String())
		}
	}
}

func newRaw(t *testing.T) string {
	t.Helper()
	p := t.TempDir() + "/img.raw"
	if err := os.WriteFile(p, make([]byte, 1024), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
