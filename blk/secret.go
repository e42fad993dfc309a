package blk

import "fmt"

// Secrets resolves the ids of QEMU secret objects (qemu-io's --object
// secret,id=ID,...) for drivers that need a key, such as luks and
// encrypted qcow2. Password returns the secret as a password: it fails
// with QEMU's message ("No secret with id 'ID'", "Data from secret ID is
// not valid UTF-8") when there is none or it is not valid UTF-8.
type Secrets interface {
	Password(id string) ([]byte, error)
}

// SetSecrets makes s the registry's secret store.
func (r *Registry) SetSecrets(s Secrets) { r.secrets = s }

func (r *Registry) password(id string) ([]byte, error) {
	if r == nil || r.secrets == nil {
		return nil, fmt.Errorf("No secret with id '%s'", id)
	}
	return r.secrets.Password(id)
}

// Password looks up secret id for the node being opened.
func (a *OpenArgs) Password(id string) ([]byte, error) { return a.reg.password(id) }

// Password looks up secret id for the image being created.
func (a *CreateArgs) Password(id string) ([]byte, error) { return a.reg.password(id) }
