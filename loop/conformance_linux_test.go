package loop_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// runLoop runs fn on a new loop of backend b and fails the test if Run does
// not return within limit. It checks that nothing is in flight afterwards.
func runLoop(t *testing.T, b loop.Backend, opts loop.Options, limit time.Duration, fn func(l *loop.Loop)) (*loop.Loop, error) {
	t.Helper()
	opts.Backend = b
	l, err := loop.New(opts)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- l.Run(fn) }()
	select {
	case err = <-done:
	case <-time.After(limit):
		l.Stop()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("Run did not return within %v", limit)
	}
	assert.False(t, l.Running())
	assert.Zero(t, l.InFlightOps())
	return l, err
}

// conformance is the table of loop behaviours every backend must pass.
var conformance = []struct {
	name string
	fn   func(t *testing.T, b loop.Backend)
}{
	{"RunStopFromCallback", testRunStopFromCallback},
	{"StopFromOtherGoroutine", testStopFromOtherGoroutine},
	{"RunAgainAfterStop", testRunAgain},
	{"StopAsRunEnds", testStopAsRunEnds},
	{"TimerOrder", testTimerOrder},
	{"TimerZeroNotSynchronous", testTimerZeroNotSynchronous},
	{"TimerCancel", testTimerCancel},
	{"TimerAddedInTimerPhaseWaits", testTimerAddedInTimerPhase},
	{"PeriodicTimer", testPeriodicTimer},
	{"PeriodicCancelInside", testPeriodicCancelInside},
	{"PeriodicSetInterval", testPeriodicSetInterval},
	{"PhaseOrder", testPhaseOrder},
	{"SelfReschedulingTickDoesNotStarve", testTickStarvation},
	{"NextTickCrossGoroutine", testNextTickCrossGoroutine},
	{"NextTickWakesBlockedLoop", testNextTickWakes},
	{"Defer", testDefer},
	{"DeferErr", testDeferErr},
	{"DeferPanic", testDeferPanic},
	{"PanicWithHandler", testPanicWithHandler},
	{"PanicWithoutHandler", testPanicWithoutHandler},
	{"ShutdownHooksLIFO", testShutdownHooks},
	{"MaxTimers", testMaxTimers},
	{"LockedThread", testLockedThread},
	{"NowAdvances", testNowAdvances},
	{"StopDiscardsPending", testStopDiscardsPending},
	{"TimerFiresNotEarly", testTimerNotEarly},
	{"StopSkipsRestOfPhase", testStopSkipsRestOfPhase},
}

func TestConformance(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		for _, tc := range conformance {
			t.Run(tc.name, func(t *testing.T) {
				testutil.CheckLeaks(t)
				tc.fn(t, b)
			})
		}
	})
}

func testRunStopFromCallback(t *testing.T, b loop.Backend) {
	var running, ran bool
	l, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		running = l.Running()
		ran = true
		l.Stop()
	})
	require.NoError(t, err)
	assert.True(t, ran)
	assert.True(t, running)
	assert.Equal(t, b, l.Backend())
}

func testStopFromOtherGoroutine(t *testing.T, b loop.Backend) {
	started := make(chan *loop.Loop)
	go func() {
		l := <-started
		l.Stop()
		l.Stop() // idempotent
	}()
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) { started <- l })
	require.NoError(t, err)
}

func testRunAgain(t *testing.T, b loop.Backend) {
	l, err := loop.New(loop.Options{Backend: b})
	require.NoError(t, err)
	for i := range 3 {
		fired := false
		err := l.Run(func(l *loop.Loop) {
			_, err := l.AddTimer(time.Millisecond, func() { fired = true; l.Stop() })
			assert.NoError(t, err)
		})
		require.NoError(t, err, "run %d", i)
		assert.True(t, fired, "run %d", i)
		assert.Zero(t, l.InFlightOps())
	}
	assert.ErrorIs(t, l.Run(nil), loop.ErrNilFunc)
}

