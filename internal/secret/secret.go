// Package secret is qemu-io's --object option for QEMU's "secret" objects
// (crypto/secret.c, crypto/secret_common.c): it parses the option with
// QEMU's keyval syntax and messages, loads the data (inline or from a
// file, raw or base64, optionally AES-256-CBC encrypted with another
// secret), and keeps the result in a Store that the block drivers query
// by id through blk.Secrets.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"gio/internal/cutils"
	"io"
	"os"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Store holds the secrets defined so far, by id. The zero value is empty
// and ready to use.
type Store struct {
	data map[string][]byte
}

// ErrHelp is returned by Add after printing the help that the option
// asked for ("help", "secret,help"): qemu-io then exits successfully.
var ErrHelp = errors.New("help printed")

// UnsupportedError is the answer for an object type qemu-io accepts and
// gio does not have; its text is gio's, not QEMU's.
type UnsupportedError struct{ Type string }

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("gio: --object %s: gio has no '%s' objects yet, so images that need one (TLS, throttling) cannot be opened", e.Type, e.Type)
}

// objectTypes are the types qemu-io 7.2 lists as user creatable.
var objectTypes = []string{"authz-list", "authz-list-file", "authz-simple", "main-loop",
	"pr-manager-helper", "secret", "secret_keyring", "thread-context", "throttle-group",
	"tls-cipher-suites", "tls-creds-anon", "tls-creds-psk", "tls-creds-x509"}

// qomTypes are all the object types QEMU knows; qemu-io refuses those
// it does not list with "invalid object type".
var otherTypes = []string{"iothread", "memory-backend-file", "memory-backend-ram",
	"memory-backend-memfd", "rng-random", "rng-builtin", "rng-egd", "cryptodev-backend-builtin",
	"filter-buffer", "filter-dump", "filter-mirror", "filter-redirector", "filter-replay",
	"filter-rewriter", "colo-compare", "input-barrier", "input-linux", "dbus-vmstate",
	"x-remote-object", "x-vfio-user-server", "can-bus", "can-host-socketcan", "acpi-generic-initiator"}

var secretOptions = []string{"data", "file", "format", "iv", "keyid"}

// Add defines an object from a --object option value, as qemu-io does
// when it parses its command line. help output goes to w.
func (s *Store) Add(def string, w io.Writer) error {
	params, help, err := parseKeyval(def)
	if err != nil {
		return err
	}
	return s.add(params, help, w)
}

// Member is one member of a JSON --object ('{"qom-type": "secret", ...}'):
// its value's text and its JSON type ("string", "number", "boolean",
// "null", "object", "array").
type Member struct{ Key, Value, Type string }

// AddJSON defines an object from the members of a JSON --object, as
// QEMU's QAPI visitor takes them: typed, so a member of the wrong type is
// refused ("Invalid parameter type for 'data', expected: string"), in the
// order of the schema (qom-type, id, then the secret's own members).
func (s *Store) AddJSON(members []Member, w io.Writer) error {
	byKey := map[string]Member{}
	var params []param
	for _, m := range members {
		byKey[m.Key] = m
		params = append(params, param{m.Key, m.Value})
	}
	for _, k := range []string{"qom-type", "id", "loaded", "format", "keyid", "iv", "data", "file"} {
		m, ok := byKey[k]
		want := "string"
		if k == "loaded" {
			want = "boolean"
		}
		if ok && m.Type != want {
			return fmt.Errorf("Invalid parameter type for '%s', expected: %s", k, want)
		}
		if k == "qom-type" && ok && m.Value == "help" {
			// Only the keyval syntax has help.
			return fmt.Errorf("Parameter 'qom-type' does not accept value 'help'")
		}
	}
	return s.add(params, false, w)
}

