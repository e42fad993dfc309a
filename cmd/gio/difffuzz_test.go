package main

// TestRandomDiff is a seeded random differential tester: per seed it
// makes one image with qemu-img (a format and create options drawn at
// random), copies it, runs the same random qemu-io command list through
// the real qemu-io 7.2 and through gio, and compares stdout, stderr, the
// exit status, the guest content of the two images (qemu-img compare) and
// qemu-img check of both. A mismatch is reported with its seed and the
// command list shrunk to the fewest commands that still differ.
//
// It needs qemu-io and qemu-img and is skipped in -short. The default run
// is a few dozen seeds (about 20 s); GIO_DIFF_N=2000 runs more,
// GIO_DIFF_SEED=S starts at seed S, GIO_DIFF_FMT=qcow2 keeps only the
// configurations whose name contains that text, GIO_DIFF_KEEP=1 keeps
// going after a mismatch (reporting each one).
//
// Known differences that are qemu-io's, not gio's, are filtered or not
// generated; each is listed with its reason in diffKnown below.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// diffConfig is one way to create and open an image.
type diffConfig struct {
	name   string
	create []string // qemu-img create arguments before the image name and size
	open   []string // qemu-io arguments that open the image (image name last)
	check  []string // qemu-img check/compare arguments naming the image
	// backing: a backing file made first (qemu-img create args, with
	// "base" as its name), then filled with a pattern.
	backing []string
	baseFmt string
	// Capabilities that steer the generator.
	resize   bool  // truncate is supported
	compress bool  // write -c is supported
	cluster  int64 // the cluster size of a compressing format
	// noCompress: write -c is not generated (see qcow below).
	noCompress bool
	// post: commands run after the image is made (programs and
	// arguments), e.g. data written and an internal snapshot taken.
	post [][]string
	// sample, baseSample: an iotests sample image (sample_images/NAME.bz2)
	// used as the image, or as the backing file, instead of qemu-img
	// create (read-only formats qemu-img cannot make); size: its
	// virtual size, which the generator then uses.
	sample, baseSample string
	size               int64
	// baseOpen: how qemu-io opens the backing file to fill it (default
	// -f baseFmt base).
	baseOpen []string
	// extra: qemu-io options the configuration always needs (-r).
	extra []string
}

// clusterOf is the cluster size create options give a format.
func clusterOf(format, opts string) int64 {
	for _, o := range strings.Split(opts, ",") {
		if v, ok := strings.CutPrefix(o, "cluster_size="); ok {
			n, err := strconv.ParseInt(strings.TrimRight(v, "kM"), 10, 64)
			if err == nil {
				switch {
				case strings.HasSuffix(v, "k"):
					n <<= 10
				case strings.HasSuffix(v, "M"):
					n <<= 20
				}
			}
			return n
		}
	}
	if format == "qcow" {
		return 4096
	}
	return 65536
}

const diffSecret = "secret,id=sec0,data=123456"

