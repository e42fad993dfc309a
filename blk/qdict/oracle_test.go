package qdict

import (
	"bytes"
	"math/bits"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The oracle tests compare against a real qemu-io 7.2. They only run when
// GIO_QEMU_ORACLE=1 is set and qemu-io is in PATH (other QEMU versions
// word things differently).

func oracle(t *testing.T) {
	t.Helper()
	if os.Getenv("GIO_QEMU_ORACLE") != "1" {
		t.Skip("set GIO_QEMU_ORACLE=1 to compare with the installed qemu-io")
	}
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not installed")
	}
}

// oracleRuns is how many random cases to try: def, or GIO_QEMU_ORACLE_N.
// GIO_QEMU_ORACLE_SEED changes the random inputs.
func oracleRuns(def int) (int, *rand.Rand) {
	n := def
	if v, err := strconv.Atoi(os.Getenv("GIO_QEMU_ORACLE_N")); err == nil && v > 0 {
		n = v
	}
	seed, _ := strconv.ParseInt(os.Getenv("GIO_QEMU_ORACLE_SEED"), 10, 64)
	return n, rand.New(rand.NewSource(seed))
}

// qemuStderr runs qemu-io with args (and "-c quit") and returns stderr.
func qemuStderr(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("qemu-io", append(args, "-c", "quit")...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Stdin = strings.NewReader("")
	_ = cmd.Run()
	return errb.String()
}

// mutate makes a random edit of s using bytes from alphabet.
func mutate(r *rand.Rand, s, alphabet string) string {
	b := []byte(s)
	for n := 1 + r.Intn(3); n > 0; n-- {
		c := alphabet[r.Intn(len(alphabet))]
		switch i := r.Intn(len(b) + 1); r.Intn(3) {
		case 0:
			b = append(b[:i], append([]byte{c}, b[i:]...)...)
		case 1:
			if i < len(b) {
				b = append(b[:i], b[i+1:]...)
			}
		default:
			if i < len(b) {
				b[i] = c
			}
		}
	}
	return string(b)
}

func TestOracleJSON(t *testing.T) {
	oracle(t)
	seeds := []string{
		`{"driver":"null-co","a":{"b":[1,2.5e3,"x"]},"c":'d',"e":"\u00e9\ud83d\ude00"}`,
		`{"driver":"null-co","aa":[{"b":true},null,{}],"b.c":-0.0}`,
		`{"x":[],"y":"\"\\\/","z":123456789012345678901}`,
	}
	alphabet := "{}[],:\"'\\ .-+0123456789eEtruflsnabcxu\t\xc3\xa9"
	runs, r := oracleRuns(300)
	for i := 0; i < runs; i++ {
		s := mutate(r, seeds[i%len(seeds)], alphabet)
		if strings.IndexByte(s, 0) >= 0 {
			continue
		}
		got := qemuStderr(t, "json:"+s)
		d, err := ParseJSON(s)
		if err != nil {
			want := "qemu-io: can't open device json:" + s + ": " + err.Error() + "\n"
			if got != want {
				t.Errorf("%s\n qemu: %q\n  gio: %q", s, got, want)
			}
			continue
		}
		if strings.Contains(got, "Could not parse the JSON options") || strings.Contains(got, "Invalid JSON object given") {
			t.Errorf("%s\n qemu: %q\n  gio: accepted %q", s, got, pairs(d))
			continue
		}
		// With driver=null-co, QEMU names the first leftover option in
		// hash order; that checks the flattened keys.
		if v, ok := d.Get("driver"); ok && v == "null-co" && d.Len() > 1 {
			d.Del("driver")
			first := d.HashOrderKeys()[0]
			want := "qemu-io: can't open device json:" + s + ": Block protocol 'null-co' doesn't support the option '" + first + "'\n"
			if got != want && !sharesBucket(d.Keys(), first) {
				t.Errorf("%s\n qemu: %q\n  gio: %q", s, got, want)
			}
		}
	}
}

// sharesBucket reports whether key's hash bucket holds another key too, in
// which case QEMU's order depends on its internal copying history.
func sharesBucket(keys []string, key string) bool {
	for _, k := range keys {
		if k != key && qdictBucket(k) == qdictBucket(key) {
			return true
		}
	}
	return false
}

func TestOracleKeyValue(t *testing.T) {
	oracle(t)
	runs, r := oracleRuns(200)
	alphabet := "ab.,=noid1x?"
	for i := 0; i < runs; i++ {
		n := r.Intn(12)
		b := make([]byte, n)
		for j := range b {
			b[j] = alphabet[r.Intn(len(alphabet))]
		}
		s := "driver=null-co," + string(b)
		got := qemuStderr(t, "--image-opts", s)
		d, warns, err := ParseKeyValue(s)
		var want strings.Builder
		for _, w := range warns {
			want.WriteString("qemu-io: " + w + "\n")
		}
		if err != nil {
			want.WriteString("qemu-io: " + err.Error() + "\n")
		} else {
			if v, _ := d.Get("driver"); v != "null-co" {
				continue // the random part redefined the driver
			}
			d.Del("driver")
			if d.Len() == 0 {
				continue // opens fine
			}
			first := d.HashOrderKeys()[0]
			if sharesBucket(d.Keys(), first) {
				continue
			}
			want.WriteString("qemu-io: can't open: Block protocol 'null-co' doesn't support the option '" + first + "'\n")
		}
		if got != want.String() {
			t.Errorf("%q\n qemu: %q\n  gio: %q", s, got, want.String())
		}
	}
}

func TestOracleSize(t *testing.T) {
	oracle(t)
	runs, r := oracleRuns(300)
	alphabet := "0123456789.xXkKmMgGbBeE -+"
	for i := 0; i < runs; i++ {
		n := 1 + r.Intn(8)
		b := make([]byte, n)
		for j := range b {
			b[j] = alphabet[r.Intn(len(alphabet))]
		}
		val := string(b)
		got := qemuStderr(t, "--image-opts", "driver=blkdebug,image.driver=null-co,align="+val)
		v, warn, err := ParseSize("align", val)
		var want strings.Builder
		if warn != "" {
			want.WriteString("qemu-io: " + warn + "\n")
		}
		switch {
		case err != nil:
			want.WriteString("qemu-io: can't open: " + err.Error() + "\n")
		case v == 0 || v < 1<<31 && bits.OnesCount64(v) == 1:
			// opens fine
		default:
			want.WriteString("qemu-io: can't open: Cannot meet constraints with align " + strconv.FormatUint(v, 10) + "\n")
		}
		if got != want.String() {
			t.Errorf("%q\n qemu: %q\n  gio: %q", val, got, want.String())
		}
	}
}
