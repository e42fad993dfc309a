package qcrypto

import (
	"fmt"

	"gio/blk/qdict"
)

// TakeCreateOptions takes the LUKS creation options (QEMU's
// BLOCK_CRYPTO_OPT_DEF_LUKS_*) with prefix ("" for luks, "encrypt." for
// qcow2) and returns them with the key secret's id.
func TakeCreateOptions(d *qdict.Dict, prefix string) (CreateOptions, string, error) {
	var o CreateOptions
	if v, ok := d.TakeString(prefix + "cipher-alg"); ok {
		a, good := ParseAlg(v)
		if !good {
			return o, "", fmt.Errorf("Parameter '%scipher-alg' does not accept value '%s'", prefix, v)
		}
		o.Alg = a
	}
	enum := func(key string, allowed []string, dst *string) error {
		v, ok := d.TakeString(prefix + key)
		if !ok {
			return nil
		}
		for _, x := range allowed {
			if x == v {
				*dst = v
				return nil
			}
		}
		return fmt.Errorf("Parameter '%s%s' does not accept value '%s'", prefix, key, v)
	}
	hashNames := []string{"md5", "sha1", "sha224", "sha256", "sha384", "sha512", "ripemd160"}
	for _, e := range []struct {
		key     string
		allowed []string
		dst     *string
	}{
		{"cipher-mode", []string{"ecb", "cbc", "xts", "ctr"}, &o.Mode},
		{"ivgen-alg", []string{"plain", "plain64", "essiv"}, &o.IVGen},
		{"ivgen-hash-alg", hashNames, &o.IVHash},
		{"hash-alg", hashNames, &o.Hash},
	} {
		if err := enum(e.key, e.allowed, e.dst); err != nil {
			return o, "", err
		}
	}
	if v, ok := d.TakeString(prefix + "iter-time"); ok {
		var t int64
		if _, err := fmt.Sscanf(v, "%d", &t); err != nil || fmt.Sprint(t) != v || t <= 0 {
			return o, "", fmt.Errorf("Parameter '%siter-time' expects a number", prefix)
		}
		o.IterTime = t
	}
	id, ok := d.TakeString(prefix + "key-secret")
	if !ok {
		return o, "", fmt.Errorf("Parameter '%skey-secret' is required for cipher", prefix)
	}
	return o, id, nil
}
