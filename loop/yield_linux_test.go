package loop_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// TestYieldEvery: a loop that never blocks (a tick that requeues itself)
// yields its P about once per Options.YieldEvery, never with a negative
// interval, and a loop that blocks in its wait for longer than the interval
// between bits of work (a 5 ms periodic timer against 1 ms) never yields:
// the work that wakes it is not delayed.
func TestYieldEvery(t *testing.T) {
	testutil.CheckLeaks(t)
	const busyFor = 40 * time.Millisecond
	busy := func(t *testing.T, b loop.Backend, every time.Duration) int {
		yields := -1
		_, err := runLoop(t, b, loop.Options{YieldEvery: every}, 10*time.Second, func(l *loop.Loop) {
			end := time.Now().Add(busyFor)
			var spin func()
			spin = func() {
				if time.Now().After(end) {
					yields = l.Yields()
					l.Stop()
					return
				}
				require.NoError(t, l.NextTick(spin))
			}
			require.NoError(t, l.NextTick(spin))
		})
		require.NoError(t, err)
		return yields
	}
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		t.Run("Busy", func(t *testing.T) {
			// About 40; a machine busy elsewhere may run the loop less.
			assert.GreaterOrEqual(t, busy(t, b, time.Millisecond), 5)
		})
		t.Run("Never", func(t *testing.T) {
			assert.Zero(t, busy(t, b, -1))
		})
		t.Run("Idle", func(t *testing.T) {
			yields, fired := -1, 0
			_, err := runLoop(t, b, loop.Options{YieldEvery: time.Millisecond}, 10*time.Second, func(l *loop.Loop) {
				_, err := l.AddPeriodicTimer(5*time.Millisecond, func() {
					if fired++; fired == 10 {
						yields = l.Yields()
						l.Stop()
					}
				})
				require.NoError(t, err)
			})
			require.NoError(t, err)
			assert.Zero(t, yields)
		})
	})
}