func (s *Store) add(params []param, help bool, w io.Writer) error {
	typ, hasType := "", false
	for _, p := range params {
		if p.key == "qom-type" {
			typ, hasType = p.value, true
		}
	}
	if help && (!hasType || typ == "help") || typ == "help" {
		fmt.Fprintln(w, "List of user creatable objects:")
		for _, t := range objectTypes {
			fmt.Fprintf(w, "  %s\n", t)
		}
		return ErrHelp
	}
	if !hasType {
		return fmt.Errorf("Parameter 'qom-type' is missing")
	}
	if !contains(objectTypes, typ) {
		if contains(otherTypes, typ) {
			return fmt.Errorf("invalid object type: %s", typ)
		}
		return fmt.Errorf("Parameter 'qom-type' does not accept value '%s'", typ)
	}
	if typ != "secret" {
		return &UnsupportedError{Type: typ}
	}
	if help {
		fmt.Fprintln(w, "secret options:")
		for _, o := range []string{"data=<string>", "file=<string>", "format=<QCryptoSecretFormat>", "iv=<string>", "keyid=<string>"} {
			fmt.Fprintf(w, "  %s\n", o)
		}
		return ErrHelp
	}
	o := map[string]string{}
	has := map[string]bool{}
	hasID := false
	for _, p := range params {
		hasID = hasID || p.key == "id"
	}
	if !hasID {
		// The visitor reads qom-type and id before the type's members.
		return fmt.Errorf("Parameter 'id' is missing")
	}
	for _, p := range params {
		if p.key == "qom-type" {
			continue
		}
		if p.key == "loaded" {
			return fmt.Errorf("Property 'secret.loaded' is not writable")
		}
		if p.key != "id" && !contains(secretOptions, p.key) {
			return fmt.Errorf("Parameter '%s' is unexpected", p.key)
		}
		o[p.key], has[p.key] = p.value, true
	}
	id, ok := o["id"]
	if !ok {
		return fmt.Errorf("Parameter 'id' is missing")
	}
	if !isIdentifier(id) {
		return fmt.Errorf("Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.")
	}
	format := "raw"
	if has["format"] {
		format = o["format"]
		if format != "raw" && format != "base64" {
			return fmt.Errorf("Parameter 'format' does not accept value '%s'", format)
		}
	}
	if _, dup := s.data[id]; dup {
		return fmt.Errorf("attempt to add duplicate property '%s' to object (type 'container')", id)
	}
	// qcrypto_secret_load_data.
	var input []byte
	switch {
	case has["file"] && has["data"]:
		return fmt.Errorf("'file' and 'data' are mutually exclusive")
	case has["file"]:
		b, err := os.ReadFile(o["file"])
		if err != nil {
			return fmt.Errorf("Unable to read %s: %s", o["file"], gFileError(o["file"], err))
		}
		input = b
	case has["data"]:
		input = []byte(o["data"])
		if i := strings.IndexByte(o["data"], 0); i >= 0 {
			input = input[:i] // a C string
		}
	default:
		return fmt.Errorf("Either 'file' or 'data' must be provided")
	}
	// qcrypto_secret_complete.
	var err error
	if has["keyid"] {
		if input, err = s.decrypt(o["keyid"], o["iv"], has["iv"], format, input); err != nil {
			return err
		}
	} else if format == "base64" {
		if input, err = decodeBase64(input); err != nil {
			return err
		}
	}
	if s.data == nil {
		s.data = map[string][]byte{}
	}
	s.data[id] = input
	return nil
}

// decrypt is qcrypto_secret_decrypt: AES-256-CBC with the key held by
// secret keyid, PKCS#7-style padding.
func (s *Store) decrypt(keyid, ivText string, hasIV bool, format string, input []byte) ([]byte, error) {
	key, err := s.Secret(keyid)
	if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("Key should be 32 bytes in length")
	}
	if !hasIV {
		return nil, fmt.Errorf("IV is required to decrypt secret")
	}
	iv, err := decodeBase64([]byte(ivText))
	if err != nil {
		return nil, err
	}
	if len(iv) != 16 {
		return nil, fmt.Errorf("IV should be 16 bytes in length not %d", len(iv))
	}
	if format == "base64" {
		if input, err = decodeBase64(input); err != nil {
			return nil, err
		}
	}
	if len(input) == 0 || len(input)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("Length %d must be a multiple of block size %d", len(input), aes.BlockSize)
	}
	b, _ := aes.NewCipher(key)
	out := make([]byte, len(input))
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, input)
	pad := int(out[len(out)-1])
	if pad > 16 || pad > len(out) {
		return nil, fmt.Errorf("Incorrect number of padding bytes (%d) found on decrypted data", pad)
	}
	return out[:len(out)-pad], nil
}

