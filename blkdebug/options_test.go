package blkdebug

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gio/blk"
	"gio/blk/qdict"
	"gio/internal/cvt"
)

// optionCases are blkdebug options and qemu-io 7.2's verdict: the open
// error after "can't open: ", or "" for success. $CFG stands for a config
// file holding cfg; size is the image size (default 1 MiB).
var optionCases = []struct {
	name, opts, err string
	cfg             string
	size            int64
	readOnly        bool
	gioOnly         bool
}{
	{name: "no rules", opts: ""},
	{name: "align 0", opts: "align=0"},
	{name: "align 4k", opts: "align=4k,max-transfer=64k,opt-write-zero=8k,max-write-zero=64k,opt-discard=8k,max-discard=1M"},
	{name: "align 3", opts: "align=3", err: "Cannot meet constraints with align 3"},
	{name: "align 2G", opts: "align=2G", err: "Cannot meet constraints with align 2147483648"},
	{name: "align 8E", opts: "align=8E", err: "Cannot meet constraints with align 9223372036854775808"},
	{name: "align negative", opts: "align=-1", err: "Parameter 'align' expects a non-negative number below 2^64\n" +
		"Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively."},
	{name: "align fraction", opts: "align=1.5", err: "Parameter 'align' expects a non-negative number below 2^64\n" +
		"Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively."},
	{name: "align out of range", opts: "align=99999999999999999999", err: "Value '99999999999999999999' is out of range for parameter 'align'"},
	{name: "max-transfer unaligned", opts: "align=4096,max-transfer=1000", err: "Cannot meet constraints with max-transfer 1000"},
	{name: "max-transfer 2G", opts: "max-transfer=2G", err: "Cannot meet constraints with max-transfer 2147483648"},
	{name: "max-transfer 16E", opts: "max-transfer=16E", err: "Value '16E' is out of range for parameter 'max-transfer'"},
	{name: "opt-write-zero", opts: "align=4096,opt-write-zero=512", err: "Cannot meet constraints with opt-write-zero 512"},
	{name: "max-write-zero", opts: "opt-write-zero=8192,max-write-zero=4096", err: "Cannot meet constraints with max-write-zero 4096"},
	{name: "opt-discard", opts: "align=512,opt-discard=256", err: "Cannot meet constraints with opt-discard 256"},
	{name: "max-discard", opts: "opt-discard=8192,max-discard=4096", err: "Cannot meet constraints with max-discard 4096"},
	{name: "checks in QEMU's order", opts: "max-discard=3,align=3", err: "Cannot meet constraints with align 3"},
	{name: "size errors in hash order", opts: "align=x,max-transfer=y", err: "Parameter 'max-transfer' expects a non-negative number below 2^64\n" +
		"Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively."},
	{name: "rules before constraints", opts: "align=3,inject-error.event=bogus", err: "invalid parameter value: bogus"},
	{name: "sizes before rules", opts: "align=x,inject-error.event=bogus", err: "Parameter 'align' expects a non-negative number below 2^64\n" +
		"Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively."},
	{name: "rule", opts: "inject-error.event=read_aio,inject-error.errno=28,inject-error.once=on"},
	{name: "indexed rules", opts: "inject-error.0.event=read_aio,inject-error.1.event=write_aio,set-state.0.event=none,set-state.0.new_state=2"},
	{name: "missing event", opts: "inject-error.errno=5", err: "Missing event name for rule"},
	{name: "bad errno", opts: "inject-error.event=read_aio,inject-error.errno=x", err: "Parameter 'errno' expects a number"},
	{name: "errno too large", opts: "inject-error.event=read_aio,inject-error.errno=99999999999999999999", err: "Value '99999999999999999999' is too large for parameter 'errno'"},
	{name: "bad once", opts: "inject-error.event=read_aio,inject-error.once=x", err: "Parameter 'once' expects 'on' or 'off'"},
	{name: "bad iotype", opts: "inject-error.event=read_aio,inject-error.iotype=x", err: "invalid parameter value: x"},
	{name: "empty iotype", opts: "inject-error.event=read_aio,inject-error.iotype=", err: "invalid parameter value: "},
	{name: "type errors in hash order", opts: "inject-error.event=read_aio,inject-error.state=x,inject-error.once=x", err: "Parameter 'once' expects 'on' or 'off'"},
	{name: "iotype checked after types", opts: "inject-error.event=read_aio,inject-error.iotype=x,inject-error.immediately=y", err: "invalid parameter value: x"},
	{name: "type error before unknown option", opts: "inject-error.event=read_aio,inject-error.errno=x,inject-error.bogus=1", err: "Parameter 'errno' expects a number"},
	{name: "unknown option", opts: "inject-error.event=read_aio,inject-error.bogus=1", err: "Unknown option 'bogus' for [inject-error]"},
	{name: "unused option", opts: "inject-error.bogus=1", err: "Unused option 'bogus' for [inject-error]"},
	{name: "index gap", opts: "inject-error.1.event=read_aio", err: "Unused option '1.event' for [inject-error]"},
	{name: "unknown key in section", opts: "inject-error.0.event=read_aio,inject-error.0.bogus=3", err: "[inject-error] section doesn't support the option 'bogus'"},
	{name: "both spellings", opts: "inject-error.0.event=read_aio,inject-error.event=read_aio", err: "Unknown option '0.event' for [inject-error]"},
	{name: "scalar section", opts: "inject-error.0=read_aio", err: "[inject-error] section (index 0) does not consist of keys"},
	{name: "set-state has no errno", opts: "set-state.event=read_aio,set-state.errno=3", err: "Unknown option 'errno' for [set-state]"},
	{name: "set-state without event", opts: "set-state.state=1", err: "Missing event name for rule"},
	{name: "numbers", opts: "inject-error.event=read_aio,inject-error.errno=010,inject-error.sector= 0x10,inject-error.state=-1"},
	{name: "config and options", opts: "config=$CFG,inject-error.event=write_aio", cfg: "[inject-error]\nevent = \"read_aio\"\n"},
	{name: "config error first", opts: "config=$CFG,inject-error.event=bogus", cfg: "[foo]\n", err: "There is no option group 'foo'"},
	{name: "config events before option events", opts: "config=$CFG,inject-error.event=bogus", cfg: "[inject-error]\nevent = \"x\"\n", err: "invalid parameter value: x"},
	{name: "config id clashes with option section", opts: "config=$CFG,inject-error.0.event=read_aio", cfg: "[inject-error \"inject-error.0\"]\nevent = \"read_aio\"\n",
		err: "Duplicate ID 'inject-error.0' for inject-error"},
	{name: "missing config", opts: "config=/nonexistent/rules.cfg,align=3", err: "Could not read blkdebug config file: No such file or directory"},
	{name: "empty config name", opts: "config=", err: "Could not read blkdebug config file: No such file or directory"},
	{name: "config is a directory", opts: "config=/", err: "Cannot read config file: Is a directory"},
	{name: "perms", opts: "take-child-perms.0=write,take-child-perms.1=resize,unshare-child-perms.0=consistent-read"},
	{name: "perm graph-mod", opts: "take-child-perms.0=graph-mod", err: "Parameter 'null' does not accept value 'graph-mod'"},
	{name: "perm bogus", opts: "unshare-child-perms.0=bogus", err: "Parameter 'null' does not accept value 'bogus'"},
	{name: "perm case", opts: "take-child-perms.0=WRITE", err: "Parameter 'null' does not accept value 'WRITE'"},
	{name: "take before unshare", opts: "take-child-perms.0=bogus,unshare-child-perms.0=bogus2", err: "Parameter 'null' does not accept value 'bogus'"},
	{name: "perms not a list", opts: "take-child-perms=write", err: "Block protocol 'blkdebug' doesn't support the option 'take-child-perms'"},
	{name: "perm index gap", opts: "take-child-perms.1=write", err: "List indices are not contiguous, saw 1 elements but 1 largest index"},
	{name: "perm index gap 2", opts: "take-child-perms.0=write,take-child-perms.2=write", err: "List indices are not contiguous, saw 2 elements but 2 largest index"},
	{name: "perm negative index", opts: "take-child-perms.-1=write", err: "List indices are not contiguous, saw 1 elements but -1 largest index"},
	{name: "perm index 00", opts: "take-child-perms.00=write", err: "Missing list index 0"},
	{name: "perm nested", opts: "take-child-perms.0.x=write", err: "Invalid parameter type for '[0]', expected: string"},
	{name: "perm dict", opts: "take-child-perms.a=write", err: "Invalid parameter type for '<anonymous>', expected: array"},
	{name: "perm mixed", opts: "take-child-perms.0=write,take-child-perms.a=x", err: "Cannot mix list and non-list keys"},
	{name: "perm scalar and dict", opts: "take-child-perms.0=write,take-child-perms.0.x=y", err: "Cannot mix scalar and non-scalar keys"},
	{name: "perm empty", opts: "take-child-perms.0=", err: "Parameter 'null' does not accept value ''"},
	{name: "unknown option", opts: "bogus=1", err: "Block protocol 'blkdebug' doesn't support the option 'bogus'"},
	{name: "odd size read-write", opts: "align=4096", size: 1000, err: "Cannot get 'write' permission without 'resize': Image size is not a multiple of request alignment"},
	{name: "odd size read-only", opts: "align=4096", size: 1000, readOnly: true},
	{name: "odd size rounds to sectors", opts: "align=512", size: 1000},
	{name: "serialise", opts: "serialise=off", gioOnly: true},
	{name: "bad serialise", opts: "serialise=x", gioOnly: true, err: "Parameter 'serialise' expects 'on' or 'off'"},
}