// testStopAsRunEnds: a Stop from another goroutine that saw the loop
// running and lands as Run ends (a group's members stop each other as they
// end) neither stops the next Run nor blocks for long.
func testStopAsRunEnds(t *testing.T, b loop.Backend) {
	l, err := loop.New(loop.Options{Backend: b})
	require.NoError(t, err)
	started, stopped := make(chan struct{}), make(chan struct{})
	restore := loop.SetTestHookRunEnding(func(l *loop.Loop) {
		go func() { close(started); l.Stop(); close(stopped) }()
		<-started
		select {
		case <-stopped: // Stop did not wait for Run to end
		case <-time.After(20 * time.Millisecond):
		}
	})
	require.NoError(t, l.Run(func(l *loop.Loop) { l.Stop() }))
	restore()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop blocked after Run returned")
	}
	fired := false
	require.NoError(t, l.Run(func(l *loop.Loop) {
		_, err := l.AddTimer(time.Millisecond, func() { fired = true; l.Stop() })
		assert.NoError(t, err)
	}))
	assert.True(t, fired, "the next Run stopped before its timer: a stale Stop")
}

func testTimerOrder(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		add := func(d time.Duration, name string) {
			_, err := l.AddTimer(d, func() { got = append(got, name) })
			assert.NoError(t, err)
		}
		add(30*time.Millisecond, "30ms")
		add(10*time.Millisecond, "10ms-a")
		add(0, "0-a")
		add(10*time.Millisecond, "10ms-b")
		add(0, "0-b")
		add(-time.Second, "negative")
		add(10*time.Millisecond, "10ms-c")
		_, err := l.AddTimer(50*time.Millisecond, l.Stop)
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"negative", "0-a", "0-b", "10ms-a", "10ms-b", "10ms-c", "30ms"}, got)
}

func testTimerZeroNotSynchronous(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		_, err := l.AddTimer(0, func() { got = append(got, "timer"); l.Stop() })
		assert.NoError(t, err)
		got = append(got, "after AddTimer")
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"after AddTimer", "timer"}, got)
}

func testTimerCancel(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		never, err := l.AddTimer(10*time.Millisecond, func() { got = append(got, "cancelled timer fired") })
		require.NoError(t, err)
		assert.True(t, never.Pending())
		assert.True(t, never.Cancel())
		assert.False(t, never.Cancel(), "second cancel is a no-op")
		assert.False(t, never.Pending())

		var self *loop.Timer
		self, err = l.AddTimer(time.Millisecond, func() {
			got = append(got, "self")
			assert.False(t, self.Cancel(), "cancel inside own callback is a no-op")
		})
		require.NoError(t, err)

		// A timer cancelled by an earlier timer of the same phase does not run.
		var victim *loop.Timer
		_, err = l.AddTimer(5*time.Millisecond, func() { got = append(got, "killer"); victim.Cancel() })
		require.NoError(t, err)
		victim, err = l.AddTimer(5*time.Millisecond, func() { got = append(got, "victim") })
		require.NoError(t, err)

		_, err = l.AddTimer(30*time.Millisecond, func() {
			assert.False(t, self.Cancel(), "cancel after firing is a no-op")
			assert.Zero(t, l.PendingTimers())
			l.Stop()
		})
		require.NoError(t, err)
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"self", "killer"}, got)
}

func testTimerAddedInTimerPhase(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		_, err := l.AddTimer(0, func() {
			got = append(got, "first")
			_, err := l.AddTimer(0, func() { got = append(got, "added in phase"); l.Stop() })
			assert.NoError(t, err)
			assert.NoError(t, l.NextTick(func() { got = append(got, "tick") }))
		})
		assert.NoError(t, err)
		_, err = l.AddTimer(0, func() { got = append(got, "second") })
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	// The tick runs in the next iteration's tick phase, before the timer
	// added in the previous timer phase.
	assert.Equal(t, []string{"first", "second", "tick", "added in phase"}, got)
}

func testPeriodicTimer(t *testing.T, b loop.Backend) {
	n := 0
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		var p *loop.PeriodicTimer
		p, err := l.AddPeriodicTimer(2*time.Millisecond, func() {
			n++
			if n == 5 {
				assert.True(t, p.Cancel())
				assert.False(t, p.Cancel())
				_, err := l.AddTimer(20*time.Millisecond, l.Stop)
				assert.NoError(t, err)
			}
		})
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	assert.Equal(t, 5, n)
}

