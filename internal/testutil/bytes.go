package testutil

import (
	"bytes"
	"sync"
	"testing"
)

// FirstDiff returns the first index at which a and b differ: the length of
// the shorter one when it is a prefix of the other, -1 when they are equal.
func FirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// RequireSameBytes fails t at once unless got equals want byte for byte,
// reporting the lengths and the first difference rather than two dumps.
func RequireSameBytes(t testing.TB, want, got []byte, what string) {
	t.Helper()
	if !bytes.Equal(want, got) {
		t.Fatalf("%s: got %d bytes, want %d; first difference at offset %d", what, len(got), len(want), FirstDiff(want, got))
	}
}

// LockedBuffer is a bytes.Buffer safe for a writer and a reader at once:
// the output of a program a test reads while it runs.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
