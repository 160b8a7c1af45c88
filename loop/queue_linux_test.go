package loop_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/loop"
)

func TestQueueConformance(t *testing.T) {
	runCases(t, []backendCase{
		{"PopWaitsAndFIFO", testQueueWaiters},
		{"PopSynchronousWhenAvailable", testQueuePopSync},
		{"ManyWaitingPoppers", testQueueManyWaiters},
		{"PushFromGoroutines", testQueuePushGoroutines},
		{"PopAgainFromCallback", testQueuePopAgain},
		{"PanicInWaiter", testQueuePanic},
		{"RePopDoesNotRecurse", testQueueRePopNoRecursion},
	})
}

// testQueueWaiters mirrors the EventMachine script: two waiting pops, then
// push(1, 2, 3) serves them in order and leaves one item.
func testQueueWaiters(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		q := loop.NewQueue[int](l)
		q.Pop(func(v int) { got = append(got, "pop1", string(rune('0'+v))) })
		q.Pop(func(v int) { got = append(got, "pop2", string(rune('0'+v))) })
		q.Pop(nil) // ignored
		assert.Equal(t, 2, q.NumWaiting())
		q.Push(1, 2, 3)
		q.Push()
		assert.Equal(t, 3, q.Len(), "Push appends at once")
		got = append(got, "after push")
		_ = l.NextTick(func() {
			assert.Equal(t, 1, q.Len())
			assert.Zero(t, q.NumWaiting())
			assert.False(t, q.Empty())
			l.Stop()
		})
	})
	require.NoError(t, err)
	// EventMachine serves the waiters inside push on the reactor thread;
	// here they run in the next tick phase (see Queue).
	assert.Equal(t, []string{"after push", "pop1", "1", "pop2", "2"}, got)
}

func testQueuePopSync(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		q := loop.NewQueue[string](l)
		q.Push("a")
		q.Pop(func(v string) { got = append(got, v) })
		got = append(got, "after pop")
		assert.True(t, q.Empty())
		l.Stop()
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "after pop"}, got)
}

func testQueueManyWaiters(t *testing.T, b loop.Backend) {
	const n = 10_000
	got := make([]int, 0, n)
	_, err := runLoop(t, b, loop.Options{}, 20*time.Second, func(l *loop.Loop) {
		q := loop.NewQueue[int](l)
		for i := range n {
			q.Pop(func(v int) {
				// Waiter i gets item i: waiters are served first come
				// first served.
				assert.Equal(t, i, v)
				if got = append(got, v); len(got) == n {
					l.Stop()
				}
			})
		}
		assert.Equal(t, n, q.NumWaiting())
		go func() {
			for i := range n {
				q.Push(i)
			}
		}()
	})
	require.NoError(t, err)
	assert.Len(t, got, n)
}

func testQueuePushGoroutines(t *testing.T, b loop.Backend) {
	const goroutines, perG = 8, 2_000
	seen := make(map[int]bool)
	_, err := runLoop(t, b, loop.Options{}, 20*time.Second, func(l *loop.Loop) {
		q := loop.NewQueue[int](l)
		var consume func(int)
		consume = func(v int) {
			seen[v] = true
			if len(seen) == goroutines*perG {
				l.Stop()
				return
			}
			q.Pop(consume)
		}
		q.Pop(consume)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perG {
					q.Push(g*perG + i)
				}
			}()
		}
		_ = l.AddShutdownHook(wg.Wait)
	})
	require.NoError(t, err)
	assert.Len(t, seen, goroutines*perG)
}

// testQueuePopAgain: a waiter that pops again goes behind the other waiters.
func testQueuePopAgain(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		q := loop.NewQueue[string](l)
		q.Pop(func(v string) {
			got = append(got, "A:"+v)
			q.Pop(func(v string) { got = append(got, "A2:"+v); l.Stop() })
		})
		q.Pop(func(v string) { got = append(got, "B:"+v) })
		q.Push("1", "2", "3")
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"A:1", "B:2", "A2:3"}, got)
}

func testQueuePanic(t *testing.T, b loop.Backend) {
	var handled []error
	var got []int
	_, err := runLoop(t, b, loop.Options{ErrorHandler: func(err error) { handled = append(handled, err) }}, 5*time.Second, func(l *loop.Loop) {
		q := loop.NewQueue[int](l)
		q.Pop(func(int) { panic("waiter") })
		q.Pop(func(v int) { got = append(got, v); l.Stop() })
		q.Push(1, 2)
	})
	require.NoError(t, err)
	assert.Equal(t, []int{2}, got)
	assert.Len(t, handled, 1)
}

// testQueueRePopNoRecursion: a consumer that re-arms itself with Pop is
// served after it returns, not inside its own Pop (this overflowed the stack
// of BenchmarkQueueCrossGoroutine before).
func testQueueRePopNoRecursion(t *testing.T, b loop.Backend) {
	const n = 100_000
	var got []string
	count := 0
	_, err := runLoop(t, b, loop.Options{}, 10*time.Second, func(l *loop.Loop) {
		q := loop.NewQueue[int](l)
		for i := range n {
			q.Push(i)
		}
		depth := 0
		var consume func(int)
		consume = func(v int) {
			depth++
			assert.Equal(t, 1, depth, "no nesting")
			assert.Equal(t, count, v)
			count++
			if v < 2 {
				got = append(got, "in")
			}
			if count < n {
				q.Pop(consume)
			}
			if v < 2 {
				got = append(got, "out")
			}
			depth--
		}
		q.Pop(consume)
		assert.True(t, q.Empty(), "a Pop with items available is served before it returns")
		l.Stop()
	})
	require.NoError(t, err)
	assert.Equal(t, n, count)
	assert.Equal(t, []string{"in", "out", "in", "out"}, got)
}

// BenchmarkQueuePushPop: one Push and one synchronous Pop per op, on the
// loop goroutine.
func BenchmarkQueuePushPop(b *testing.B) {
	forEachBackendB(b, func(b *testing.B, be loop.Backend) {
		runB(b, be, func(l *loop.Loop) {
			b.ReportAllocs()
			q := loop.NewQueue[int](l)
			sum := 0
			pop := func(v int) { sum += v }
			for b.Loop() {
				q.Push(1)
				q.Pop(pop)
			}
			l.Stop()
		})
	})
}

// BenchmarkQueueCrossGoroutine: a goroutine pushes, the loop pops with a
// waiting callback that re-arms itself.
func BenchmarkQueueCrossGoroutine(b *testing.B) {
	forEachBackendB(b, func(b *testing.B, be loop.Backend) {
		b.ReportAllocs()
		runB(b, be, func(l *loop.Loop) {
			q := loop.NewQueue[int](l)
			var pop func(int)
			pop = func(v int) {
				if v < 0 {
					l.Stop()
					return
				}
				q.Pop(pop)
			}
			q.Pop(pop)
			go func() {
				for b.Loop() {
					q.Push(1)
				}
				q.Push(-1)
			}()
		})
	})
}
