// Package imports holds the test that keeps DESIGN.md's import direction:
// cmd/gio -> repl -> commands -> blk; blk/drivers/* -> blk; blkdebug -> blk;
// internal/* are leaves (internal/cutils below the others).
package imports

import (
	"os/exec"
	"strings"
	"testing"
)

// allowed lists, for each package prefix, the gio packages it may import.
var allowed = map[string][]string{
	"gio/blk":          {"gio/blk/qdict", "gio/internal/cutils"},
	"gio/blk/qdict":    {"gio/internal/cutils"},
	"gio/blk/qcrypto":  {"gio/blk/qdict"},
	"gio/blk/drivers/": {"gio/blk", "gio/blk/qdict", "gio/blk/qcrypto", "gio/internal/cvt", "gio/internal/nbdproto", "gio/internal/inflate"},
	"gio/blk/blktest":  {"gio/blk", "gio/blk/qdict", "gio/blk/drivers/", "gio/internal/watchdog"},
	"gio/blkdebug":     {"gio/blk", "gio/blk/qdict", "gio/internal/cutils"},
	"gio/commands":     {"gio/blk", "gio/blk/qdict", "gio/internal/", "gio/trace", "gio/timeline", "gio/nbdserver"},
	"gio/trace":        {"gio/blk"},
	"gio/nbdserver":    {"gio/blk", "gio/blk/qdict", "gio/internal/"},
	"gio/timeline":     {"gio/trace"},
	"gio/repl":         {"gio/commands", "gio/blk", "gio/blk/qdict", "gio/internal/"},
	"gio/internal/":    {"gio/internal/cutils"},
	// cutils is the leaf of leaves: QEMU's C-style number and string
	// rules, shared by commands (through cvt), blk, qdict and blkdebug.
	"gio/internal/cutils": {},
	"gio/cmd/gio":         {"gio/"},

	// explore drives the loop's chooser (blk) and checks runs with fsx.
	"gio/internal/explore": {"gio/blk", "gio/internal/"},
}

// level orders the packages of DESIGN.md from the leaves up: an allowed
// import always points to a lower level (TestAllowedPointsDown), so the
// table cannot grow an upward edge.
var level = map[string]int{
	"gio/internal/cutils":   0,
	"gio/internal/":         1,
	"gio/internal/cvt":      1, // strerror for the messages drivers print
	"gio/internal/nbdproto": 1,
	"gio/internal/inflate":  1, // compressed clusters of qcow2, qcow, vmdk
	"gio/internal/watchdog": 1, // fuzz targets' per-input budget, used by blktest
	"gio/blk/qdict":         2,
	"gio/blk/qcrypto":       3,
	"gio/blk":               3,
	"gio/blk/drivers/":      4,
	"gio/blkdebug":          4,
	"gio/blk/blktest":       5,
	"gio/trace":             4,
	"gio/timeline":          5,
	"gio/nbdserver":         5,
	"gio/commands":          6,
	"gio/repl":              7,
	"gio/":                  8, // as an import of cmd/gio: any package below it
	"gio/cmd/gio":           9,

	"gio/internal/explore": 5, // beside blktest: above blk, below commands
}

func TestAllowedPointsDown(t *testing.T) {
	for pkg, imps := range allowed {
		lp, ok := level[pkg]
		if !ok {
			t.Errorf("%s: no level", pkg)
		}
		for _, imp := range imps {
			li, ok := level[imp]
			if !ok {
				t.Errorf("%s may import %s, which has no level", pkg, imp)
			} else if li >= lp {
				t.Errorf("%s (level %d) may import %s (level %d): an upward or sideways edge", pkg, lp, imp, li)
			}
		}
	}
}

func rule(pkg string) ([]string, bool) {
	best := ""
	for p := range allowed {
		if (pkg == p || strings.HasPrefix(pkg, p) && strings.HasSuffix(p, "/")) && len(p) > len(best) {
			best = p
		}
	}
	r, ok := allowed[best]
	return r, ok
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "gio/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := f[0], f[1:]
		if strings.HasPrefix(pkg, "gio/internal/imports") {
			continue
		}
		ok, known := rule(pkg)
		if !known {
			t.Errorf("%s: no import rule; add it to allowed", pkg)
			continue
		}
		for _, imp := range imports {
			if !strings.HasPrefix(imp, "gio/") || imp == pkg {
				continue
			}
			good := false
			for _, a := range ok {
				if imp == a || strings.HasSuffix(a, "/") && strings.HasPrefix(imp, a) {
					good = true
				}
			}
			if !good {
				t.Errorf("%s imports %s: forbidden by DESIGN.md's import direction", pkg, imp)
			}
		}
	}
}
