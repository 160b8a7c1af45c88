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

func TestChannelConformance(t *testing.T) {
	runCases(t, []backendCase{
		{"FanOutOrderAndPop", testChannelFanOut},
		{"UnsubscribeDuringFanOut", testChannelUnsubscribeDuringFanOut},
		{"SubscribeDuringFanOut", testChannelSubscribeDuringFanOut},
		{"PushFromGoroutines", testChannelPushGoroutines},
		{"PanicInSubscriber", testChannelPanic},
	})
}

// testChannelFanOut mirrors the EventMachine script: item by item, every
// subscriber in subscription order; a Pop gets one item only.
func testChannelFanOut(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		c := loop.NewChannel[int](l)
		rec := func(name string) func(int) {
			return func(v int) { got = append(got, fmt.Sprint(name, " ", v)) }
		}
		a := c.Subscribe(rec("a"))
		c.Subscribe(rec("b"))
		c.Pop(rec("pop"))
		assert.Zero(t, c.Subscribe(nil))
		assert.Zero(t, c.Pop(nil))
		assert.Equal(t, 3, c.NumSubscribers())
		c.Push(1, 2)
		got = append(got, "after push")
		_ = l.NextTick(func() {
			assert.Equal(t, 2, c.NumSubscribers(), "the pop is gone")
			assert.True(t, c.Unsubscribe(a))
			assert.False(t, c.Unsubscribe(a))
			c.Push(3)
			_ = l.NextTick(l.Stop)
		})
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"after push", "a 1", "b 1", "pop 1", "a 2", "b 2", "b 3"}, got)
}

// testChannelUnsubscribeDuringFanOut: a subscriber removed by an earlier one
// gets nothing more, not even the current item (EventMachine still calls it
// for the current item; see Channel).
func testChannelUnsubscribeDuringFanOut(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		c := loop.NewChannel[int](l)
		var bID, selfID loop.SubscriberID
		c.Subscribe(func(v int) {
			got = append(got, fmt.Sprint("a ", v))
			if v == 1 {
				c.Unsubscribe(bID)
			}
		})
		bID = c.Subscribe(func(v int) { got = append(got, fmt.Sprint("b ", v)) })
		selfID = c.Subscribe(func(v int) {
			got = append(got, fmt.Sprint("self ", v))
			c.Unsubscribe(selfID)
		})
		c.Subscribe(func(v int) { got = append(got, fmt.Sprint("d ", v)) })
		c.Push(1, 2)
		_ = l.NextTick(l.Stop)
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a 1", "self 1", "d 1", "a 2", "d 2"}, got)
}

func testChannelSubscribeDuringFanOut(t *testing.T, b loop.Backend) {
	var got []string
	_, err := runLoop(t, b, loop.Options{}, 5*time.Second, func(l *loop.Loop) {
		c := loop.NewChannel[int](l)
		c.Subscribe(func(v int) {
			got = append(got, fmt.Sprint("a ", v))
			if v == 1 {
				c.Subscribe(func(v int) { got = append(got, fmt.Sprint("new ", v)) })
			}
		})
		c.Push(1, 2)
		_ = l.NextTick(l.Stop)
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a 1", "a 2", "new 2"}, got)
}

func testChannelPushGoroutines(t *testing.T, b loop.Backend) {
	const goroutines, perG = 8, 1_000
	var a, bb int
	_, err := runLoop(t, b, loop.Options{}, 20*time.Second, func(l *loop.Loop) {
		c := loop.NewChannel[int](l)
		c.Subscribe(func(int) { a++ })
		c.Subscribe(func(int) {
			if bb++; bb == goroutines*perG {
				l.Stop()
			}
		})
		var wg sync.WaitGroup
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perG {
					c.Push(i)
				}
			}()
		}
		_ = l.AddShutdownHook(wg.Wait)
	})
	require.NoError(t, err)
	assert.Equal(t, goroutines*perG, a)
	assert.Equal(t, goroutines*perG, bb)
}

func testChannelPanic(t *testing.T, b loop.Backend) {
	var handled []error
	var got []int
	_, err := runLoop(t, b, loop.Options{ErrorHandler: func(err error) { handled = append(handled, err) }}, 5*time.Second, func(l *loop.Loop) {
		c := loop.NewChannel[int](l)
		c.Subscribe(func(int) { panic("subscriber") })
		c.Subscribe(func(v int) { got = append(got, v) })
		c.Push(1, 2)
		_ = l.NextTick(l.Stop)
	})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, got)
	assert.Len(t, handled, 2)
}
