package archtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goBlock matches a fenced Go block of a Markdown file.
var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// TestReadmeProgramsBuild builds every whole program (a Go block that starts
// with "package main") of the README, as a user who pastes it would: each
// is laid over a package path inside the module with go build -overlay, so
// nothing is written into the tree.
func TestReadmeProgramsBuild(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	dir := t.TempDir()
	replace := map[string]string{}
	var pkgs []string
	for i, m := range goBlock.FindAllSubmatch(readme, -1) {
		if !strings.HasPrefix(string(m[1]), "package main\n") {
			continue
		}
		src := filepath.Join(dir, fmt.Sprintf("readme%d.go", i))
		require.NoError(t, os.WriteFile(src, m[1], 0o644))
		pkg := fmt.Sprintf("internal/archtest/readme%d", i)
		abs, err := filepath.Abs(filepath.Join("../..", pkg, "main.go"))
		require.NoError(t, err)
		replace[abs] = src
		pkgs = append(pkgs, "./"+pkg)
	}
	require.NotEmpty(t, pkgs, "the README shows whole programs")
	overlay, err := json.Marshal(map[string]any{"Replace": replace})
	require.NoError(t, err)
	ov := filepath.Join(dir, "overlay.json")
	require.NoError(t, os.WriteFile(ov, overlay, 0o644))
	for _, pkg := range pkgs {
		cmd := exec.Command("go", "build", "-o", os.DevNull, "-overlay", ov, pkg)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "README program %s:\n%s", pkg, out)
	}
}
