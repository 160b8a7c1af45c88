//go:build stress

package loop_test

import (
	"testing"
	"time"

	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// TestStressResetChurn is TestResetChurn at the scale: 100,000
// cycles per backend (clean closes both ways, resets, partial requests then
// a reset, resets in the middle of a 1 MiB answer), after which no
// connection may be left: ConnectionCount 0 and every fd closed. Before the
// fix the io_uring run stranded about one connection per 100,000 cycles.
func TestStressResetChurn(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		testResetChurn(t, b, 100_000, 10*time.Minute)
	})
}
