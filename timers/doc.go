// Package timers is the timer queue behind the loop's AddTimer and AddPeriodicTimer:
// an 8-ary min-heap of [Entry] pointers ordered by deadline, ties broken by insertion
// order.
//
// It is a pure data structure. It reads no clock, starts no goroutine and does no I/O:
// time is an int64 of nanoseconds on the caller's monotonic clock, passed in as now
// (the loop's cached time, refreshed once per iteration as in libuv), so behaviour is
// fully deterministic in tests. [AddDuration] computes now+d and saturates instead of
// wrapping, so an absurdly long timer never lands in the past.
//
// Costs: Push, Remove and Reset are O(log n); Peek, NextDeadline and Len are O(1);
// PopExpired is O(log n) per expired entry. Each heap slot holds the entry's key
// (deadline and insertion sequence) next to the entry pointer, 24 bytes, so
// comparisons read the heap's own memory and never dereference an entry; moving a
// slot only stores the new position into its entry. Slots live in pages of 4096 that
// are never copied when the heap grows, so the heap allocates its live 24 bytes per
// entry and no more; nothing else allocates. An [Entry] with a pointer Value is 16
// bytes and is meant to be embedded in the owner's timer object, with Value pointing
// back at that object: the loop's Timer (an Entry, the loop and the callback) is 32
// bytes, 56 per timer with its slot. The deadline an entry is queued with is
// available from [Heap.Deadline].
//
// A Heap is not safe for concurrent use; the loop calls it only from its goroutine.
//
// Example, the timer phase of a loop iteration:
//
//	type timer struct {
//		entry timers.Entry[*timer]
//		fn    func()
//	}
//
//	var h timers.Heap[*timer]
//	t := &timer{fn: func() { fmt.Println("fired") }}
//	t.entry.Value = t
//	_ = h.Push(&t.entry, timers.AddDuration(now, 50*time.Millisecond))
//
//	// Later, with the loop's clock refreshed:
//	due = h.PopExpired(now, due[:0])
//	for _, e := range due {
//		e.Value.fn()
//	}
//	next, ok := h.NextDeadline() // how long the loop may sleep
//
// Cancelling is h.Remove(&t.entry); it returns false, harmlessly, once the timer has
// fired. Entries popped by PopExpired are no longer queued, so a callback that must
// cancel another timer of the same batch needs its own flag; alternatively the caller
// can pop one entry at a time with [Heap.Peek] and [Heap.Remove].
package timers