// errText renders an open error the way gio's command layer prints it.
func errText(err error) string {
	var be *blk.Error
	if errors.As(err, &be) {
		switch {
		case be.Msg == "":
			return cvt.Strerror(be.Errno)
		case be.Plain:
			return be.Msg
		}
		return be.Msg + ": " + cvt.Strerror(be.Errno)
	}
	return err.Error()
}

func withConfig(t *testing.T, opts, cfg string) string {
	if !strings.Contains(opts, "$CFG") {
		return opts
	}
	p := filepath.Join(t.TempDir(), "rules.cfg")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(opts, "$CFG", p)
}

func TestOptions(t *testing.T) {
	for _, tc := range optionCases {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.size
			if size == 0 {
				size = 1 << 20
			}
			opts := "driver=blkdebug,image.driver=mem,image.size=" + strconv.FormatInt(size, 10)
			if o := withConfig(t, tc.opts, tc.cfg); o != "" {
				opts += "," + o
			}
			e, err := tryOpen(t, opts, blk.Spec{Flags: blk.OpenFlags{ReadOnly: tc.readOnly}})
			got := ""
			if err != nil {
				got = errText(err)
			}
			if got != tc.err {
				t.Fatalf("open %s: error %q, want %q", opts, got, tc.err)
			}
			if err == nil {
				e.img.Close()
			}
		})
	}
}