// diffConfigs lists the configurations the tester draws from.
func diffConfigs() []diffConfig {
	var cs []diffConfig
	img := func(f string) ([]string, []string) {
		return []string{"-f", f, "img"}, []string{"-f", f, "img"}
	}
	add := func(name, f string, opts string, resize, compress bool) {
		o, c := img(f)
		cr := []string{"create", "-q", "-f", f}
		if opts != "" {
			cr = append(cr, "-o", opts)
		}
		cs = append(cs, diffConfig{name: name, create: cr, open: o, check: c, resize: resize, compress: compress, cluster: clusterOf(f, opts)})
	}
	add("raw", "raw", "", true, false)
	for _, compat := range []string{"0.10", "1.1"} {
		for _, cl := range []string{"512", "4k", "64k", "2M"} {
			add("qcow2/compat="+compat+"/cluster="+cl, "qcow2", "compat="+compat+",cluster_size="+cl, true, true)
		}
	}
	add("qcow2/refcount_bits=1", "qcow2", "refcount_bits=1", true, true)
	add("qcow2/refcount_bits=64", "qcow2", "refcount_bits=64,cluster_size=4k", true, true)
	add("qcow2/lazy_refcounts", "qcow2", "lazy_refcounts=on", true, true)
	add("qcow2/extended_l2", "qcow2", "extended_l2=on", true, true)
	add("qcow2/extended_l2/cluster=16k", "qcow2", "extended_l2=on,cluster_size=16k", true, true)
	add("qcow2/prealloc=metadata", "qcow2", "preallocation=metadata", true, true)
	add("qed", "qed", "", true, false)
	add("qed/cluster=4k", "qed", "cluster_size=4k,table_size=2", true, false)
	// qcow's write -c over an allocated cluster stores the deflate
	// stream as the cluster's data (qcow.c's get_cluster_offset keeps
	// the old cluster): the guest then sees compressed bytes, and gio's
	// are not zlib's. Not generated for qcow.
	add("qcow", "qcow", "", false, false)
	cs[len(cs)-1].noCompress = true
	for _, sub := range []string{"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized"} {
		add("vmdk/"+sub, "vmdk", "subformat="+sub, false, sub == "streamOptimized")
	}
	add("vmdk/zeroed_grain", "vmdk", "zeroed_grain=on", false, false)
	add("vpc/dynamic", "vpc", "", false, false)
	add("vpc/fixed", "vpc", "subformat=fixed", false, false)
	add("vdi", "vdi", "", false, false)
	add("vdi/static", "vdi", "static=on", false, false)
	add("vhdx", "vhdx", "", true, false)
	add("vhdx/block=1M", "vhdx", "block_size=1M", true, false)
	add("parallels", "parallels", "", false, false)
	cs = append(cs, diffConfig{
		name:   "luks",
		create: []string{"create", "-q", "--object", diffSecret, "-f", "luks", "-o", "key-secret=sec0,iter-time=10"},
		open:   []string{"--object", diffSecret, "--image-opts", "driver=luks,key-secret=sec0,file.filename=img"},
		check:  []string{"--object", diffSecret, "--image-opts", "driver=luks,key-secret=sec0,file.filename=img"},
		resize: true,
	})
	// qcow2 images with a history: an internal snapshot (clusters with
	// refcount 2, copied on write), compressed clusters, an external
	// data file.
	qio := func(cmds ...string) []string {
		a := []string{"qemu-io", "-f", "qcow2"}
		for _, c := range cmds {
			a = append(a, "-c", c)
		}
		return append(a, "img")
	}
	add("qcow2/internal-snapshot", "qcow2", "cluster_size=4k", true, true)
	cs[len(cs)-1].post = [][]string{
		qio("write -P 0x11 0 96k", "write -z 32k 8k", "write -P 0x12 512k 4k"),
		{"qemu-img", "snapshot", "-c", "s1", "img"},
		qio("write -P 0x13 8k 4k"),
	}
	add("qcow2/compressed-clusters", "qcow2", "", true, true)
	cs[len(cs)-1].post = [][]string{qio("write -c -P 0x21 0 64k", "write -c -P 0x22 128k 64k", "write -c -P 0 256k 64k")}
	add("qcow2/data-file", "qcow2", "data_file=img.data", true, false)
	cs[len(cs)-1].post = [][]string{qio("write -P 0x31 0 128k")}
	add("qcow2/data-file-raw", "qcow2", "data_file=img.data,data_file_raw=on", true, false)
	// Other ways to open: --image-opts with raw's offset and size, a
	// blkdebug filter, json: filenames.
	rawOpts := func(name, opts string) {
		cs = append(cs, diffConfig{name: name, create: []string{"create", "-q", "-f", "raw"},
			open: []string{"--image-opts", opts}, check: []string{"-f", "raw", "img"}})
	}
	rawOpts("raw/image-opts/offset", "driver=raw,offset=4096,file.filename=img")
	rawOpts("raw/image-opts/offset+size", "driver=raw,offset=512,size=65536,file.filename=img")
	rawOpts("raw/image-opts/blkdebug", "driver=raw,file.driver=blkdebug,file.image.filename=img")
	cs = append(cs, diffConfig{name: "qcow2/image-opts/blkdebug", create: []string{"create", "-q", "-f", "qcow2"},
		open:  []string{"--image-opts", "driver=qcow2,file.driver=blkdebug,file.image.filename=img"},
		check: []string{"-f", "qcow2", "img"}, resize: true, compress: true, cluster: 65536})
	cs = append(cs, diffConfig{name: "qcow2/json", create: []string{"create", "-q", "-f", "qcow2", "-o", "cluster_size=4k"},
		open:  []string{`json:{"driver":"qcow2","file":{"driver":"file","filename":"img"}}`},
		check: []string{"-f", "qcow2", "img"}, resize: true, compress: true, cluster: 4096})
	cs = append(cs, diffConfig{name: "raw/json", create: []string{"create", "-q", "-f", "raw"},
		open:  []string{`json:{"driver":"raw","file.filename":"img"}`},
		check: []string{"-f", "raw", "img"}, resize: true})
	cs = append(cs, diffConfig{
		name:   "qcow2/luks",
		create: []string{"create", "-q", "--object", diffSecret, "-f", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,cluster_size=4k"},
		open:   []string{"--object", diffSecret, "--image-opts", "driver=qcow2,encrypt.key-secret=sec0,file.filename=img"},
		check:  []string{"--object", diffSecret, "--image-opts", "driver=qcow2,encrypt.key-secret=sec0,file.filename=img"},
		resize: true,
	})
	for _, b := range []struct{ name, f, opts, baseFmt string }{
		{"qcow2/backing=raw", "qcow2", "", "raw"},
		{"qcow2/backing=qcow2/cluster=4k", "qcow2", "cluster_size=4k", "qcow2"},
		{"qcow2/backing=qcow2/extended_l2", "qcow2", "extended_l2=on", "qcow2"},
		{"qcow2/backing=raw/compat=0.10", "qcow2", "compat=0.10", "raw"},
		{"qed/backing=raw", "qed", "", "raw"},
		{"qcow/backing=raw", "qcow", "", "raw"},
		{"vmdk/backing=vmdk", "vmdk", "", "vmdk"},
	} {
		o, c := img(b.f)
		cr := []string{"create", "-q", "-f", b.f, "-b", "base", "-F", b.baseFmt}
		if b.opts != "" {
			cr = append(cr, "-o", b.opts)
		}
		cs = append(cs, diffConfig{name: b.name, create: cr, open: o, check: c,
			backing: []string{"create", "-q", "-f", b.baseFmt}, baseFmt: b.baseFmt,
			resize: b.f == "qcow2", compress: b.f != "qed" && b.f != "qcow", noCompress: b.f == "qcow",
			cluster: clusterOf(b.f, b.opts)})
	}
	return cs
}

// diffKnown lists the differences the tester does not report, and why.
// Each entry is a pattern matched against both outputs before they are
// compared (replaced by X).
var diffKnown = []*regexp.Regexp{
	// -s's temporary overlay, named by mkstemp (reopen -r names it).
	regexp.MustCompile(`/var/tmp/vl\.[A-Za-z0-9]{6}`),
}

// diffGen draws the commands of one sequence.
type diffGen struct {
	r    *rand.Rand
	size int64 // the image's virtual size
	cfg  diffConfig
}

func (g *diffGen) pick(n int) int { return g.r.Intn(n) }

// num writes n as qemu-io's parser takes it: plain, hex or with a suffix.
func (g *diffGen) num(n int64) string {
	switch {
	case n >= 0 && n%(1<<20) == 0 && n > 0 && g.pick(3) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 0 && n%1024 == 0 && n > 0 && g.pick(3) == 0:
		return fmt.Sprintf("%dk", n>>10)
	case n >= 0 && g.pick(8) == 0:
		return fmt.Sprintf("0x%x", n)
	}
	return strconv.FormatInt(n, 10)
}

// offset draws an offset: aligned or not, near the start, the end, or beyond.
func (g *diffGen) offset() int64 {
	aligns := []int64{1, 512, 4096, 65536, 1 << 20}
	a := aligns[g.pick(len(aligns))]
	var off int64
	switch g.pick(10) {
	case 0:
		off = 0
	case 1, 2:
		off = g.size - int64(g.pick(3))*a - a
	case 3:
		off = g.size + int64(g.pick(2))*a
	default:
		off = g.r.Int63n(g.size)
	}
	off = off / a * a
	if off < 0 {
		off = 0
	}
	return off
}

// length draws a length, mostly small, aligned or not.
func (g *diffGen) length() int64 {
	switch g.pick(12) {
	case 0:
		return 0
	case 1:
		return int64(1 + g.pick(511))
	case 2, 3:
		return 512 * int64(1+g.pick(16))
	case 4, 5:
		return 4096 * int64(1+g.pick(32))
	case 6:
		return 65536 * int64(1+g.pick(4))
	case 7:
		return int64(1+g.pick(3)) << 20
	case 8:
		return int64(1 + g.pick(200000))
	default:
		return int64(1 + g.pick(9000))
	}
}

// span draws an offset and length, mostly inside the image.
func (g *diffGen) span() (int64, int64) {
	off, n := g.offset(), g.length()
	if g.pick(6) != 0 && off+n > g.size {
		if off >= g.size {
			off = g.size - n
		} else {
			n = g.size - off
		}
		if off < 0 {
			off, n = 0, g.size
		}
	}
	return off, n
}

func (g *diffGen) pattern() string {
	return fmt.Sprintf("0x%x", 1+g.pick(255))
}

// command draws one qemu-io command (a few of them, for aio).
func (g *diffGen) command() []string {
	off, n := g.span()
	o, l := g.num(off), g.num(n)
	switch g.pick(24) {
	case 0, 1, 2, 3:
		flags := ""
		switch g.pick(4) {
		case 0:
			flags = " -z"
			if g.pick(2) == 0 {
				flags += " -u"
			}
		case 1:
			if g.cfg.compress && g.pick(2) == 0 {
				flags = " -c"
				l = g.num(g.compressedLen(n))
			}
			flags += " -P " + g.pattern()
		default:
			flags = " -P " + g.pattern()
		}
		flags += g.outFlags()
		return []string{"write" + flags + " " + o + " " + l}
	case 4, 5, 6:
		flags := ""
		if g.pick(2) == 0 {
			flags = " -P " + g.pattern()
		}
		if n <= 1024 && g.pick(2) == 0 {
			flags += " -v"
		} else {
			flags += g.outFlags()
		}
		return []string{"read" + flags + " " + o + " " + l}
	case 7:
		return []string{"writev -P " + g.pattern() + g.outFlags() + " " + o + " " + g.vec()}
	case 8:
		p := ""
		if g.pick(2) == 0 {
			p = " -P " + g.pattern()
		}
		return []string{"readv" + p + g.outFlags() + " " + o + " " + g.vec()}
	case 9, 10:
		var c []string
		for i := 0; i < 1+g.pick(2); i++ {
			// The two requests may overlap: qcow2's task pool puts
			// the data writes of all of the first one's steps before
			// the second one's, in gio as in QEMU.
			off, n := g.span()
			if g.pick(2) == 0 {
				c = append(c, "aio_write -P "+g.pattern()+g.outFlags()+" "+g.num(off)+" "+g.num(n))
			} else {
				c = append(c, "aio_read"+g.outFlags()+" "+g.num(off)+" "+g.num(n))
			}
		}
		return append(c, "aio_flush")
	case 11, 12:
		return []string{"discard" + g.outFlags() + " " + o + " " + l}
	case 13:
		return []string{"map"}
	case 14, 15:
		if g.pick(3) == 0 {
			return []string{"alloc " + o}
		}
		return []string{"alloc " + o + " " + l}
	case 16:
		return []string{"length"}
	case 17:
		return []string{"info"}
	case 18:
		return []string{"flush"}
	case 19:
		if !g.cfg.resize && g.pick(4) != 0 {
			return []string{"map"}
		}
		sz := g.size + int64(g.pick(5)-2)*int64([]int64{512, 4096, 65536, 1 << 20}[g.pick(4)])
		if sz < 0 {
			sz = 0
		}
		g.size = max(sz, 512)
		return []string{"truncate " + g.num(sz)}
	case 20:
		if g.cfg.noCompress {
			return []string{"map"}
		}
		return []string{"write -P " + g.pattern() + " -c " + o + " " + g.num(g.compressedLen(n))}
	case 21, 22:
		if g.pick(2) == 0 {
			return []string{g.rare(o, l)}
		}
		return g.invalidFlushed()
	default:
		return g.invalidFlushed()
	}
}

// invalidFlushed is invalid, with an aio_flush after an aio request (one
// still in flight at a later command makes qemu-io's output depend on its
// thread pool).
func (g *diffGen) invalidFlushed() []string {
	c := g.invalid()
	if strings.HasPrefix(c, "aio_read") || strings.HasPrefix(c, "aio_write") {
		return []string{c, "aio_flush"}
	}
	return []string{c}
}

// openCmd is the open command that opens the configuration's image again
// (open takes the format as -o driver=).
func (g *diffGen) openCmd(flags string) string {
	open := g.cfg.open
	img := open[len(open)-1]
	if len(open) >= 3 && open[len(open)-3] == "-f" {
		return "open" + flags + " -o driver=" + open[len(open)-2] + " " + img
	}
	return "open" + flags + " " + img
}

// rare draws a command the main switch does not: image reopening and
// closing, vmstate, write flags, sleep, help, verbose aio.
func (g *diffGen) rare(o, l string) string {
	switch g.pick(16) {
	case 0:
		return "close"
	case 1:
		flags := []string{"", "", " -r", " -s", " -C", " -n", " -t writethrough", " -t unsafe", " -d unmap", " -U", " -k"}[g.pick(11)]
		return g.openCmd(flags)
	case 2:
		return []string{"reopen -r", "reopen -w", "reopen", "reopen -c none", "reopen -c writethrough", "reopen -c unsafe",
			"reopen -c directsync", "reopen -r -c writeback", "reopen -o cache.direct=on", "reopen -o cache.no-flush=on",
			"reopen -o read-only=on", "reopen -o read-only=off", "reopen -w -o cache.direct=off"}[g.pick(13)]
	case 3:
		return "read -b" + g.outFlags() + " " + o + " " + l
	case 4:
		return "write -b -P " + g.pattern() + g.outFlags() + " " + o + " " + l
	case 5:
		return "write -f -P " + g.pattern() + g.outFlags() + " " + o + " " + l
	case 6:
		return []string{"write -n -z", "write -z -f", "write -z -u -f", "write -z -n -u"}[g.pick(4)] + g.outFlags() + " " + o + " " + l
	case 7:
		return fmt.Sprintf("sleep %d", g.pick(3))
	case 8:
		return "help " + []string{"read", "write", "aio_read", "open", "reopen", "map", "alloc", "discard", "truncate", "x", "help", ""}[g.pick(12)]
	case 9:
		return "readv -v " + o + " " + g.num(int64(1+g.pick(64)))
	case 10:
		return "writev -f -P " + g.pattern() + " " + o + " " + g.vec()
	case 11:
		if g.cfg.resize {
			return "truncate -m " + []string{"off", "metadata", "falloc", "full"}[g.pick(4)] + " " + g.num(g.size+int64(g.pick(3))*65536)
		}
		return "length"
	case 12:
		return "discard -q " + o + " " + l
	case 13:
		return "read -p " + o + " " + l
	case 14:
		return "write -p -P " + g.pattern() + " " + o + " " + l
	default:
		return "alloc " + o + " " + g.num(int64(1+g.pick(1<<20)))
	}
}

// compressedLen caps a compressed write's length at compressMax clusters.
func (g *diffGen) compressedLen(n int64) int64 {
	if g.cfg.cluster > 0 {
		return min(n, compressMax*g.cfg.cluster)
	}
	return n
}

// compressMax is the most clusters a compressed write covers: qemu-io
// writes them in a pool of 8 tasks, and which clusters a failure (an
// allocated cluster) after the 8th leaves written varies from run to run.
const compressMax = 9

// outFlags draws -q or -C now and then.
func (g *diffGen) outFlags() string {
	switch g.pick(8) {
	case 0:
		return " -q"
	case 1:
		return " -C"
	}
	return ""
}

// vec draws a readv/writev length list.
func (g *diffGen) vec() string {
	var v []string
	for i := 0; i < 1+g.pick(3); i++ {
		v = append(v, g.num(int64([]int{512, 1024, 4096, 1, 1000, 65536}[g.pick(6)])))
	}
	return strings.Join(v, " ")
}

// grammarCmds are qemu-io 7.2's commands with their getopt strings
// (qemu-io-cmds.c), for grammar.
var grammarCmds = []struct{ name, opts string }{
	{"read", "bCl:pP:qs:v"}, {"write", "bcCfnpP:quzs:"}, {"aio_read", "CP:iqv"}, {"aio_write", "CfiqP:uz"},
	{"readv", "CP:qv"}, {"writev", "CfqP:"}, {"discard", "Cq"}, {"alloc", ""}, {"map", ""},
	{"truncate", "m:"}, {"length", ""}, {"info", ""}, {"flush", ""}, {"aio_flush", ""},
	{"reopen", "c:o:rw"}, {"help", ""}, {"sleep", ""},
}

// grammarNums are numbers as users write them, good and bad: suffixes,
// hex, fractions, negative, overflowing, empty.
var grammarNums = []string{"0", "1", "512", "4k", "64k", "1M", "0x200", "1.5k", "-1", "abc", "1e", "0x",
	"99999999999999999999", "2G", "1536", "7", "1k", "1K", "513", "0x10000", "8E", "1T", "0.5", "1kk", "+1"}

// grammar draws a command from qemu-io's command and option space: any
// command, zero to three of its options (now and then one it does not
// have, or an option without its value), and a number of arguments that
// is often wrong. Argument, option and number errors, and the commands
// that succeed among them, are compared.
func (g *diffGen) grammar() string {
	c := grammarCmds[g.pick(len(grammarCmds))]
	toks := []string{c.name}
	type opt struct {
		letter byte
		arg    bool
	}
	var opts []opt
	for i := 0; i < len(c.opts); i++ {
		o := opt{letter: c.opts[i]}
		if i+1 < len(c.opts) && c.opts[i+1] == ':' {
			o.arg = true
			i++
		}
		opts = append(opts, o)
	}
	if g.pick(10) == 0 {
		opts = append(opts, opt{letter: 'x'})
	}
	for n := []int{0, 0, 1, 1, 2, 3}[g.pick(6)]; n > 0 && len(opts) > 0; n-- {
		o := opts[g.pick(len(opts))]
		toks = append(toks, "-"+string(o.letter))
		if o.arg && g.pick(20) != 0 {
			toks = append(toks, g.optValue(c.name, o.letter))
		}
	}
	switch c.name {
	case "help":
		names := []string{"x", "", "open", "close", "sigraise", "abort", "quit"}
		for _, gc := range grammarCmds {
			names = append(names, gc.name)
		}
		toks = append(toks, names[g.pick(len(names))])
	case "sleep":
		toks = append(toks, []string{"0", "1", "x", "-1", "", "1k", "0x1"}[g.pick(7)])
	case "reopen", "info", "length", "map", "flush", "aio_flush":
		if g.pick(7) == 0 {
			toks = append(toks, "x")
		}
	default:
		n := []int{0, 1, 2, 2, 2, 2, 2, 3}[g.pick(8)]
		if strings.HasSuffix(c.name, "v") || strings.HasPrefix(c.name, "aio_") {
			n = []int{0, 1, 2, 2, 3, 4}[g.pick(6)]
		}
		for ; n > 0; n-- {
			toks = append(toks, grammarNums[g.pick(len(grammarNums))])
		}
	}
	return strings.TrimSpace(strings.Join(toks, " "))
}

// optValue draws a value for option letter of command c.
func (g *diffGen) optValue(c string, letter byte) string {
	switch {
	case letter == 'P':
		return []string{"0", "1", "0xff", "0x100", "-1", "a", "077", "1.5"}[g.pick(8)]
	case letter == 'l' || letter == 's' && c == "read":
		return grammarNums[g.pick(len(grammarNums))]
	case letter == 's':
		return []string{"img", "nonexist"}[g.pick(2)]
	case letter == 'm':
		return []string{"off", "metadata", "falloc", "full", "x"}[g.pick(5)]
	case letter == 'c':
		return []string{"none", "writeback", "writethrough", "unsafe", "directsync", "x"}[g.pick(6)]
	case letter == 'o':
		return []string{"x", "x=1", "cache.no-flush=on", "cache.direct=x", "file.x=1", "node-name=n1",
			"discard=unmap", "file=x", "backing=", "read-only=on", "driver=raw", "driver=qcow2"}[g.pick(12)]
	}
	return "x"
}

// invalid draws a command with a bad number or option.
func (g *diffGen) invalid() string {
	if g.pick(2) == 0 {
		return g.grammar()
	}
	bad := []string{
		"read abc 512", "read 0 xyz", "read -P 0x100 0 512", "read -P -1 0 512",
		"write 0", "write -z -P 1 0 512", "write -c -z 0 512", "read 0 -512",
		"read -l 512 0 4096", "read -s 100 -l 100 0 4096", "read 0 3G", "write 0 4G",
		"write -P 1 -1 512", "alloc -1", "alloc 0 0", "discard -1 512", "truncate -1",
		"truncate abc", "readv 0", "writev -P 1 0", "aio_write 0", "aio_read -P 1 0",
		"map x", "length 1", "info x", "read -b 0 512", "write -f 0 512", "write -b 0 512",
		"write -n 0 512", "read -p 0 512", "readv -v 0 512", "read 1.5k 512",
		"read 0 1.5k", "write -P 1 0 1e", "alloc 0 1T", "discard 0", "read -q -v 0 512",
		"write -u 0 512", "write -u -P 1 0 512", "read 0x 512", "write -s /nonexist 0 512",
		"read 9223372036854775807 1", "write 0 9223372036854775807", "discard -u 0 512",
		"write -P 1 " + g.num(g.size-1) + " 2", "read " + g.num(g.size) + " 1",
		"read -P 1 -q 0 0", "aio_flush x", "flush x",
		"truncate 9223372035781033985", "truncate 8E", "reopen -o file=x", "reopen -o backing=",
		"reopen -o cache.no-flush=on", "reopen -o cache.direct=x",
	}
	return bad[g.pick(len(bad))]
}

// diffSeq is one drawn case.
type diffSeq struct {
	cfg      diffConfig
	size     int64
	baseSize int64
	extra    []string // qemu-io options (cache modes, -r)
	stdin    bool     // the commands go on stdin, not as -c
	cmds     [][]string
}

func drawSeq(seed int64, cfgs []diffConfig) diffSeq {
	r := rand.New(rand.NewSource(seed))
	cfg := cfgs[r.Intn(len(cfgs))]
	sizes := []int64{1 << 20, 4 << 20, 3<<20 + 512, 16 << 20, 64 << 20, 5 << 20, 1<<20 + 65536}
	s := diffSeq{cfg: cfg, size: sizes[r.Intn(len(sizes))]}
	s.baseSize = s.size
	if r.Intn(3) == 0 {
		s.baseSize = s.size / 2
	}
	if cfg.size > 0 {
		s.size = cfg.size
	}
	// qemu-io options: none, one or (1 in 4) two of them.
	extras := [][]string{{"-t", "writethrough"}, {"-t", "none"}, {"-r"}, {"-C"}, {"-s"},
		{"-d", "unmap"}, {"-U"}, {"-n"}, {"-t", "directsync"}, {"-t", "unsafe"},
		{"-t", "writeback"}, {"-d", "ignore"}, {"-d", "off"}, {"-i", "threads"},
		{"-k", "-t", "none"}, {"-d", "on"},
		// Options with no effect on the image: their parsing and
		// messages are compared.
		{"-T", "no_such_event"}, {"-T", "zzz_*,id=t0"}, {"-m"},
		{"--object", "secret,id=s9,data=x"}, {"--object", `{"qom-type": "secret", "id": "s9", "data": "x"}`}}
	if r.Intn(12) < 7 {
		s.extra = append(s.extra, extras[r.Intn(len(extras))]...)
		if r.Intn(4) == 0 {
			s.extra = append(s.extra, extras[r.Intn(len(extras))]...)
		}
	}
	s.extra = append(append([]string(nil), cfg.extra...), s.extra...)
	s.stdin = r.Intn(6) == 0
	g := &diffGen{r: r, size: s.size, cfg: cfg}
	for i := 0; i < 3+r.Intn(12); i++ {
		s.cmds = append(s.cmds, g.command())
	}
	return s
}

// script is the qemu-io argument list for a subset of the commands.
func (s diffSeq) args(cmds [][]string) []string {
	a := append([]string(nil), s.extra...)
	open := s.cfg.open
	img := open[len(open)-1]
	if len(open) > 1 && open[len(open)-2] == "--image-opts" {
		img = ""
		a = append(a, open...)
	} else {
		a = append(a, open[:len(open)-1]...)
	}
	for _, c := range cmds {
		for _, l := range c {
			if !s.stdin {
				a = append(a, "-c", l)
			}
		}
	}
	if img != "" {
		a = append(a, img)
	}
	return a
}

// input is what goes on stdin ("": nothing, /dev/null).
func (s diffSeq) input(cmds [][]string) string {
	if !s.stdin {
		return ""
	}
	var b strings.Builder
	for _, c := range cmds {
		for _, l := range c {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func (s diffSeq) text(cmds [][]string) string {
	var b strings.Builder
	for _, a := range s.args(cmds) {
		b.WriteString(" " + quoteArg(a))
	}
	if in := s.input(cmds); in != "" {
		b.WriteString(" <<< " + strconv.Quote(in))
	}
	return strings.TrimSpace(b.String())
}

// diffRun is what one program did.
type diffRun struct {
	stdout, stderr string
	rc             int
	crashed        bool // a signal or a timeout
}

func diffExec(dir, bin string, args []string, stdin string, timeout time.Duration) diffRun {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := diffRun{stdout: o.String(), stderr: e.String()}
	if ctx.Err() != nil {
		r.crashed, r.rc = true, -1
		return r
	}
	if ee, ok := err.(*exec.ExitError); ok {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			r.crashed, r.rc = true, 128+int(ws.Signal())
		} else {
			r.rc = ws.ExitStatus()
		}
	} else if err != nil {
		r.stderr += err.Error()
		r.rc = -2
	}
	return r
}

// makeTimeout bounds a qemu-img or qemu-io run that makes or judges an
// image (create, compare, check). It
// is generous: a LUKS create runs QEMU's PBKDF2 calibration (seconds of
// CPU), and took over a minute at a load of 80 on 2 cores, which failed
// the test when the bound was one minute. Making an image is not what
// is tested; a hang still ends long before go test's -timeout.
const makeTimeout = 10 * time.Minute

// makeImage creates the configuration's image (and backing file) in dir.
func (s diffSeq) makeImage(dir string) error {
	run := func(args ...string) error {
		for try := 1; ; try++ {
			r := diffExec(dir, "qemu-img", args, "", makeTimeout)
			// qemu-img's PBKDF2 calibration fails now and then on a
			// loaded machine (runSetupLine retries the same way).
			if r.rc != 0 && try < 3 && strings.Contains(r.stderr, "Unable to get accurate CPU usage") {
				continue
			}
			if r.rc == -1 {
				return fmt.Errorf("qemu-img %s: no answer within %v", strings.Join(args, " "), makeTimeout)
			}
			if r.rc != 0 {
				return fmt.Errorf("qemu-img %s: exit %d: %s%s", strings.Join(args, " "), r.rc, r.stdout, r.stderr)
			}
			return nil
		}
	}
	if s.cfg.baseSample != "" {
		if err := unpackSample(s.cfg.baseSample, filepath.Join(dir, "base")); err != nil {
			return err
		}
	}
	if s.cfg.sample != "" {
		return unpackSample(s.cfg.sample, filepath.Join(dir, "img"))
	}
	if s.cfg.backing != nil {
		if err := run(append(append([]string(nil), s.cfg.backing...), "base", strconv.FormatInt(s.baseSize, 10))...); err != nil {
			return err
		}
		open := s.cfg.baseOpen
		if open == nil {
			open = []string{"-f", s.cfg.baseFmt, "base"}
		}
		fill := []string{"-c", "write -P 0x5b 0 " + strconv.FormatInt(s.baseSize, 10)}
		if !strings.Contains(strings.Join(s.cfg.backing, " "), "streamOptimized") {
			// (streamOptimized cannot write over an allocated grain.)
			fill = append(fill, "-c", "write -z 64k 64k")
		}
		fill = append(fill, open...)
		r := diffExec(dir, "qemu-io", fill, "", makeTimeout)
		if r.rc != 0 {
			return fmt.Errorf("filling base: %s%s", r.stdout, r.stderr)
		}
	}
	if err := run(append(append([]string(nil), s.cfg.create...), "img", strconv.FormatInt(s.size, 10))...); err != nil {
		return err
	}
	for _, p := range s.cfg.post {
		r := diffExec(dir, p[0], p[1:], "", makeTimeout)
		if r.rc != 0 {
			return fmt.Errorf("%s: %s%s", strings.Join(p, " "), r.stdout, r.stderr)
		}
	}
	return nil
}

// diffFilter normalises an output for the comparison.
func diffFilter(s string) string {
	s = filterQemuIO(s)
	for _, re := range diffKnown {
		s = re.ReplaceAllString(s, "X")
	}
	return s
}

// execBoth runs one command list through qemu-io in qd and gio in gd.
// done is set when a crash or hang leaves nothing to compare: qemu-io's
// (no oracle, but gio must not crash or hang too; qemuCrashed) or gio's,
// each reported in diffs.
func (s diffSeq) execBoth(qd, gd string, cmds [][]string) (q, g diffRun, diffs []string, done, qemuCrashed bool) {
	args := s.args(cmds)
	q = diffExec(qd, "qemu-io", args, s.input(cmds), 30*time.Second)
	g = diffExec(gd, gioBin, args, s.input(cmds), 30*time.Second)
	if q.crashed {
		if g.crashed || strings.Contains(g.stderr, "\ngoroutine ") {
			diffs = append(diffs, fmt.Sprintf("gio crashed or hung (rc %d) where qemu-io did too: %s", g.rc, g.stderr))
		}
		return q, g, diffs, true, true
	}
	if g.crashed {
		diffs = append(diffs, fmt.Sprintf("gio crashed or hung (rc %d): %s", g.rc, g.stderr))
		return q, g, diffs, true, false
	}
	return q, g, nil, false, false
}

// outcome runs one command list on fresh copies and returns the
// differences found (none: they agree), and whether qemu-io crashed.
func (s diffSeq) outcome(t *testing.T, proto string, cmds [][]string) (diffs []string, qemuCrashed bool) {
	t.Helper()
	qd, gd := t.TempDir(), t.TempDir()
	if err := copyFiles(proto, qd); err != nil {
		t.Fatal(err)
	}
	if err := copyFiles(proto, gd); err != nil {
		t.Fatal(err)
	}
	q, g, diffs, done, qemuCrashed := s.execBoth(qd, gd, cmds)
	if done {
		return diffs, qemuCrashed
	}
	qo, gout := diffFilter(q.stdout), diffFilter(g.stdout)
	if concurrentAIO(cmds) {
		// Which of two aio requests in flight completes first is up
		// to qemu-io's thread pool: the order of its reports varies.
		qo, gout = sortLines(qo), sortLines(gout)
	}
	if a, b := qo, gout; a != b {
		diffs = append(diffs, "stdout:\n"+lineDiff(a, b))
	}
	if a, b := diffFilter(q.stderr), diffFilter(g.stderr); a != b {
		diffs = append(diffs, "stderr:\n"+lineDiff(a, b))
	}
	if q.rc != g.rc {
		diffs = append(diffs, fmt.Sprintf("exit: qemu-io %d, gio %d", q.rc, g.rc))
	}
	// The guest content: gio's image read by qemu-img against qemu-io's.
	cmp := append([]string{"compare"}, s.compareArgs(filepath.Join(qd, "img"), filepath.Join(gd, "img"))...)
	if c := diffExec(qd, "qemu-img", cmp, "", makeTimeout); c.rc != 0 {
		diffs = append(diffs, fmt.Sprintf("qemu-img compare (rc %d): %s%s", c.rc, c.stdout, c.stderr))
	}
	chk := append([]string{"check"}, s.cfg.check...)
	qc := diffExec(qd, "qemu-img", chk, "", makeTimeout)
	gc := diffExec(gd, "qemu-img", chk, "", makeTimeout)
	if a, b := filterCheck(qc.stdout+qc.stderr), filterCheck(gc.stdout+gc.stderr); a != b || qc.rc != gc.rc {
		diffs = append(diffs, fmt.Sprintf("qemu-img check: qemu-io's image (rc %d), gio's (rc %d):\n%s", qc.rc, gc.rc, lineDiff(a, b)))
	}
	return diffs, false
}

// concurrentAIO says whether two aio requests are ever in flight at once.
func concurrentAIO(cmds [][]string) bool {
	for _, c := range cmds {
		if len(c) > 2 {
			return true
		}
	}
	return false
}

// filterCheck hides the check figures that depend on where clusters were
// put rather than on what the guest sees: the fragmentation and
// compression statistics and the image end offset.
var checkStats = regexp.MustCompile(`(?m)^(Image end offset|[0-9./]+ = [0-9.]+% (allocated|fragmented|compressed)).*\n`)

func filterCheck(s string) string { return checkStats.ReplaceAllString(s, "") }

// compareArgs names the two images for qemu-img compare.
func (s diffSeq) compareArgs(a, b string) []string {
	c := s.cfg.check
	if c[len(c)-2] == "--image-opts" {
		opts := c[len(c)-1]
		return []string{"--object", diffSecret, "--image-opts",
			strings.Replace(opts, "file.filename=img", "file.filename="+a, 1),
			strings.Replace(opts, "file.filename=img", "file.filename="+b, 1)}
	}
	f := c[1]
	return []string{"-f", f, "-F", f, a, b}
}

// shrink drops commands while the lists still differ.
func (s diffSeq) shrink(t *testing.T, proto string, cmds [][]string) ([][]string, []string) {
	diffs, _ := s.outcome(t, proto, cmds)
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(cmds); i++ {
			try := append(append([][]string(nil), cmds[:i]...), cmds[i+1:]...)
			if d, _ := s.outcome(t, proto, try); len(d) > 0 {
				cmds, diffs, changed = try, d, true
				i--
			}
		}
	}
	return cmds, diffs
}

func envInt(name string, def int64) int64 {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			return n
		}
	}
	return def
}

