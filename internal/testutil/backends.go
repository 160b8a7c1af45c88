package testutil

import (
	"os"
	"testing"

	"github.com/ringmachine/ringmachine/internal/leakcheck"
	"github.com/ringmachine/ringmachine/loop"
)

// Backends is the table every conformance test runs over.
var Backends = []loop.Backend{loop.URing, loop.Epoll}

// ForEachBackend runs fn as a subtest per backend, named after it. Unless
// RINGMACHINE_REQUIRE_URING=1, a machine without io_uring skips the uring
// subtests (naming why) instead of failing them.
func ForEachBackend(t *testing.T, fn func(t *testing.T, b loop.Backend)) {
	t.Helper()
	for _, b := range Backends {
		t.Run(b.String(), func(t *testing.T) {
			if b == loop.URing {
				RequireURing(t)
			}
			fn(t, b)
		})
	}
}

// RequireURing skips t when the io_uring backend cannot be opened here,
// naming the reason; with RINGMACHINE_REQUIRE_URING=1 it fails instead.
func RequireURing(t testing.TB) {
	t.Helper()
	if err := loop.URingAvailable(); err != nil {
		if os.Getenv("RINGMACHINE_REQUIRE_URING") == "1" {
			t.Fatalf("io_uring required but unavailable: %v", err)
		}
		t.Skipf("io_uring unavailable: %v", err)
	}
}

// ForEachBackendEnv is ForEachBackend for programs that pick their backend
// from the RINGMACHINE_BACKEND environment variable (the examples): each
// subtest sets it. The subtests cannot run in parallel.
func ForEachBackendEnv(t *testing.T, fn func(t *testing.T)) {
	t.Helper()
	ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		t.Setenv(loop.EnvBackend, b.String())
		fn(t)
	})
}

// CheckLeaks is leakcheck.Check: it fails t if goroutines or fds created
// during the test outlive it.
func CheckLeaks(t testing.TB) {
	t.Helper()
	leakcheck.Check(t)
}
