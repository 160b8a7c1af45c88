package loop_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/loop"
)

func TestIteratorConformance(t *testing.T) {
	runCases(t, []backendCase{
		{"TickScheduleMatchesEventMachine", testIteratorTickSchedule},
		{"AsyncCompletionOrder", testIteratorAsyncOrder},
		{"Concurrency1", func(t *testing.T, b loop.Backend) { testIteratorConcurrency(t, b, 1, 5) }},
		{"Concurrency3", func(t *testing.T, b loop.Backend) { testIteratorConcurrency(t, b, 3, 10) }},
		{"ConcurrencyAboveLen", func(t *testing.T, b loop.Backend) { testIteratorConcurrency(t, b, 50, 7) }},
		{"Empty", testIteratorEmpty},
		{"Map", testIteratorMap},
		{"Inject", testIteratorInject},
		{"SetConcurrencyWhileRunning", testIteratorSetConcurrency},
		{"Errors", testIteratorErrors},
	})
}

// testIteratorTickSchedule reproduces, tick for tick, what EventMachine
// prints for Iterator.new([1,2,3,4], 2).each with an immediate next beside a
// self-rescheduling tick.
func testIteratorTickSchedule(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		n := 0
		var tick func()
		tick = func() {
			n++
			got = append(got, fmt.Sprint("iter ", n))
			if n < 5 {
				_ = l.NextTick(tick)
			} else {
				l.Stop()
			}
		}
		_ = l.NextTick(tick)
		it := loop.NewIterator(l, []int{1, 2, 3, 4}, 2)
		assert.NoError(t, it.Each(func(x int, s *loop.Step) {
			got = append(got, fmt.Sprint("start ", x))
			s.Next()
			s.Next() // only the first counts
		}, func() { got = append(got, "after") }))
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"iter 1", "start 1", "iter 2", "start 2", "start 3", "iter 3", "start 4", "after", "iter 4", "iter 5"}, got)
}

// testIteratorAsyncOrder: items finish out of order (timers); a worker takes
// the next item when its own is done.
func testIteratorAsyncOrder(t *testing.T, b loop.Backend) {
	want := []string{"start 1", "start 2", "done 2", "start 3", "done 1", "start 4", "done 4", "start 5", "done 5", "done 3", "after"}
	// Neighbouring events are one unit apart: a loop that a loaded machine
	// holds up for longer can swap them, so a mismatch is tried again at a
	// larger unit. An iterator that gets the order wrong does so at every
	// unit.
	var got []string
	for _, unit := range []time.Duration{20 * time.Millisecond, 60 * time.Millisecond, 180 * time.Millisecond} {
		got = iteratorAsyncOrder(t, b, unit)
		if slices.Equal(want, got) {
			return
		}
		t.Logf("unit %v: order %q; trying a larger unit", unit, got)
	}
	assert.Equal(t, want, got)
}

// iteratorAsyncOrder runs five items two at a time, item x finishing after
// delay[x] units, and returns the order of the events.
func iteratorAsyncOrder(t *testing.T, b loop.Backend, unit time.Duration) []string {
	delay := map[int]time.Duration{1: 5, 2: 4, 3: 4, 4: 1, 5: 1}
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 10*time.Second, func(l *loop.Loop) {
		it := loop.NewIterator(l, []int{1, 2, 3, 4, 5}, 2)
		assert.NoError(t, it.Each(func(x int, s *loop.Step) {
			got = append(got, fmt.Sprint("start ", x))
			_, err := l.AddTimer(delay[x]*unit, func() { got = append(got, fmt.Sprint("done ", x)); s.Next() })
			assert.NoError(t, err)
		}, func() { got = append(got, "after"); l.Stop() }))
	})
	require.NoError(t, err)
	return got
}

// testIteratorConcurrency checks that at most concurrency items are in
// progress, that the limit is reached, and that every item runs once.
func testIteratorConcurrency(t *testing.T, b loop.Backend, concurrency, n int) {
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	var order []int
	inFlight, peak, afters := 0, 0, 0
	_, err := runLoop(t, b, loop.Options{}, 10*time.Second, func(l *loop.Loop) {
		it := loop.NewIterator(l, items, concurrency)
		items[0] = -1 // the iterator has its own copy
		assert.Equal(t, concurrency, it.Concurrency())
		assert.NoError(t, it.Each(func(x int, s *loop.Step) {
			order = append(order, x)
			inFlight++
			peak = max(peak, inFlight)
			_, err := l.AddTimer(2*time.Millisecond, func() { inFlight--; s.Next() })
			assert.NoError(t, err)
		}, func() {
			afters++
			_ = l.NextTick(l.Stop)
		}))
	})
	require.NoError(t, err)
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	assert.Equal(t, want, order, "items start in slice order")
	assert.Equal(t, min(concurrency, n), peak)
	assert.Equal(t, 1, afters)
}

