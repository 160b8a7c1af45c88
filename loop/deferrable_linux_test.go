package loop_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// backendCase is one behaviour of a conformance table.
type backendCase struct {
	name string
	fn   func(t *testing.T, b loop.Backend)
}

// runCases runs every case on every backend, each with a leak check.
func runCases(t *testing.T, cases []backendCase) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				testutil.CheckLeaks(t)
				tc.fn(t, b)
			})
		}
	})
}

func TestDeferrableConformance(t *testing.T) {
	runCases(t, []backendCase{
		{"TimeoutFires", testDeferrableTimeoutFires},
		{"SucceedCancelsTimeout", testDeferrableSucceedCancelsTimeout},
		{"TimeoutVsSucceedSamePhase", testDeferrableTimeoutVsSucceedSamePhase},
		{"TimeoutBeatsLateSucceed", testDeferrableTimeoutBeatsLateSucceed},
		{"TimeoutReplacedAndCancelled", testDeferrableTimeoutReplaced},
		{"TimeoutOnCompletedDoesNothing", testDeferrableTimeoutOnCompleted},
		{"Embedded", testDeferrableEmbedded},
		{"PanicWithHandler", testDeferrablePanicWithHandler},
		{"PanicWithoutHandler", testDeferrablePanicWithoutHandler},
	})
}

func testDeferrableTimeoutFires(t *testing.T, b loop.Backend) {
	boom := errors.New("too slow")
	var got []error
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		d := loop.NewDeferrable[int](l)
		d.Callback(func(int) { t.Error("callback after a timeout") })
		d.Errback(func(err error) { got = append(got, err) })
		assert.NoError(t, d.Timeout(5*time.Millisecond, boom))

		d2 := loop.NewDeferrable[int](l)
		d2.Errback(func(err error) { got = append(got, err); l.Stop() })
		assert.NoError(t, d2.Timeout(10*time.Millisecond, nil))
	})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.ErrorIs(t, got[0], boom)
	assert.ErrorIs(t, got[1], loop.ErrDeferrableTimeout)
}

func testDeferrableSucceedCancelsTimeout(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		d := loop.NewDeferrable[string](l)
		d.Callback(func(v string) { got = append(got, v) })
		d.Errback(func(err error) { got = append(got, "timeout") })
		assert.NoError(t, d.Timeout(20*time.Millisecond, nil))
		assert.Equal(t, 1, l.PendingTimers())
		_, err := l.AddTimer(time.Millisecond, func() {
			d.Succeed("done")
			assert.Equal(t, 1, l.PendingTimers(), "only the stop timer is left")
		})
		assert.NoError(t, err)
		_, err = l.AddTimer(50*time.Millisecond, l.Stop)
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"done"}, got)
}

// testDeferrableTimeoutVsSucceedSamePhase: a success and the timeout due in
// the same timer phase; whichever is first in deadline order wins and the
// other does nothing visible.
func testDeferrableTimeoutVsSucceedSamePhase(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		// Succeed first: armed before the timeout with the same delay.
		d1 := loop.NewDeferrable[string](l)
		_, err := l.AddTimer(5*time.Millisecond, func() { d1.Succeed("d1 ok") })
		assert.NoError(t, err)
		assert.NoError(t, d1.Timeout(5*time.Millisecond, nil))
		d1.Callback(func(v string) { got = append(got, v) })
		d1.Errback(func(error) { got = append(got, "d1 timeout") })

		// Timeout first: armed before the success.
		d2 := loop.NewDeferrable[string](l)
		assert.NoError(t, d2.Timeout(5*time.Millisecond, nil))
		_, err = l.AddTimer(5*time.Millisecond, func() { d2.Succeed("d2 late") })
		assert.NoError(t, err)
		d2.Callback(func(v string) { got = append(got, v) })
		d2.Errback(func(error) { got = append(got, "d2 timeout") })

		_, err = l.AddTimer(30*time.Millisecond, l.Stop)
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"d1 ok", "d2 timeout"}, got)
}

// testDeferrableTimeoutBeatsLateSucceed: once the timeout failed d, a late
// Succeed flips the status (EventMachine) but runs no callback: they were
// dropped by the failure.
func testDeferrableTimeoutBeatsLateSucceed(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		d := loop.NewDeferrable[string](l)
		d.Callback(func(v string) { got = append(got, "cb "+v) })
		d.Errback(func(err error) { got = append(got, "eb") })
		assert.NoError(t, d.Timeout(time.Millisecond, nil))
		_, err := l.AddTimer(20*time.Millisecond, func() {
			d.Succeed("late")
			assert.Equal(t, loop.DeferredSucceeded, d.Status())
			l.Stop()
		})
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"eb"}, got)
}