func testPeriodicCancelInside(t *testing.T, b loop.Backend) {
	n := 0
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		var p *loop.PeriodicTimer
		p, err := l.AddPeriodicTimer(0, func() {
			n++
			p.Cancel()
			_, err := l.AddTimer(10*time.Millisecond, func() {
				assert.Zero(t, l.PendingTimers())
				l.Stop()
			})
			assert.NoError(t, err)
		})
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}

func testPeriodicSetInterval(t *testing.T, b loop.Backend) {
	var stamps []time.Time
	_, err := runLoop(t, b, loop.Options{}, 10*time.Second, func(l *loop.Loop) {
		var p *loop.PeriodicTimer
		p, err := l.AddPeriodicTimer(time.Millisecond, func() {
			stamps = append(stamps, l.Now())
			switch len(stamps) {
			case 2:
				p.SetInterval(60 * time.Millisecond)
				assert.Equal(t, 60*time.Millisecond, p.Interval())
			case 3:
				p.Cancel()
				l.Stop()
			}
		})
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	require.Len(t, stamps, 3)
	assert.GreaterOrEqual(t, stamps[2].Sub(stamps[1]), 60*time.Millisecond, "new interval applies from the next re-arm")
}

func testPhaseOrder(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		_, err := l.AddTimer(0, func() { got = append(got, "timer0") })
		assert.NoError(t, err)
		assert.NoError(t, l.NextTick(func() {
			got = append(got, "tick1")
			assert.NoError(t, l.NextTick(func() { got = append(got, "tick2"); l.Stop() }))
		}))
	})
	require.NoError(t, err)
	// NextTick work runs before AddTimer(0) work; a tick queued by a tick
	// runs after the timers due by then.
	assert.Equal(t, []string{"tick1", "timer0", "tick2"}, got)
}

func testTickStarvation(t *testing.T, b loop.Backend) {
	ticks := 0
	_, err := runLoop(t, b, loop.Options{}, 10*time.Second, func(l *loop.Loop) {
		var again func()
		again = func() { ticks++; _ = l.NextTick(again) }
		_ = l.NextTick(again)
		_, err := l.AddTimer(20*time.Millisecond, l.Stop)
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	assert.Greater(t, ticks, 10)
}

func testNextTickCrossGoroutine(t *testing.T, b loop.Backend) {
	const goroutines = 8
	perG := 100_000
	if testing.Short() {
		perG = 20_000
	}
	counts := make([]int32, goroutines*perG)
	total := 0
	_, err := runLoop(t, b, loop.Options{}, 60*time.Second, func(l *loop.Loop) {
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perG {
					idx := g*perG + i
					if err := l.NextTick(func() {
						counts[idx]++
						total++
						if total == goroutines*perG {
							l.Stop()
						}
					}); err != nil {
						panic(err)
					}
				}
			}()
		}
		_ = l.AddShutdownHook(wg.Wait)
	})
	require.NoError(t, err)
	require.Equal(t, goroutines*perG, total)
	for i, c := range counts {
		if c != 1 {
			t.Fatalf("tick %d ran %d times", i, c)
		}
	}
}

func testNextTickWakes(t *testing.T, b loop.Backend) {
	woke := make(chan struct{})
	_, err := runLoop(t, b, loop.Options{}, 10*time.Second, func(l *loop.Loop) {
		// No timers: the loop blocks in poll until woken.
		go func() {
			time.Sleep(20 * time.Millisecond)
			for range 3 {
				_ = l.NextTick(func() {})
			}
			_ = l.NextTick(func() { close(woke); l.Stop() })
		}()
	})
	require.NoError(t, err)
	select {
	case <-woke:
	default:
		t.Fatal("tick did not run")
	}
}

func testDefer(t *testing.T, b loop.Backend) {
	var loopTID, opTID, cbTID int
	var result int
	_, err := runLoop(t, b, loop.Options{PoolSize: 2}, 5*time.Second, func(l *loop.Loop) {
		loopTID = unix.Gettid()
		err := loop.Defer(l, func() int {
			opTID = unix.Gettid()
			return 2 + 2
		}, func(v int) {
			cbTID = unix.Gettid()
			result = v
			l.Stop()
		})
		assert.NoError(t, err)
		assert.ErrorIs(t, loop.Defer[int](l, nil, nil), loop.ErrNilFunc)
	})
	require.NoError(t, err)
	assert.Equal(t, 4, result)
	assert.Equal(t, loopTID, cbTID, "callback runs on the loop thread")
	assert.NotEqual(t, loopTID, opTID, "op runs on a worker")
}