func TestOptionsAgainstQemu(t *testing.T) {
	q := needQemu(t)
	for _, tc := range optionCases {
		if tc.gioOnly {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			size := tc.size
			if size == 0 {
				size = 1 << 20
			}
			img := q.image(t, t.TempDir(), size)
			opts := "driver=raw,file.driver=blkdebug,file.image.filename=" + img
			if o := withConfig(t, tc.opts, tc.cfg); o != "" {
				opts += ",file." + strings.ReplaceAll(o, ",", ",file.")
			}
			args := []string{"--image-opts", opts, "-c", "quit"}
			if tc.readOnly {
				args = append([]string{"-r"}, args...)
			}
			want := ""
			if tc.err != "" {
				want = "qemu-io: can't open: " + tc.err + "\n"
			}
			if got := q.run(t, args...); got != want {
				t.Errorf("qemu-io %s:\n%s\ntable says\n%s", strings.Join(args, " "), got, want)
			}
		})
	}
}

// TestFilename covers blkdebug:CONFIG:IMAGE.
func TestFilename(t *testing.T) {
	for _, tc := range []struct {
		filename, err, config, image string
	}{
		{filename: "blkdebug::img", image: "img"},
		{filename: "blkdebug:rules.cfg:img", config: "rules.cfg", image: "img"},
		{filename: "blkdebug:rules.cfg:blkdebug::img", config: "rules.cfg", image: "blkdebug::img"},
		{filename: "blkdebug:::img", image: ":img"},
		{filename: "blkdebug::", image: ""},
		{filename: "img", image: "img"},
		{filename: "blkdebug:img", err: "blkdebug requires both config file and image path"},
		{filename: "blkdebug:", err: "blkdebug requires both config file and image path"},
	} {
		d := qdict.New()
		err := parseFilename(tc.filename, d)
		if tc.err != "" {
			if err == nil || errText(err) != tc.err {
				t.Errorf("parseFilename(%q) error = %v, want %q", tc.filename, err, tc.err)
			}
			continue
		}
		cfg, hasCfg := d.Get("config")
		img, _ := d.Get("x-image")
		if err != nil || cfg != tc.config || hasCfg != (tc.config != "") || img != tc.image {
			t.Errorf("parseFilename(%q) = config %q, x-image %q, %v; want %q, %q", tc.filename, cfg, img, err, tc.config, tc.image)
		}
	}
}

