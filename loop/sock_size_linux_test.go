package loop

import (
	"reflect"
	"testing"
)

// TestSockSize pins the size of a connection's record: it is most of an
// idle connection's memory (README, "Idle connection memory"), and 320 B is
// a Go allocator size class, so a field added here moves every idle
// connection to the next class (352 B).
func TestSockSize(t *testing.T) {
	if got := reflect.TypeFor[sock]().Size(); got != 320 {
		t.Fatalf("sock is %d bytes, want 320: move what idle connections do not need out of line (see flowState, clientState)", got)
	}
}
