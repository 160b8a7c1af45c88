//go:build stress

package loop_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// TestStressRunStopCycles starts and stops a loop many times, from inside
// and from other goroutines, with Defer work in flight.
func TestStressRunStopCycles(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		l, err := loop.New(loop.Options{Backend: b, PoolSize: 4})
		require.NoError(t, err)
		for i := range 300 {
			err := l.Run(func(l *loop.Loop) {
				for range 8 {
					_ = loop.Defer(l, func() int { time.Sleep(time.Microsecond); return 0 }, func(int) {})
				}
				if i%2 == 0 {
					go l.Stop()
				} else {
					_, _ = l.AddTimer(time.Duration(i%3)*time.Millisecond, l.Stop)
				}
			})
			require.NoError(t, err, "cycle %d", i)
			require.Zero(t, l.InFlightOps())
		}
	})
}

// TestStressManyTimers fires 3M timers with random-ish deadlines and checks
// their order.
func TestStressManyTimers(t *testing.T) {
	const n = 3_000_000
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		fired := 0
		var last time.Duration
		l, err := loop.New(loop.Options{Backend: b})
		require.NoError(t, err)
		err = l.Run(func(l *loop.Loop) {
			start := l.Now()
			for i := range n {
				d := time.Duration((i*7919)%5000) * time.Microsecond
				_, err := l.AddTimer(d, func() {
					if elapsed := l.Now().Sub(start); elapsed < d {
						t.Errorf("timer %d fired early: %v < %v", i, elapsed, d)
					}
					if d < last {
						t.Errorf("timer %d out of order: %v after %v", i, d, last)
					}
					last = d
					if fired++; fired == n {
						l.Stop()
					}
				})
				if err != nil {
					t.Fatal(err)
				}
			}
		})
		require.NoError(t, err)
		require.Equal(t, n, fired)
	})
}

// TestStressNextTickFlood pushes 4M ticks from 16 goroutines.
func TestStressNextTickFlood(t *testing.T) {
	const producers, per = 16, 250_000
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		got := 0
		l, err := loop.New(loop.Options{Backend: b})
		require.NoError(t, err)
		err = l.Run(func(l *loop.Loop) {
			var wg sync.WaitGroup
			for range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						_ = l.NextTick(func() {
							if got++; got == producers*per {
								l.Stop()
							}
						})
					}
				}()
			}
			_ = l.AddShutdownHook(wg.Wait)
		})
		require.NoError(t, err)
		require.Equal(t, producers*per, got)
	})
}
