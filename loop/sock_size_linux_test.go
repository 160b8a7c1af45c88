package loop

import (
	"reflect"
	"testing"
)

// TestSockSize bounds the size of a connection's record: it is most of an
// idle connection's memory (README, "Idle connection memory"), and 288 B is
// a Go allocator size class, so a record above it moves every idle
// connection to the next class (320 B).
func TestSockSize(t *testing.T) {
	got := reflect.TypeFor[sock]().Size()
	if got > 288 {
		t.Fatalf("sock is %d bytes, want at most 288: move what idle connections do not need out of line (see flowState, clientState, inactivity)", got)
	}
	t.Logf("sock is %d bytes", got)
}
