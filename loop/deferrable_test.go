package loop_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// These tests need no running loop: a Deferrable's callbacks run inside
// Succeed and Fail. The ones that involve the loop (Timeout, panics through
// the ErrorHandler) are in deferrable_linux_test.go.

func TestDeferrableOrderAndDrop(t *testing.T) {
	testutil.CheckLeaks(t)
	var got []string
	var d loop.Deferrable[int] // the zero value is ready
	assert.Equal(t, loop.DeferredPending, d.Status())
	d.Callback(func(v int) { got = append(got, fmt.Sprint("cb1 ", v)) }).
		Errback(func(err error) { got = append(got, "eb") }).
		Callback(func(v int) { got = append(got, fmt.Sprint("cb2 ", v)) }).
		Callback(nil).Errback(nil)
	d.Succeed(7)
	assert.Equal(t, []string{"cb1 7", "cb2 7"}, got)
	assert.Equal(t, loop.DeferredSucceeded, d.Status())
	assert.Equal(t, 7, d.Value())
	assert.NoError(t, d.Err())

	// Added after success: runs at once; an errback is dropped.
	got = nil
	d.Callback(func(v int) { got = append(got, fmt.Sprint("late ", v)) })
	d.Errback(func(error) { got = append(got, "late eb") })
	assert.Equal(t, []string{"late 7"}, got)
}

func TestDeferrableFailDropsCallbacks(t *testing.T) {
	testutil.CheckLeaks(t)
	boom := errors.New("boom")
	var got []string
	d := &loop.Deferrable[string]{}
	d.Callback(func(string) { got = append(got, "cb") })
	d.Errback(func(err error) { got = append(got, "eb1 "+err.Error()) })
	d.Errback(func(err error) { got = append(got, "eb2 "+err.Error()) })
	d.Fail(boom)
	d.Errback(func(err error) { got = append(got, "late eb "+err.Error()) })
	d.Callback(func(string) { got = append(got, "late cb") })
	assert.Equal(t, []string{"eb1 boom", "eb2 boom", "late eb boom"}, got)
	assert.Equal(t, loop.DeferredFailed, d.Status())
	assert.ErrorIs(t, d.Err(), boom)
	assert.Equal(t, "failed", d.Status().String())
}

// TestDeferrableCallbackAddedInsideCallback: with the status already set,
// the new callback runs at once, before the remaining ones (EventMachine
// prints cb1, added-inside, cb1 end, cb2).
func TestDeferrableCallbackAddedInsideCallback(t *testing.T) {
	testutil.CheckLeaks(t)
	var got []string
	var d loop.Deferrable[string]
	d.Callback(func(v string) {
		got = append(got, "cb1 "+v)
		d.Callback(func(w string) { got = append(got, "added-inside "+w) })
		got = append(got, "cb1 end")
	})
	d.Callback(func(v string) { got = append(got, "cb2 "+v) })
	d.Succeed("x")
	assert.Equal(t, []string{"cb1 x", "added-inside x", "cb1 end", "cb2 x"}, got)
}

// TestDeferrableSucceedInsideCallback: the remaining callbacks get the new
// value, inside the nested Succeed (EventMachine: cb2 first, cb3 second,
// cb2 end).
func TestDeferrableSucceedInsideCallback(t *testing.T) {
	testutil.CheckLeaks(t)
	var got []string
	var d loop.Deferrable[string]
	d.Callback(func(v string) { got = append(got, "cb1 "+v) })
	d.Callback(func(v string) {
		got = append(got, "cb2 "+v)
		d.Succeed("second")
		got = append(got, "cb2 end")
	})
	d.Callback(func(v string) { got = append(got, "cb3 "+v) })
	d.Succeed("first")
	assert.Equal(t, []string{"cb1 first", "cb2 first", "cb3 second", "cb2 end"}, got)
	assert.Equal(t, "second", d.Value())
}

// TestDeferrableFailInsideCallback: the remaining callbacks are dropped and
// the errbacks run (EventMachine: e cb1 x, e eb1 inner).
func TestDeferrableFailInsideCallback(t *testing.T) {
	testutil.CheckLeaks(t)
	inner := errors.New("inner")
	var got []string
	var d loop.Deferrable[string]
	d.Callback(func(v string) { got = append(got, "cb1 "+v); d.Fail(inner) })
	d.Callback(func(v string) { got = append(got, "cb2 "+v) })
	d.Errback(func(err error) { got = append(got, "eb1 "+err.Error()) })
	d.Succeed("x")
	assert.Equal(t, []string{"cb1 x", "eb1 inner"}, got)
	assert.Equal(t, loop.DeferredFailed, d.Status())
}

// TestDeferrableCompleteTwice pins the decision (EventMachine's behaviour):
// a second Succeed replaces the value without re-running callbacks; a Fail
// after Succeed flips the status, so later errbacks run and callbacks are
// dropped.
func TestDeferrableCompleteTwice(t *testing.T) {
	testutil.CheckLeaks(t)
	var got []string
	var d loop.Deferrable[string]
	d.Callback(func(v string) { got = append(got, "cb "+v) })
	d.Succeed("first")
	d.Succeed("second")
	assert.Equal(t, []string{"cb first"}, got, "callbacks run once")
	d.Callback(func(v string) { got = append(got, "late "+v) })
	assert.Equal(t, []string{"cb first", "late second"}, got, "later callbacks see the new value")

	got = nil
	d.Fail(errors.New("oops"))
	d.Errback(func(err error) { got = append(got, "eb "+err.Error()) })
	d.Callback(func(v string) { got = append(got, "dropped "+v) })
	assert.Equal(t, []string{"eb oops"}, got)
	assert.Equal(t, "", d.Value(), "Fail clears the value")
}

// TestDeferrablePanicWithoutLoop: with no loop bound, the remaining
// callbacks still run, then the panic reaches Succeed's caller.
func TestDeferrablePanicWithoutLoop(t *testing.T) {
	testutil.CheckLeaks(t)
	var got []string
	var d loop.Deferrable[int]
	d.Callback(func(int) { got = append(got, "cb1") })
	d.Callback(func(int) { panic("boom") })
	d.Callback(func(int) { got = append(got, "cb3") })
	require.PanicsWithValue(t, "boom", func() { d.Succeed(1) })
	assert.Equal(t, []string{"cb1", "cb3"}, got)
	assert.Equal(t, loop.DeferredSucceeded, d.Status())
}

func TestDeferrableTimeoutWithoutLoop(t *testing.T) {
	testutil.CheckLeaks(t)
	var d loop.Deferrable[int]
	assert.ErrorIs(t, d.Timeout(0, nil), loop.ErrNoLoop)
	assert.False(t, d.CancelTimeout())
	assert.Equal(t, "pending", d.Status().String())
}

func BenchmarkDeferrable(b *testing.B) {
	b.ReportAllocs()
	sum := 0
	cb := func(v int) { sum += v }
	for b.Loop() {
		d := loop.NewDeferrable[int](nil)
		d.Callback(cb)
		d.Succeed(1)
	}
	if sum != b.N {
		b.Fatalf("sum %d, want %d", sum, b.N)
	}
}
