package secret

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdd: definitions and QEMU's messages (measured with qemu-io 7.2).
func TestAdd(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("from a file"), 0o600)
	for _, tc := range []struct {
		def, id, want, err string
	}{
		{def: "secret,id=s,data=123456", id: "s", want: "123456"},
		{def: "secret,id=s,data=MTIzNDU2,format=base64", id: "s", want: "123456"},
		{def: "secret,id=s,data=a,,b", id: "s", want: "a,b"},
		{def: "secret,id=s,data=x,id=t", id: "t", want: "x"},
		{def: "secret,id=s,file=" + pw, id: "s", want: "from a file"},
		{def: "secret,id=s,data=x,format=raw", id: "s", want: "x"},
		{def: "secret", err: "Parameter 'id' is missing"},
		{def: "secret,id=s", err: "Either 'file' or 'data' must be provided"},
		{def: "secret,id=s,data=x,file=" + pw, err: "'file' and 'data' are mutually exclusive"},
		{def: "secret,id=s,file=/nonexistent", err: "Unable to read /nonexistent: Failed to open file \u201c/nonexistent\u201d: No such file or directory"},
		{def: "secret,id=s,data=x,format=foo", err: "Parameter 'format' does not accept value 'foo'"},
		{def: "secret,id=s,data=x,foo=bar", err: "Parameter 'foo' is unexpected"},
		{def: "foo,id=s", err: "Parameter 'qom-type' does not accept value 'foo'"},
		{def: "", err: "Parameter 'qom-type' is missing"},
		{def: "id=s", err: "Parameter 'qom-type' is missing"},
		{def: "iothread,id=t", err: "invalid object type: iothread"},
		{def: "secret,id=s,data=x,keyid=k", err: "No secret with id 'k'"},
		{def: "secret,id=1s,data=x", err: "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter."},
		{def: "secret,id=s,data=x,loaded=on", err: "Property 'secret.loaded' is not writable"},
		{def: "secret,id=s,data=@@@@,format=base64", err: "Base64 data contains invalid characters"},
		{def: "secret,id=s,data,x", err: "Expected '=' after parameter 'data'"},
		{def: "secret,id=s,=x", err: "Invalid parameter ''"},
	} {
		t.Run(tc.def, func(t *testing.T) {
			var s Store
			err := s.Add(tc.def, &bytes.Buffer{})
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Add(%q) = %v, want %q", tc.def, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Add(%q): %v", tc.def, err)
			}
			got, err := s.Secret(tc.id)
			if err != nil || string(got) != tc.want {
				t.Fatalf("Secret(%q) = %q, %v; want %q", tc.id, got, err, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var s Store
	var out bytes.Buffer
	if err := s.Add("help", &out); err != ErrHelp || !strings.Contains(out.String(), "\n  secret\n") {
		t.Fatalf("help: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := s.Add("secret,help", &out); err != ErrHelp || !strings.HasPrefix(out.String(), "secret options:\n  data=<string>\n") {
		t.Fatalf("secret,help: %v\n%s", err, out.String())
	}
}

// TestEncryptedSecret: a secret encrypted with another (keyid, iv), and
// the checks on key, IV and padding.
func TestEncryptedSecret(t *testing.T) {
	const key = "secret,id=k,data=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=,format=base64" // 32 bytes
	for _, tc := range []struct{ def, err string }{
		{"secret,id=s,data=y,keyid=k", "IV is required to decrypt secret"},
		{"secret,id=s,data=y,keyid=k,iv=AAAA", "IV should be 16 bytes in length not 3"},
		{"secret,id=s,data=AAAAAAAAAAAAAAAAAAAAAA==,format=base64,keyid=k,iv=AAAAAAAAAAAAAAAAAAAAAA==", ""},
	} {
		var s Store
		if err := s.Add(key, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		err := s.Add(tc.def, &bytes.Buffer{})
		if tc.err == "" {
			// 16 zero bytes decrypt to a block whose last byte decides the
			// padding: any outcome but a panic is fine, and an error names it.
			if err != nil && !strings.HasPrefix(err.Error(), "Incorrect number of padding bytes") {
				t.Fatalf("%s: %v", tc.def, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.err {
			t.Fatalf("%s: %v, want %q", tc.def, err, tc.err)
		}
	}
	var s Store
	s.Add("secret,id=short,data=abc", &bytes.Buffer{})
	if err := s.Add("secret,id=s,data=y,keyid=short", &bytes.Buffer{}); err == nil || err.Error() != "Key should be 32 bytes in length" {
		t.Fatalf("short key: %v", err)
	}
	if err := s.Add("secret,id=short,data=x", &bytes.Buffer{}); err == nil || err.Error() != "attempt to add duplicate property 'short' to object (type 'container')" {
		t.Fatalf("duplicate: %v", err)
	}
}

func TestPassword(t *testing.T) {
	var s Store
	s.Add("secret,id=bad,data=/w==,format=base64", &bytes.Buffer{})
	if _, err := s.Password("bad"); err == nil || err.Error() != "Data from secret bad is not valid UTF-8" {
		t.Fatalf("Password(bad) = %v", err)
	}
	if _, err := s.Password("none"); err == nil || err.Error() != "No secret with id 'none'" {
		t.Fatalf("Password(none) = %v", err)
	}
}

// FuzzAdd: no definition makes Add panic.
func FuzzAdd(f *testing.F) {
	for _, d := range []string{"secret,id=s,data=x", "secret,id=s,data=QUJD,format=base64", "help", "secret,help", "a,,b,c=d"} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, def string) {
		if strings.Contains(def, "file=") {
			return // no file system access from the fuzzer
		}
		var s Store
		_ = s.Add(def, &bytes.Buffer{})
	})
}
