package loop

import (
	"reflect"
	"testing"
)

// TestSockSize bounds the size of a connection's record: it is most of an
// idle connection's memory (README, "Idle connection memory"), and 320 B is
// a Go allocator size class, so a record above it moves every idle
// connection to the next class (352 B).
func TestSockSize(t *testing.T) {
	got := reflect.TypeFor[sock]().Size()
	if got > 320 {
		t.Fatalf("sock is %d bytes, want at most 320: move what idle connections do not need out of line (see flowState, clientState)", got)
	}
	t.Logf("sock is %d bytes", got)
}