func TestXImageAndImageFilename(t *testing.T) {
	_, err := tryOpen(t, "driver=blkdebug,x-image=a,image.filename=b", blk.Spec{})
	if want := "Can't specify 'file' and 'filename' options at the same time"; err == nil || errText(err) != want {
		t.Errorf("open error = %v, want %q", err, want)
	}
}

func TestPermsParsed(t *testing.T) {
	e := openEnv(t, "driver=blkdebug,image.driver=mem,take-child-perms.0=write,take-child-perms.1=resize,unshare-child-perms.0=consistent-read", blk.Spec{})
	if e.bd.takePerms != blk.PermWrite|blk.PermResize || e.bd.unsharePerms != blk.PermConsistentRead {
		t.Errorf("perms = %v / %v, want write|resize / consistent-read", e.bd.takePerms, e.bd.unsharePerms)
	}
}

// TestConfigAndOptionsAgree: a rule written in the config file and the
// same rule written as options become the same Rule.
func TestConfigAndOptionsAgree(t *testing.T) {
	for _, tc := range []struct{ cfg, opts string }{
		{"[inject-error]\nevent = \"read_aio\"\n", "inject-error.event=read_aio"},
		{"[inject-error]\nevent = \"write_aio\"\nerrno = \"-28\"\nsector = \"0x10\"\nstate = \"4294967295\"\nonce = \"yes\"\nimmediately = \"on\"\niotype = \"flush\"\n",
			"inject-error.0.event=write_aio,inject-error.0.errno=-28,inject-error.0.sector=0x10,inject-error.0.state=4294967295,inject-error.0.once=yes,inject-error.0.immediately=on,inject-error.0.iotype=flush"},
		{"[set-state]\nevent = \"pwritev\"\nstate = \"3\"\nnew_state = \"010\"\n", "set-state.event=pwritev,set-state.state=3,set-state.new_state=010"},
	} {
		fromCfg, err := ParseConfig([]byte(tc.cfg))
		must(t, err)
		e := openEnv(t, "driver=blkdebug,image.driver=mem,"+tc.opts, blk.Spec{})
		if got := e.bd.Rules(); !slices.Equal(got, fromCfg) {
			t.Errorf("options %s give %+v, config gives %+v", tc.opts, got, fromCfg)
		}
	}
}
