// Package archtest enforces the project's dependency rules (STYLE §1): which
// project packages and which outside modules each package, its tests and the
// examples may import, that only uring imports unsafe, that no package
// uses cgo, and that the README's whole programs build.
package archtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/ringmachine/ringmachine"

// tags are the build tags the packages are listed with, so the files only
// `make test-stress` and `make test-giouring` build are checked too.
const tags = "stress,giouring"

// allowed lists, per package (relative to the module), the project packages
// its non-test code may import. Examples may import loop and conn only (see
// rules).
var allowed = map[string][]string{
	"uring":               nil,
	"uring/engine":        {"uring"},
	"fallback_epoll":      nil,
	"internal/enginetest": {"uring/engine", "fallback_epoll"},
	"timers":              nil,
	"pool":                nil,
	"conn":                {"internal/connio"},
	"internal/connio":     nil,
	"loop":                {"conn", "internal/connio", "timers", "pool", "uring/engine", "fallback_epoll"},
	"internal/testutil":   {"loop", "internal/leakcheck"},
	"internal/leakcheck":  nil,
	"internal/sigtest":    nil,
	"internal/archtest":   nil,
}

// external lists, per package, the packages outside the module and the
// standard library its non-test code may import; the others may import the
// standard library only. conn may use x/sys/unix for errno values.
var external = map[string][]string{
	"uring":               {"golang.org/x/sys/unix"},
	"uring/engine":        {"golang.org/x/sys/unix"},
	"fallback_epoll":      {"golang.org/x/sys/unix"},
	"internal/enginetest": {"golang.org/x/sys/unix"},
	"loop":                {"golang.org/x/sys/unix"},
	"conn":                {"golang.org/x/sys/unix"},
	"internal/connio":     {"golang.org/x/sys/unix"},
}

// Every package's tests may import, besides what its non-test code may and
// the package itself (external test packages), the test-only helpers and
// testify.
var (
	testProject = []string{"internal/testutil", "internal/leakcheck", "internal/sigtest"}
	// conn's runnable examples need a loop to run a connection on.
	testOnlyProject = map[string][]string{"conn": {"loop"}}
	testExternal    = []string{"github.com/stretchr/testify/assert", "github.com/stretchr/testify/require"}
)

// testOnlyExternal lists, per package, outside packages only its tests may
// import: uring's giouring_test.go cross-checks the ABI against giouring.
var testOnlyExternal = map[string][]string{
	"uring": {"github.com/pawelgaczynski/giouring"},
}

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	CgoFiles     []string
}

// rules returns the project packages (relative to the module) and the
// outside packages rel's non-test code may import; known is false for a
// package with no entry.
func rules(rel string) (project, ext []string, known bool) {
	if strings.HasPrefix(rel, "examples/") {
		return []string{"loop", "conn"}, nil, true
	}
	project, known = allowed[rel]
	return project, external[rel], known
}

// testRules returns what rel's tests (in-package and external) may import.
func testRules(rel string) (project, ext []string, known bool) {
	project, ext, known = rules(rel)
	project = slices.Concat(project, []string{rel}, testProject, testOnlyProject[rel])
	ext = slices.Concat(ext, testExternal, testOnlyExternal[rel])
	return project, ext, known
}

// isStd reports whether path names a standard-library package: its first
// element has no dot (the go command's own rule).
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// violations returns what in imports breaks the rules for the code of rel
// described by what ("imports", "test imports").
func violations(rel, what string, imports, project, ext []string) []string {
	var bad []string
	for _, imp := range imports {
		switch {
		case imp == "C":
			bad = append(bad, fmt.Sprintf("%s: %s C (no cgo)", rel, what))
		case imp == "unsafe":
			if rel != "uring" {
				bad = append(bad, fmt.Sprintf("%s: %s unsafe; only uring may", rel, what))
			}
		case strings.HasPrefix(imp, module+"/"):
			if ours := strings.TrimPrefix(imp, module+"/"); !slices.Contains(project, ours) {
				bad = append(bad, fmt.Sprintf("%s: %s %s (allowed of ours: %v)", rel, what, ours, project))
			}
		case isStd(imp):
		case !slices.Contains(ext, imp):
			bad = append(bad, fmt.Sprintf("%s: %s %s (allowed besides std: %v)", rel, what, imp, ext))
		}
	}
	return bad
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "-tags", tags, module+"/...")
	cmd.Env = append(cmd.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	require.NoError(t, err, "go list")
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		err := dec.Decode(&p)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		pkgs = append(pkgs, p)
	}
	require.NotEmpty(t, pkgs)
	return pkgs
}

func TestImports(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		assert.Empty(t, p.CgoFiles, "%s uses cgo", rel)
		project, ext, known := rules(rel)
		if !known {
			t.Errorf("package %q has no entry in the import allow-list", rel)
			continue
		}
		for _, v := range violations(rel, "imports", p.Imports, project, ext) {
			t.Error(v)
		}
		project, ext, _ = testRules(rel)
		for _, v := range violations(rel, "test imports", slices.Concat(p.TestImports, p.XTestImports), project, ext) {
			t.Error(v)
		}
	}
}

// TestViolations checks that the rules catch what they are for.
func TestViolations(t *testing.T) {
	check := func(rel string, test bool, imp string) []string {
		rules := rules
		if test {
			rules = testRules
		}
		project, ext, known := rules(rel)
		require.True(t, known, rel)
		return violations(rel, "imports", []string{imp}, project, ext)
	}
	for _, c := range []struct {
		rel  string
		test bool
		imp  string
		ok   bool
	}{
		{"examples/defer", false, "syscall", true},
		{"examples/defer", false, module + "/loop", true},
		{"examples/defer", false, "golang.org/x/sys/unix", false},
		{"examples/defer", false, module + "/uring", false},
		{"examples/defer", false, module + "/internal/testutil", false},
		{"examples/defer", true, module + "/internal/testutil", true},
		{"examples/defer", true, "github.com/stretchr/testify/require", true},
		{"examples/defer", true, module + "/fallback_epoll", false},
		{"examples/defer", true, "golang.org/x/sys/unix", false},
		{"timers", false, "golang.org/x/sys/unix", false},
		{"timers", false, "github.com/stretchr/testify/assert", false},
		{"timers", true, "github.com/stretchr/testify/assert", true},
		{"timers", true, module + "/timers", true},
		{"timers", true, module + "/loop", false},
		{"loop", false, module + "/internal/testutil", false},
		{"loop", true, module + "/internal/testutil", true},
		{"loop", true, "unsafe", false},
		{"uring", true, "unsafe", true},
		{"uring", true, "github.com/pawelgaczynski/giouring", true},
		{"uring", false, "github.com/pawelgaczynski/giouring", false},
		{"conn", false, "C", false},
	} {
		got := check(c.rel, c.test, c.imp)
		assert.Equal(t, c.ok, len(got) == 0, "%s (test %v) importing %s: %v", c.rel, c.test, c.imp, got)
	}
}