func testDeferErr(t *testing.T, b loop.Backend) {
	boom := errors.New("boom")
	var got []error
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		n := 0
		cb := func(v string, err error) {
			got = append(got, err)
			if n++; n == 3 {
				l.Stop()
			}
		}
		assert.NoError(t, loop.DeferErr(l, func() (string, error) { return "ok", nil }, cb))
		assert.NoError(t, loop.DeferErr(l, func() (string, error) { return "", boom }, cb))
		assert.NoError(t, loop.DeferErr(l, func() (string, error) { panic("op exploded") }, cb))
	})
	require.NoError(t, err)
	require.Len(t, got, 3)
	var nils, booms, panics int
	for _, e := range got {
		var pe *loop.PanicError
		switch {
		case e == nil:
			nils++
		case errors.Is(e, boom):
			booms++
		case errors.As(e, &pe):
			panics++
			assert.Equal(t, "op exploded", pe.Value)
			assert.Contains(t, string(pe.Stack), "loop_test")
		}
	}
	assert.Equal(t, []int{1, 1, 1}, []int{nils, booms, panics})
}

func testDeferPanic(t *testing.T, b loop.Backend) {
	var handled []error
	_, err := runLoop(t, b, loop.Options{ErrorHandler: func(err error) { handled = append(handled, err) }}, 5*time.Second, func(l *loop.Loop) {
		assert.NoError(t, loop.Defer(l, func() int { panic("worker panic") }, func(int) {
			t.Error("callback of a panicking op must not run")
		}))
		_, err := l.AddTimer(100*time.Millisecond, l.Stop)
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	require.Len(t, handled, 1)
	var pe *loop.PanicError
	require.ErrorAs(t, handled[0], &pe)
	assert.Equal(t, "worker panic", pe.Value)

	// Without a handler the panic stops the loop and Run returns it.
	_, err = runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		assert.NoError(t, loop.Defer(l, func() int { panic("worker panic 2") }, nil))
	})
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "worker panic 2", pe.Value)
}

func testPanicWithHandler(t *testing.T, b loop.Backend) {
	var handled []error
	after := false
	_, err := runLoop(t, b, loop.Options{ErrorHandler: func(err error) { handled = append(handled, err) }}, 5*time.Second, func(l *loop.Loop) {
		_ = l.NextTick(func() { panic("tick panic") })
		_, err := l.AddTimer(0, func() { panic(fmt.Errorf("timer panic: %w", syscall.EBADF)) })
		assert.NoError(t, err)
		_, err = l.AddTimer(5*time.Millisecond, func() { after = true; l.Stop() })
		assert.NoError(t, err)
		panic("run callback panic")
	})
	require.NoError(t, err)
	assert.True(t, after, "the loop went on after the panics")
	require.Len(t, handled, 3)
	var pe *loop.PanicError
	require.ErrorAs(t, handled[0], &pe)
	assert.Equal(t, "run callback panic", pe.Value)
	assert.Contains(t, string(pe.Stack), "testPanicWithHandler")
	assert.ErrorIs(t, handled[2], syscall.EBADF, "panic(err) unwraps to err")
}

func testPanicWithoutHandler(t *testing.T, b loop.Backend) {
	hook := false
	later := false
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		_ = l.AddShutdownHook(func() { hook = true })
		_, err := l.AddTimer(0, func() { panic("fatal") })
		assert.NoError(t, err)
		_, err = l.AddTimer(50*time.Millisecond, func() { later = true })
		assert.NoError(t, err)
	})
	var pe *loop.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "fatal", pe.Value)
	assert.True(t, hook, "shutdown hooks run on a panic stop")
	assert.False(t, later)

	// A panicking ErrorHandler stops the loop too.
	_, err = runLoop(t, b, loop.Options{ErrorHandler: func(error) { panic("handler") }}, 5*time.Second, func(l *loop.Loop) {
		panic("first")
	})
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "handler", pe.Value)
}