func testDeferrableTimeoutReplaced(t *testing.T, b loop.Backend) {
	first, second := errors.New("first"), errors.New("second")
	var got []error
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		d := loop.NewDeferrable[int](l)
		d.Errback(func(err error) { got = append(got, err) })
		assert.NoError(t, d.Timeout(5*time.Millisecond, first))
		assert.NoError(t, d.Timeout(15*time.Millisecond, second)) // replaces
		assert.Equal(t, 1, l.PendingTimers())

		c := loop.NewDeferrable[int](l)
		c.Errback(func(err error) { got = append(got, err) })
		assert.NoError(t, c.Timeout(5*time.Millisecond, first))
		assert.True(t, c.CancelTimeout())
		assert.False(t, c.CancelTimeout())
		_, err := l.AddTimer(40*time.Millisecond, l.Stop)
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.ErrorIs(t, got[0], second)
}

// testDeferrableTimeoutOnCompleted: unlike EventMachine (whose timer fails a
// Deferrable that already succeeded), Timeout on a completed one does nothing.
func testDeferrableTimeoutOnCompleted(t *testing.T, b loop.Backend) {
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		d := loop.NewDeferrable[int](l)
		d.Succeed(1)
		assert.NoError(t, d.Timeout(time.Millisecond, nil))
		assert.Zero(t, l.PendingTimers())
		_, err := l.AddTimer(10*time.Millisecond, func() {
			assert.Equal(t, loop.DeferredSucceeded, d.Status())
			l.Stop()
		})
		assert.NoError(t, err)
	})
	require.NoError(t, err)
}

// racer embeds a Deferrable, as EventMachine's "include EM::Deferrable".
type racer struct {
	loop.Deferrable[string]
	said []string
}

func testDeferrableEmbedded(t *testing.T, b loop.Backend) {
	r := &racer{}
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		r.Init(l).Callback(func(who string) { r.said = append(r.said, "Go "+who+" go"); l.Stop() })
		assert.NoError(t, r.Timeout(time.Second, nil))
		_, err := l.AddTimer(time.Millisecond, func() { r.Succeed("SpeedRacer") })
		assert.NoError(t, err)
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"Go SpeedRacer go"}, r.said)
}

// testDeferrablePanicWithHandler: each panic goes to the ErrorHandler and
// the remaining callbacks run (EventMachine loses them: its error_handler
// sees the exception only after set_deferred_status has been abandoned).
func testDeferrablePanicWithHandler(t *testing.T, b loop.Backend) {
	var handled []error
	var got []string
	_, err := runLoop(t, b, loop.Options{ErrorHandler: func(err error) { handled = append(handled, err) }}, 5*time.Second, func(l *loop.Loop) {
		d := loop.NewDeferrable[int](l)
		d.Callback(func(int) { got = append(got, "cb1") })
		d.Callback(func(int) { panic("cb2") })
		d.Callback(func(int) { panic("cb3") })
		d.Callback(func(int) { got = append(got, "cb4") })
		_ = l.NextTick(func() {
			d.Succeed(1)
			got = append(got, "after Succeed")
			l.Stop()
		})
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"cb1", "cb4", "after Succeed"}, got)
	require.Len(t, handled, 2)
	var pe *loop.PanicError
	require.ErrorAs(t, handled[0], &pe)
	assert.Equal(t, "cb2", pe.Value)
	require.ErrorAs(t, handled[1], &pe)
	assert.Equal(t, "cb3", pe.Value)
}

func testDeferrablePanicWithoutHandler(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		d := loop.NewDeferrable[int](l)
		d.Errback(func(error) { panic("eb1") })
		d.Errback(func(error) { got = append(got, "eb2") })
		_, err := l.AddTimer(time.Millisecond, func() { d.Fail(nil) })
		assert.NoError(t, err)
		_, err = l.AddTimer(time.Second, func() { got = append(got, "not reached") })
		assert.NoError(t, err)
	})
	var pe *loop.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "eb1", pe.Value)
	assert.Equal(t, []string{"eb2"}, got)
}

func BenchmarkDeferrableOnLoop(b *testing.B) {
	forEachBackendB(b, func(b *testing.B, be loop.Backend) {
		runB(b, be, func(l *loop.Loop) {
			b.ReportAllocs()
			sum := 0
			cb := func(v int) { sum += v }
			for b.Loop() {
				d := loop.NewDeferrable[int](l)
				d.Callback(cb)
				d.Succeed(1)
			}
			l.Stop()
		})
	})
}