// decodeBase64 is qbase64_decode: strict about the alphabet, then as
// lenient as glib's decoder about length and padding.
func decodeBase64(in []byte) ([]byte, error) {
	for _, c := range in {
		if c == 0 {
			return nil, fmt.Errorf("Base64 data contains embedded NUL characters")
		}
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' || c == '\n') {
			return nil, fmt.Errorf("Base64 data contains invalid characters")
		}
	}
	var clean []byte
	for _, c := range in {
		if c == '=' || c == '\n' {
			continue
		}
		clean = append(clean, c)
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	return base64.RawStdEncoding.DecodeString(string(clean))
}

// gFileError is the message of glib's g_file_get_contents for err.
func gFileError(name string, err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		msg = strings.ToUpper(msg[:1]) + msg[1:]
		if errno == syscall.EISDIR {
			return fmt.Sprintf("Error reading file \u201c%s\u201d: %s", name, msg)
		}
		return fmt.Sprintf("Failed to open file \u201c%s\u201d: %s", name, msg)
	}
	return err.Error()
}

// Secret returns the data of secret id (qcrypto_secret_lookup).
func (s *Store) Secret(id string) ([]byte, error) {
	d, ok := s.data[id]
	if !ok {
		return nil, fmt.Errorf("No secret with id '%s'", id)
	}
	return d, nil
}

// Password returns secret id as a password (qcrypto_secret_lookup_as_utf8):
// valid UTF-8 without NUL bytes.
func (s *Store) Password(id string) ([]byte, error) {
	d, err := s.Secret(id)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(d) || strings.IndexByte(string(d), 0) >= 0 {
		return nil, fmt.Errorf("Data from secret %s is not valid UTF-8", id)
	}
	return d, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isIdentifier is id_wellformed: a letter, then letters, digits, '-',
// '.', '_'.
func isIdentifier(id string) bool {
	for i, c := range []byte(id) {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter || !letter && !(c >= '0' && c <= '9') && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return id != ""
}

type param struct{ key, value string }

// parseKeyval is keyval_parse with "qom-type" as the implied key of a
// leading value without '='. Later duplicates win; ",," is a literal
// comma; a bare "help" asks for help.
func parseKeyval(s string) ([]param, bool, error) {
	var params []param
	help := false
	first := true
	for s != "" {
		// The key runs to '=' or ','.
		i := strings.IndexAny(s, "=,")
		if i < 0 || s[i] == ',' {
			word := s
			if i >= 0 {
				word = s[:i]
			}
			if word == "help" || word == "?" {
				help = true
				s = rest(s, i)
				first = false
				continue
			}
			if word == "" {
				return nil, false, fmt.Errorf("Invalid parameter ''")
			}
			if first {
				v, r := cutils.OptValue(s)
				params = append(params, param{"qom-type", v})
				s, first = r, false
				continue
			}
			return nil, false, fmt.Errorf("Expected '=' after parameter '%s'", word)
		}
		key := s[:i]
		if key == "" || !validKey(key) {
			return nil, false, fmt.Errorf("Invalid parameter '%s'", key)
		}
		v, r := cutils.OptValue(s[i+1:])
		params = append(params, param{key, v})
		s, first = r, false
	}
	return params, help, nil
}

func rest(s string, i int) string {
	if i < 0 {
		return ""
	}
	return s[i+1:]
}

func validKey(k string) bool {
	for _, c := range []byte(k) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