func testShutdownHooks(t *testing.T, b loop.Backend) {
	var got []int
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		for i := range 3 {
			assert.NoError(t, l.AddShutdownHook(func() { got = append(got, i) }))
		}
		assert.ErrorIs(t, l.AddShutdownHook(nil), loop.ErrNilFunc)
		l.Stop()
	})
	require.NoError(t, err)
	assert.Equal(t, []int{2, 1, 0}, got)
}

func testMaxTimers(t *testing.T, b loop.Backend) {
	_, err := runLoop(t, b, loop.Options{MaxTimers: 3}, 5*time.Second, func(l *loop.Loop) {
		var ts []*loop.Timer
		for range 2 {
			tm, err := l.AddTimer(time.Hour, func() {})
			require.NoError(t, err)
			ts = append(ts, tm)
		}
		_, err := l.AddPeriodicTimer(time.Hour, func() {})
		require.NoError(t, err)
		_, err = l.AddTimer(time.Hour, func() {})
		assert.ErrorIs(t, err, loop.ErrTooManyTimers)
		_, err = l.AddPeriodicTimer(time.Hour, func() {})
		assert.ErrorIs(t, err, loop.ErrTooManyTimers)
		ts[0].Cancel()
		_, err = l.AddTimer(0, l.Stop)
		assert.NoError(t, err, "a cancelled timer frees its slot")
		_, err = l.AddTimer(0, nil)
		assert.ErrorIs(t, err, loop.ErrNilFunc)
	})
	require.NoError(t, err)
}

func testLockedThread(t *testing.T, b loop.Backend) {
	var tids []int
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		tids = append(tids, unix.Gettid())
		_ = l.NextTick(func() { tids = append(tids, unix.Gettid()) })
		_, _ = l.AddTimer(2*time.Millisecond, func() {
			tids = append(tids, unix.Gettid())
			_ = loop.Defer(l, func() int { return 0 }, func(int) {
				tids = append(tids, unix.Gettid())
				l.Stop()
			})
		})
	})
	require.NoError(t, err)
	require.Len(t, tids, 4)
	for _, tid := range tids {
		assert.Equal(t, tids[0], tid)
	}
}

func testNowAdvances(t *testing.T, b loop.Backend) {
	var start, end time.Time
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		start = l.Now()
		_, _ = l.AddTimer(20*time.Millisecond, func() { end = l.Now(); l.Stop() })
	})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, end.Sub(start), 20*time.Millisecond)
}

func testStopDiscardsPending(t *testing.T, b loop.Backend) {
	var fired atomic.Bool
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		_, _ = l.AddTimer(time.Hour, func() { fired.Store(true) })
		_, _ = l.AddPeriodicTimer(time.Hour, func() { fired.Store(true) })
		// A slow Defer op: Stop waits for it but drops its callback.
		_ = loop.Defer(l, func() int { time.Sleep(30 * time.Millisecond); return 1 }, func(int) { fired.Store(true) })
		l.Stop()
		assert.ErrorIs(t, l.NextTick(nil), loop.ErrNilFunc)
	})
	require.NoError(t, err)
	assert.False(t, fired.Load())
}

func testTimerNotEarly(t *testing.T, b loop.Backend) {
	const d = 30 * time.Millisecond
	var start time.Time
	var elapsed time.Duration
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		start = time.Now()
		_, _ = l.AddTimer(d, func() { elapsed = time.Since(start); l.Stop() })
	})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, elapsed, d, "a timer never fires early")
}

func TestOptionsValidation(t *testing.T) {
	_, err := loop.New(loop.Options{PoolSize: -1})
	assert.Error(t, err)
	_, err = loop.New(loop.Options{MaxTimers: -1})
	assert.Error(t, err)
	_, err = loop.New(loop.Options{Backend: loop.Backend(9)})
	assert.ErrorIs(t, err, loop.ErrInvalidBackend)
	for _, s := range []string{"", "auto", "uring", "epoll"} {
		_, err := loop.ParseBackend(s)
		assert.NoError(t, err, s)
	}
	_, err = loop.ParseBackend("kqueue")
	assert.ErrorIs(t, err, loop.ErrInvalidBackend)
	assert.Equal(t, "uring", loop.URing.String())
}

func TestRunTwiceConcurrently(t *testing.T) {
	testutil.CheckLeaks(t)
	l, err := loop.New(loop.Options{Backend: loop.Epoll})
	require.NoError(t, err)
	err = l.Run(func(l *loop.Loop) {
		assert.ErrorIs(t, l.Run(func(*loop.Loop) {}), loop.ErrAlreadyRunning)
		l.Stop()
	})
	require.NoError(t, err)
}

