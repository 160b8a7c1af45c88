package loop_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/loop"
)

func TestTickLoopConformance(t *testing.T) {
	runCases(t, []backendCase{
		{"StopsOnTickStop", testTickLoopReturnStop},
		{"StopAndOnStop", testTickLoopStop},
		{"DoesNotStarveTimers", testTickLoopTimers},
		{"Panic", testTickLoopPanic},
		{"Restart", testTickLoopRestart},
	})
}

func testTickLoopReturnStop(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		n := 0
		tl := l.TickLoop(func() loop.TickAction {
			n++
			got = append(got, "tick")
			if n == 3 {
				return loop.TickStop
			}
			return loop.TickContinue
		})
		assert.False(t, tl.Stopped())
		got = append(got, "started")
		tl.OnStop(func() { got = append(got, "on stop 1") })
		tl.OnStop(func() { got = append(got, "on stop 2"); l.Stop() })
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"started", "tick", "tick", "tick", "on stop 1", "on stop 2"}, got)
}

func testTickLoopStop(t *testing.T, b loop.Backend) {
	calls := 0
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		tl := l.TickLoop(func() loop.TickAction { calls++; return loop.TickContinue })
		tl.OnStop(func() { got = append(got, "stopped") })
		_, err := l.AddTimer(5*time.Millisecond, func() {
			tl.Stop()
			tl.Stop() // no-op
			assert.True(t, tl.Stopped())
			tl.OnStop(func() { got = append(got, "at once") })
			n := calls
			_, err := l.AddTimer(5*time.Millisecond, func() {
				assert.Equal(t, n, calls, "no call after Stop")
				l.Stop()
			})
			assert.NoError(t, err)
		})
		assert.NoError(t, err)
		nilLoop := l.TickLoop(nil)
		assert.True(t, nilLoop.Stopped())
		assert.False(t, nilLoop.Start())
	})
	require.NoError(t, err)
	assert.Greater(t, calls, 1)
	assert.Equal(t, []string{"stopped", "at once"}, got)
}

func testTickLoopTimers(t *testing.T, b loop.Backend) {
	calls := 0
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		l.TickLoop(func() loop.TickAction { calls++; return loop.TickContinue })
		_, err := l.AddTimer(10*time.Millisecond, l.Stop)
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	assert.Greater(t, calls, 2)
}

func testTickLoopPanic(t *testing.T, b loop.Backend) {
	var handled []error
	stopped := false
	_, err := runLoop(t, b, loop.Options{ErrorHandler: func(err error) { handled = append(handled, err) }}, 5*time.Second, func(l *loop.Loop) {
		tl := l.TickLoop(func() loop.TickAction { panic("tick loop") })
		tl.OnStop(func() { stopped = true })
		_, err := l.AddTimer(10*time.Millisecond, l.Stop)
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	assert.True(t, stopped)
	assert.Len(t, handled, 1, "a panic stops the tick loop")
}

func testTickLoopRestart(t *testing.T, b loop.Backend) {
	calls := 0
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		var tl *loop.TickLoop
		tl = l.TickLoop(func() loop.TickAction {
			calls++
			if calls == 2 {
				// Stop and start again from inside: exactly one call per
				// iteration goes on.
				tl.Stop()
				assert.True(t, tl.Start())
				assert.False(t, tl.Start())
			}
			if calls == 5 {
				l.Stop()
				return loop.TickStop
			}
			return loop.TickContinue
		})
	})
	require.NoError(t, err)
	assert.Equal(t, 5, calls)
}
