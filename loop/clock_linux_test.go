package loop_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// TestClockFreshInHandlers: the loop waits idle for 300 ms, then a client
// sends. Inside ReceiveData the loop's time must already count that wait,
// and a 200 ms timer armed there must not fire before 200 ms have passed —
// with the time refreshed only after the whole batch, both were 300 ms off.
func TestClockFreshInHandlers(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		const idle, after = 300 * time.Millisecond, 200 * time.Millisecond
		g := startLoop(t, b, loop.Options{})
		type result struct{ lag, fired time.Duration }
		done := make(chan result, 1)
		_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
			return &hazardFunc{recv: func(c *conn.Conn, data []byte) {
				armed := time.Now()
				lag := armed.Sub(g.l.Now())
				_, err := g.l.AddTimer(after, func() { done <- result{lag, time.Since(armed)} })
				assert.NoError(t, err)
			}}
		})
		c, err := net.Dial("tcp", addr.String())
		require.NoError(t, err)
		defer c.Close()
		time.Sleep(idle) // the loop blocks in its wait meanwhile
		_, err = c.Write([]byte("x"))
		require.NoError(t, err)
		select {
		case r := <-done:
			assert.Less(t, r.lag, idle/2, "l.Now() in ReceiveData lags the real time")
			assert.GreaterOrEqual(t, r.fired, after, "a timer armed in ReceiveData fired early")
		case <-time.After(wait):
			t.Fatal("the timer did not fire")
		}
		require.NoError(t, g.stop())
	})
}

// TestTimerAfterSlowCallback: a tick callback runs for 400 ms while a 300 ms
// timer is pending. The loop must measure its next wait from the time after
// the callback, so the overdue timer fires at once (about 400 ms after it
// was armed); a wait measured from the time read before the callback ran
// would sleep another 300 ms (700 ms).
func TestTimerAfterSlowCallback(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		const after, busy = 300 * time.Millisecond, 400 * time.Millisecond
		g := startLoop(t, b, loop.Options{})
		fired := make(chan time.Duration, 1)
		require.NoError(t, g.l.NextTick(func() {
			armed := time.Now()
			_, err := g.l.AddTimer(after, func() { fired <- time.Since(armed) })
			assert.NoError(t, err)
			// The next iteration's tick phase: the timer phase in between
			// reads the clock, then this callback makes it stale.
			assert.NoError(t, g.l.NextTick(func() { time.Sleep(busy) }))
		}))
		select {
		case d := <-fired:
			assert.GreaterOrEqual(t, d, busy, "the timer fired during the callback")
			assert.Less(t, d, busy+after/2, "the timer waited its whole delay again after the callback")
		case <-time.After(wait):
			t.Fatal("the timer did not fire")
		}
		require.NoError(t, g.stop())
	})
}