func testIteratorEmpty(t *testing.T, b loop.Backend) {
	done := false
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		it := loop.NewIterator[string](l, nil, 0) // concurrency below 1 means 1
		assert.Equal(t, 1, it.Concurrency())
		assert.NoError(t, it.Each(func(string, *loop.Step) { t.Error("no items") }, func() { done = true; l.Stop() }))
	})
	require.NoError(t, err)
	assert.True(t, done)
}

func testIteratorMap(t *testing.T, b loop.Backend) {
	var results []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		it := loop.NewIterator(l, []int{3, 1, 2}, 3)
		assert.NoError(t, loop.Map(it, func(x int, s *loop.MapStep[string]) {
			// Finish in reverse order of size: results keep item order.
			_, err := l.AddTimer(time.Duration(x)*3*time.Millisecond, func() {
				s.Return(fmt.Sprint(x * 10))
				s.Return("ignored")
			})
			assert.NoError(t, err)
		}, func(r []string) { results = r; l.Stop() }))
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"30", "10", "20"}, results)
}

func testIteratorInject(t *testing.T, b loop.Backend) {
	var sum int
	var seen []int
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		it := loop.NewIterator(l, []int{1, 2, 3, 4}, 1)
		assert.NoError(t, loop.Inject(it, 0, func(memo, x int, s *loop.InjectStep[int]) {
			seen = append(seen, memo)
			s.Return(memo + x)
		}, func(m int) { sum = m; l.Stop() }))
	})
	require.NoError(t, err)
	assert.Equal(t, 10, sum)
	assert.Equal(t, []int{0, 1, 3, 6}, seen)
}

// testIteratorSetConcurrency: raise while running (more in flight), lower to
// 0 (pause: nothing new starts), raise again (resumes).
func testIteratorSetConcurrency(t *testing.T, b loop.Backend) {
	items := make([]int, 12)
	inFlight, peak := 0, 0
	started := 0
	var pausedAt int
	_, err := runLoop(t, b, loop.Options{}, 10*time.Second, func(l *loop.Loop) {
		it := loop.NewIterator(l, items, 1)
		assert.NoError(t, it.Each(func(_ int, s *loop.Step) {
			started++
			inFlight++
			peak = max(peak, inFlight)
			_, err := l.AddTimer(3*time.Millisecond, func() { inFlight--; s.Next() })
			assert.NoError(t, err)
			switch started {
			case 2:
				it.SetConcurrency(4)
			case 8:
				it.SetConcurrency(-1)
				assert.Zero(t, it.Concurrency())
				_, err := l.AddTimer(40*time.Millisecond, func() {
					pausedAt = started
					assert.Zero(t, inFlight, "paused: everything finished, nothing new")
					it.SetConcurrency(2)
				})
				assert.NoError(t, err)
			}
		}, func() { l.Stop() }))
	})
	require.NoError(t, err)
	assert.Equal(t, 12, started)
	assert.Equal(t, 4, peak)
	assert.Equal(t, 8, pausedAt)
}

func testIteratorErrors(t *testing.T, b loop.Backend) {
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		it := loop.NewIterator(l, []int{1}, 1)
		assert.ErrorIs(t, it.Each(nil, nil), loop.ErrNilFunc)
		assert.ErrorIs(t, loop.Map[int, int](it, nil, nil), loop.ErrNilFunc)
		assert.ErrorIs(t, loop.Inject[int, int](it, 0, nil, nil), loop.ErrNilFunc)
		assert.NoError(t, it.Each(func(_ int, s *loop.Step) { s.Next() }, nil))
		assert.ErrorIs(t, it.Each(func(int, *loop.Step) {}, nil), loop.ErrIteratorStarted)
		assert.ErrorIs(t, loop.Map(it, func(int, *loop.MapStep[int]) {}, nil), loop.ErrIteratorStarted)
		_, err := l.AddTimer(5*time.Millisecond, l.Stop)
		assert.NoError(t, err)
	})
	require.NoError(t, err)
}
