package loop_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/loop"
)

func TestSpawnConformance(t *testing.T) {
	runCases(t, []backendCase{
		{"NotSynchronousAndOrdered", testSpawnOrder},
		{"NotifyFromManyGoroutines", testSpawnManyGoroutines},
		{"NotifySelf", testSpawnNotifySelf},
		{"Panic", testSpawnPanic},
		{"NilFunc", testSpawnNil},
	})
}

func testSpawnOrder(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		s := loop.Spawn(l, func(v string) {
			got = append(got, "received "+v)
			if v == "c" {
				l.Stop()
			}
		})
		s.Notify("a")
		got = append(got, "after notify a")
		_ = l.NextTick(func() { got = append(got, "tick") })
		s.Notify("b")
		s.Notify("c")
	})
	require.NoError(t, err)
	// Each Notify is one tick, in order with the other ticks.
	assert.Equal(t, []string{"after notify a", "received a", "tick", "received b", "received c"}, got)
}

// testSpawnManyGoroutines: 8 goroutines × 10k notifies, none lost, each
// goroutine's order kept.
func testSpawnManyGoroutines(t *testing.T, b loop.Backend) {
	const goroutines, perG = 8, 10_000
	next := make([]int, goroutines) // next expected sequence per goroutine
	total := 0
	outOfOrder := 0
	_, err := runLoop(t, b, loop.Options{}, 60*time.Second, func(l *loop.Loop) {
		type msg struct{ g, seq int }
		s := loop.Spawn(l, func(m msg) {
			if m.seq != next[m.g] {
				outOfOrder++
			}
			next[m.g] = m.seq + 1
			if total++; total == goroutines*perG {
				l.Stop()
			}
		})
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perG {
					s.Notify(msg{g, i})
				}
			}()
		}
		_ = l.AddShutdownHook(wg.Wait)
	})
	require.NoError(t, err)
	assert.Equal(t, goroutines*perG, total)
	assert.Zero(t, outOfOrder)
	for g, n := range next {
		assert.Equal(t, perG, n, "goroutine %d", g)
	}
}

func testSpawnNotifySelf(t *testing.T, b loop.Backend) {
	var got []int
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		var s *loop.Spawned[int]
		s = loop.Spawn(l, func(n int) {
			got = append(got, n)
			if n == 3 {
				l.Stop()
				return
			}
			s.Notify(n + 1)
		})
		s.Notify(1)
	})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 3}, got)
}

func testSpawnPanic(t *testing.T, b loop.Backend) {
	var handled []error
	var got []int
	_, err := runLoop(t, b, loop.Options{ErrorHandler: func(err error) { handled = append(handled, err) }}, 5*time.Second, func(l *loop.Loop) {
		s := loop.Spawn(l, func(n int) {
			if n == 2 {
				panic(fmt.Sprint("notify ", n))
			}
			got = append(got, n)
			if n == 3 {
				l.Stop()
			}
		})
		for i := 1; i <= 3; i++ {
			s.Notify(i)
		}
	})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 3}, got)
	require.Len(t, handled, 1)
	assert.ErrorContains(t, handled[0], "notify 2")
}

func testSpawnNil(t *testing.T, b loop.Backend) {
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		loop.Spawn[int](l, nil).Notify(1) // does nothing
		_ = l.NextTick(l.Stop)
	})
	require.NoError(t, err)
}

// BenchmarkSpawnNotify measures Notify throughput: notifies from one other
// goroutine, all run on the loop (a final -1 marks the end: one goroutine's
// notifies keep their order).
func BenchmarkSpawnNotify(b *testing.B) {
	forEachBackendB(b, func(b *testing.B, be loop.Backend) {
		b.ReportAllocs()
		runB(b, be, func(l *loop.Loop) {
			got := 0
			s := loop.Spawn(l, func(n int) {
				if n < 0 {
					l.Stop()
					return
				}
				got += n
			})
			go func() {
				for b.Loop() {
					s.Notify(1)
				}
				s.Notify(-1)
			}()
		})
	})
}
