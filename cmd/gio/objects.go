package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"gio/blk"
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
	err := secrets.Add(def, out)
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
