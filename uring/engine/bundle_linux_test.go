package engine

import "testing"

func TestReleaseReordersBundles(t *testing.T) {
	for release, want := range map[string]bool{
		"6.18.0":              false,
		"6.12.10":             false,
		"6.13.10":             false,
		"6.13.11":             true,
		"6.13.12-generic":     true,
		"6.14.0":              true,
		"6.14.7-6.14-alt1":    true,
		"6.14.8-arch1-1":      true,
		"6.14.9":              false,
		"6.14":                true,
		"6.14-rc3":            true,
		"6.15.0-rc1":          false,
		"5.15.0-91-generic":   false,
		"7.0.1":               false,
		"":                    false,
		"garbage":             false,
		"6.x.1":               false,
		"6.13.11+deb13-amd64": true,
	} {
		v, ok := parseRelease(release)
		if got := ok && releaseReordersBundles(v); got != want {
			t.Errorf("releaseReordersBundles(%q) = %v, want %v", release, got, want)
		}
	}
}
