package timers_test

import (
	"fmt"
	"time"

	"github.com/ringmachine/ringmachine/timers"
)

type timer struct {
	entry timers.Entry[*timer]
	name  string
}

func newTimer(name string) *timer {
	t := &timer{name: name}
	t.entry.Value = t
	return t
}

func Example() {
	var h timers.Heap[*timer]
	now := int64(0) // the loop's monotonic clock, in nanoseconds

	boom := newTimer("boom")
	tick := newTimer("tick")
	tock := newTimer("tock")
	never := newTimer("cancelled")
	_ = h.Push(&boom.entry, timers.AddDuration(now, 3*time.Second))
	_ = h.Push(&tick.entry, timers.AddDuration(now, time.Second))
	_ = h.Push(&tock.entry, timers.AddDuration(now, time.Second)) // same deadline: after tick
	_ = h.Push(&never.entry, timers.AddDuration(now, 2*time.Second))
	h.Remove(&never.entry)

	var due []*timers.Entry[*timer]
	for h.Len() > 0 {
		next, _ := h.NextDeadline()
		now = next // pretend the loop slept until the earliest deadline
		due = h.PopExpired(now, due[:0])
		for _, e := range due {
			fmt.Printf("%v %s\n", time.Duration(now), e.Value.name)
		}
	}
	fmt.Println(h.Remove(&boom.entry)) // cancelling a fired timer is a no-op
	// Output:
	// 1s tick
	// 1s tock
	// 3s boom
	// false
}

func ExampleAddDuration() {
	const maxInt64 = 1<<63 - 1
	fmt.Println(timers.AddDuration(100, 50))
	fmt.Println(timers.AddDuration(100, -150))
	fmt.Println(timers.AddDuration(maxInt64-1, time.Hour) == maxInt64)
	// Output:
	// 150
	// -50
	// true
}

func ExampleHeap_Deadline() {
	var h timers.Heap[*timer]
	t := newTimer("idle")
	_ = h.Push(&t.entry, 5)
	_ = h.Reset(&t.entry, 9) // pushed back, as an inactivity timeout on every read
	fmt.Println(h.Deadline(&t.entry))
	h.Remove(&t.entry)
	fmt.Println(h.Deadline(&t.entry))
	// Output:
	// 9 true
	// 0 false
}
