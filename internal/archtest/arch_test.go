// Package archtest enforces the project's dependency rules (STYLE §1): which
// project packages each package may import, that only uring imports unsafe,
// and that no package uses cgo.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/ringmachine/ringmachine"

// allowed lists, per package (relative to the module), the project packages
// its non-test code may import. Examples and bench programs may import loop
// and conn only.
var allowed = map[string][]string{
	"uring":              nil,
	"fallback_epoll":     nil,
	"timers":             nil,
	"pool":               nil,
	"conn":               nil,
	"loop":               {"conn", "timers", "pool", "uring", "fallback_epoll"},
	"internal/testutil":  {"loop", "internal/leakcheck"},
	"internal/leakcheck": nil,
}

type pkg struct {
	ImportPath string
	Imports    []string
	CgoFiles   []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
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
		var ours []string
		for _, imp := range p.Imports {
			if imp == "C" {
				t.Errorf("%s imports C", rel)
			}
			if imp == "unsafe" && rel != "uring" {
				t.Errorf("%s imports unsafe; only uring may", rel)
			}
			if strings.HasPrefix(imp, module+"/") {
				ours = append(ours, strings.TrimPrefix(imp, module+"/"))
			}
		}
		allow, known := allowed[rel]
		switch {
		case strings.HasPrefix(rel, "examples/") || strings.HasPrefix(rel, "bench"):
			allow, known = []string{"loop", "conn"}, true
		case strings.HasPrefix(rel, "internal/archtest"):
			allow, known = nil, true
		}
		if !known {
			t.Errorf("package %q has no entry in the import allow-list", rel)
			continue
		}
		for _, imp := range ours {
			ok := false
			for _, a := range allow {
				ok = ok || imp == a
			}
			assert.True(t, ok, "%s may not import %s (allowed: %v)", rel, imp, allow)
		}
	}
}
