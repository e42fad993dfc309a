package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gio/blk"
	"gio/blk/qdict"
	"gio/commands"
	"gio/internal/secret"
)

// secrets holds the --object secret definitions of the command line; every
// registry the program builds resolves secret ids there.
var secrets secret.Store

func withSecrets(r *blk.Registry) *blk.Registry {
	r.SetSecrets(&secrets)
	return r
}

// addObject handles one --object option. It returns stop when the program
// must exit with code: after help (0) or an error (1), as qemu-io does.
func addObject(def string, out io.Writer) (code int, stop bool) {
	var err error
	if strings.HasPrefix(def, "{") {
		// user_creatable_parse_str: a JSON object, typed.
		err = addJSONObject(def, out)
	} else {
		err = secrets.Add(def, out)
	}
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, secret.ErrHelp):
		return 0, true
	}
	if f, ok := out.(interface{ Flush() error }); ok {
		f.Flush()
	}
	var ue *secret.UnsupportedError
	if errors.As(err, &ue) {
		fmt.Fprintln(os.Stderr, err) // gio's own message, not QEMU's
		return 1, true
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", commands.ProgName, err)
	return 1, true
}

// addJSONObject defines an object from a JSON --object.
func addJSONObject(def string, out io.Writer) error {
	d, err := qdict.ParseJSON(def)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "Could not parse the JSON options: "))
	}
	var members []secret.Member
	seen := map[string]bool{}
	for _, k := range d.Keys() {
		v, kind, _ := d.Lookup(k)
		typ := map[qdict.Kind]string{qdict.String: "string", qdict.Number: "number", qdict.Bool: "boolean",
			qdict.Null: "null", qdict.EmptyObject: "object", qdict.EmptyList: "array"}[kind]
		if top, _, nested := strings.Cut(k, "."); nested {
			// qdict_flatten took a nested object apart.
			k, typ, v = top, "object", ""
		}
		if !seen[k] {
			seen[k] = true
			members = append(members, secret.Member{Key: k, Value: v, Type: typ})
		}
	}
	return secrets.AddJSON(members, out)
}