func TestRandomDiff(t *testing.T) {
	t.Parallel() // subprocesses only
	if testing.Short() {
		t.Skip("-short: the random differential tester runs qemu-io")
	}
	if !haveTool("qemu-io") || !haveTool("qemu-img") {
		t.Skip("needs qemu-io and qemu-img")
	}
	n, first := envInt("GIO_DIFF_N", 25), envInt("GIO_DIFF_SEED", 1)
	keep := os.Getenv("GIO_DIFF_KEEP") == "1"
	var cfgs []diffConfig
	for _, c := range diffConfigs() {
		if strings.Contains(c.name, os.Getenv("GIO_DIFF_FMT")) {
			cfgs = append(cfgs, c)
		}
	}
	if len(cfgs) == 0 {
		t.Skip("GIO_DIFF_FMT matches no configuration")
	}
	failed, crashes := 0, 0
	for seed := first; seed < first+n; seed++ {
		s := drawSeq(seed, cfgs)
		proto := t.TempDir()
		if err := s.makeImage(proto); err != nil {
			t.Errorf("seed %d (%s): %v", seed, s.cfg.name, err)
			continue
		}
		diffs, crashed := s.outcome(t, proto, s.cmds)
		if crashed && len(diffs) == 0 {
			crashes++
			t.Logf("seed %d (%s): qemu-io crashed or hung: skipped\n  qemu-io %s", seed, s.cfg.name, s.text(s.cmds))
			continue
		}
		if len(diffs) == 0 {
			continue
		}
		cmds, d := s.shrink(t, proto, s.cmds)
		if len(d) == 0 {
			d = diffs
			cmds = s.cmds
		}
		t.Errorf("seed %d (%s, size %d): gio differs from qemu-io\n  qemu-img %s img %d\n  qemu-io %s\n%s",
			seed, s.cfg.name, s.size, strings.Join(s.cfg.create, " "), s.size, s.text(cmds), strings.Join(d, "\n"))
		failed++
		if !keep {
			break
		}
	}
	t.Logf("%d seeds from %d: %d differ, %d skipped (qemu-io crashed)", n, first, failed, crashes)
}
