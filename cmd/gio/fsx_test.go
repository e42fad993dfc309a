package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func gioCmd(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(gioBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	rc := 0
	if ee, ok := err.(*exec.ExitError); ok {
		rc = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), rc
}

// TestFsxCommand runs "gio fsx" as a user would: a clean run passes;
// with serialisation off it fails, writes a reproducer, and that
// reproducer fails the same way under "gio run" and "gio fsx -check".
func TestFsxCommand(t *testing.T) {
	dir := t.TempDir()
	out, rc := gioCmd(t, dir, "fsx", "-n", "20")
	if rc != 0 || strings.Count(out, "no failure") != 3 {
		t.Fatalf("gio fsx -n 20: rc %d\n%s", rc, out)
	}

	repro := filepath.Join(dir, "repro.gio")
	out, rc = gioCmd(t, dir, "fsx", "-n", "200", "-align", "4096", "--no-serialise", "-o", repro)
	if rc != 1 {
		t.Fatalf("gio fsx --no-serialise: rc %d, want 1\n%s", rc, out)
	}
	src, err := os.ReadFile(repro)
	if err != nil {
		t.Fatalf("no reproducer: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^# failure: (.*)$`).FindStringSubmatch(string(src))
	if m == nil {
		t.Fatalf("the reproducer does not say what fails:\n%s", src)
	}
	failure := m[1]
	if !strings.Contains(out, failure) {
		t.Errorf("gio fsx printed\n%s\nnot the reproducer's failure %q", out, failure)
	}

	// gio run: the failing "read -P" fails the script.
	runOut, rc := gioCmd(t, dir, "run", repro)
	cmdRE := regexp.MustCompile(`\(read -q -P 0x[0-9a-f]+ (\d+) (\d+)\)`)
	c := cmdRE.FindStringSubmatch(failure)
	if c == nil {
		t.Fatalf("the failure is not a read -P check: %s", failure)
	}
	want := "Pattern verification failed at offset " + c[1] + ", " + c[2] + " bytes\n"
	if rc != 1 || !strings.Contains(runOut, want) {
		t.Errorf("gio run %s: rc %d, want 1 and %q:\n%s", repro, rc, want, runOut)
	}

	// gio fsx -check: the same failure, under the model.
	checkOut, rc := gioCmd(t, dir, "fsx", "-check", repro)
	if rc != 1 || !strings.Contains(checkOut, failure) {
		t.Errorf("gio fsx -check: rc %d, want 1 and %q:\n%s", rc, failure, checkOut)
	}
}