// TestPackageRun checks loop.Run, which runs a loop with the zero Options.
func TestPackageRun(t *testing.T) {
	testutil.CheckLeaks(t)
	ran := false
	err := loop.Run(func(l *loop.Loop) { ran = true; l.Stop() })
	require.NoError(t, err)
	assert.True(t, ran)
}

func TestBackendSelection(t *testing.T) {
	testutil.CheckLeaks(t)
	t.Run("EnvOverridesAuto", func(t *testing.T) {
		t.Setenv(loop.EnvBackend, "epoll")
		l, err := runLoop(t, loop.Auto, loop.Options{}, 5*time.Second, func(l *loop.Loop) { l.Stop() })
		require.NoError(t, err)
		assert.Equal(t, loop.Epoll, l.Backend())
	})
	t.Run("EnvDoesNotOverrideExplicit", func(t *testing.T) {
		testutil.RequireURing(t)
		t.Setenv(loop.EnvBackend, "epoll")
		l, err := runLoop(t, loop.URing, loop.Options{}, 5*time.Second, func(l *loop.Loop) { l.Stop() })
		require.NoError(t, err)
		assert.Equal(t, loop.URing, l.Backend())
	})
	t.Run("InvalidEnv", func(t *testing.T) {
		t.Setenv(loop.EnvBackend, "kqueue")
		l, err := loop.New(loop.Options{})
		require.NoError(t, err)
		err = l.Run(func(l *loop.Loop) { t.Error("must not run") })
		assert.ErrorIs(t, err, loop.ErrInvalidBackend)
	})
	t.Run("AutoPrefersURing", func(t *testing.T) {
		testutil.RequireURing(t)
		t.Setenv(loop.EnvBackend, "")
		l, err := runLoop(t, loop.Auto, loop.Options{}, 5*time.Second, func(l *loop.Loop) { l.Stop() })
		require.NoError(t, err)
		assert.Equal(t, loop.URing, l.Backend())
	})
	for _, errno := range []syscall.Errno{syscall.ENOSYS, syscall.EPERM, syscall.ENOMEM} {
		t.Run("AutoFallsBackOn"+errno.Error(), func(t *testing.T) {
			t.Setenv(loop.EnvBackend, "")
			restore := loop.SetTestHookOpenURing(func() (any, error) { return nil, fmt.Errorf("io_uring_setup: %w", errno) })
			defer restore()
			l, err := runLoop(t, loop.Auto, loop.Options{}, 5*time.Second, func(l *loop.Loop) { l.Stop() })
			require.NoError(t, err)
			assert.Equal(t, loop.Epoll, l.Backend())

			l, err = loop.New(loop.Options{Backend: loop.URing})
			require.NoError(t, err)
			err = l.Run(func(*loop.Loop) { t.Error("must not run") })
			assert.ErrorIs(t, err, errno, "explicit URing reports why it cannot work")
		})
	}
	t.Run("AutoDoesNotHideOtherErrors", func(t *testing.T) {
		t.Setenv(loop.EnvBackend, "")
		restore := loop.SetTestHookOpenURing(func() (any, error) { return nil, syscall.EBADF })
		defer restore()
		l, err := loop.New(loop.Options{})
		require.NoError(t, err)
		assert.ErrorIs(t, l.Run(func(*loop.Loop) {}), syscall.EBADF)
	})
}

func TestURingAvailable(t *testing.T) {
	testutil.RequireURing(t)
	assert.NoError(t, loop.URingAvailable())
}

func testStopSkipsRestOfPhase(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		_, _ = l.AddTimer(0, func() { got = append(got, "timer1"); l.Stop() })
		_, _ = l.AddTimer(0, func() { got = append(got, "timer2") })
		_ = l.NextTick(func() { got = append(got, "tick1") })
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"tick1", "timer1"}, got, "nothing runs after the callback that stopped the loop")

	got = nil
	_, err = runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		_ = l.NextTick(func() { got = append(got, "tick1"); l.Stop() })
		_ = l.NextTick(func() { got = append(got, "tick2") })
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"tick1"}, got)
}
