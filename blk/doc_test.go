package blk_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docName is a function named in doc.go's walk: pkg.Func() or
// pkg.(*Type).Method() (or pkg.(Type).Method()).
var docName = regexp.MustCompile(`\b([a-z]+)\.(?:\(\*?([A-Za-z_]\w*)\)\.)?([A-Za-z_]\w*)\(\)`)

// docDirs maps the package names the walk uses to their directories.
var docDirs = map[string]string{
	"blk":      ".",
	"commands": "../commands",
	"getopt":   "../internal/getopt",
	"cvt":      "../internal/cvt",
	"cutils":   "../internal/cutils",
	"raw":      "drivers/raw",
	"file":     "drivers/file",
	"blkdebug": "../blkdebug",
}

// TestDocNamesExist checks that every function doc.go's walk names
// exists, so that the map cannot rot when code moves.
func TestDocNamesExist(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]map[string]bool{} // package -> "Recv.Name" / "Name"
	load := func(pkg string) map[string]bool {
		if m, ok := funcs[pkg]; ok {
			return m
		}
		m := map[string]bool{}
		funcs[pkg] = m
		files, _ := filepath.Glob(filepath.Join(docDirs[pkg], "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range af.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok {
					continue
				}
				key := fd.Name.Name
				if fd.Recv != nil && len(fd.Recv.List) == 1 {
					typ := fd.Recv.List[0].Type
					if s, ok := typ.(*ast.StarExpr); ok {
						typ = s.X
					}
					if id, ok := typ.(*ast.Ident); ok {
						key = id.Name + "." + key
					}
				}
				m[key] = true
			}
		}
		return m
	}
	n := 0
	for _, m := range docName.FindAllStringSubmatch(string(src), -1) {
		pkg, recv, name := m[1], m[2], m[3]
		if pkg == "unix" {
			continue // golang.org/x/sys
		}
		if _, ok := docDirs[pkg]; !ok {
			t.Errorf("doc.go names %s: unknown package %q (add it to docDirs)", m[0], pkg)
			continue
		}
		key := name
		if recv != "" {
			key = recv + "." + name
		}
		if !load(pkg)[key] {
			t.Errorf("doc.go names %s, which does not exist", m[0])
		}
		n++
	}
	if n < 30 {
		t.Errorf("doc.go's walk names only %d functions", n)
	}
}
