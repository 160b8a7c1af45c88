package timers

import (
	"errors"
	"math"
	"slices"
	"time"
)

// ErrQueued is returned by [Heap.Push] when the entry is already queued (in this heap
// or in another one). Use [Heap.Reset] to move a queued entry to a new deadline.
var ErrQueued = errors.New("timers: entry already queued")

// ErrFull is returned by [Heap.Push] and [Heap.Reset] when the heap already holds
// [MaxLen] entries.
var ErrFull = errors.New("timers: heap full")

// MaxLen is the largest number of entries a [Heap] can hold; positions are stored in an
// int32 to keep [Entry] at 32 bytes.
const MaxLen = math.MaxInt32 - 1

// arity is the number of children per node. At 1M random deadlines the heap is
// bound by cache misses on the entries, one dependent round per level; a wider node
// makes the tree shallower (7 levels instead of 20 for a binary heap) while the
// children's loads of one level proceed in parallel. Measured on the 1M push+pop
// benchmark, 8 beat 2, 4 and 16.
const arity = 8

// Entry is one timer as the heap sees it: a deadline, an insertion sequence number
// and the entry's position in the heap. Embed it (or point to it) from the object that
// owns the timer; Value lets the owner find its way back from an entry returned by
// [Heap.PopExpired] or [Heap.Peek] without unsafe.
//
// The zero value is an entry that is not queued. An Entry must not be copied while it
// is queued, and belongs to at most one [Heap] at a time.
//
// With a pointer-sized T an Entry is 32 bytes.
type Entry[T any] struct {
	// Value is the owner's payload (typically a pointer back to the timer). The heap
	// never reads or writes it.
	Value T

	deadline int64  // nanoseconds on the caller's monotonic clock
	seq      uint64 // insertion order, breaks ties between equal deadlines
	pos      int32  // 1 + index in Heap.items; 0 when not queued
}

// Deadline returns the deadline given to the last [Heap.Push] or [Heap.Reset] of e
// (still meaningful after e has been popped or removed).
func (e *Entry[T]) Deadline() int64 { return e.deadline }

// Seq returns the insertion sequence number assigned by the last [Heap.Push] or
// [Heap.Reset] of e. Sequence numbers grow by one per insertion in a given heap; entries
// with equal deadlines fire in Seq order. Comparing Seq with [Heap.NextSeq] taken at the
// start of a phase tells an entry queued during that phase from an older one.
func (e *Entry[T]) Seq() uint64 { return e.seq }

// Queued reports whether e is currently in a heap.
func (e *Entry[T]) Queued() bool { return e.pos != 0 }

// bulkMin is the heap size above which PopExpired sorts when every entry is due. It
// is a variable only so that FuzzHeap can drive the sorting path with small heaps.
var bulkMin = 64

// compare orders entries like before, for slices.SortFunc.
func compare[T any](a, b *Entry[T]) int {
	if before(a, b) {
		return -1
	}
	if before(b, a) {
		return 1
	}
	return 0
}

// before reports whether a fires before b: earlier deadline, then earlier insertion.
func before[T any](a, b *Entry[T]) bool {
	return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq)
}

// Heap is an 8-ary min-heap of timer entries ordered by (deadline, insertion sequence).
// Push, Remove, Reset and popping one entry are O(log n); Peek, NextDeadline and Len
// are O(1). None of them allocates, except when Push grows the backing slice (8 bytes
// per entry, a slice of pointers). The slice does not shrink when entries leave.
//
// The zero value is an empty heap ready to use. A Heap is not safe for concurrent use:
// the loop calls it from its own goroutine only. It must not be copied after first use.
type Heap[T any] struct {
	items []*Entry[T]
	seq   uint64 // sequence number of the next insertion
	// latest bounds every queued deadline from above (the largest pushed since the
	// heap was last empty); when now reaches it, PopExpired sorts instead of popping.
	latest int64
}

// New returns an empty heap. It is equivalent to new(Heap[T]).
func New[T any]() *Heap[T] { return new(Heap[T]) }

// Len returns the number of queued entries.
func (h *Heap[T]) Len() int { return len(h.items) }

// NextSeq returns the sequence number the next [Heap.Push] or [Heap.Reset] will
// assign. See [Entry.Seq].
func (h *Heap[T]) NextSeq() uint64 { return h.seq }

// Push queues e to fire at deadline and assigns it the next sequence number, so it
// fires after every entry already queued with the same deadline. It runs in O(log n).
//
// Push returns [ErrQueued] if e is already queued, and [ErrFull] if the heap holds
// [MaxLen] entries; e is left unchanged in both cases.
func (h *Heap[T]) Push(e *Entry[T], deadline int64) error {
	if e.pos != 0 {
		return ErrQueued
	}
	n := len(h.items)
	if n >= MaxLen {
		return ErrFull
	}
	e.deadline = deadline
	e.seq = h.seq
	h.seq++
	if n == 0 || deadline > h.latest {
		h.latest = deadline
	}
	h.items = append(h.items, e)
	h.siftUp(n, e)
	return nil
}

// Reset moves e to a new deadline and gives it a fresh sequence number, as if it were
// removed and pushed again, in O(log n). If e is not queued, Reset is [Heap.Push].
// Typical uses are re-arming a periodic timer and pushing back an inactivity
// timeout.
//
// Reset returns [ErrQueued] if e is queued in another heap and [ErrFull] as Push does.
func (h *Heap[T]) Reset(e *Entry[T], deadline int64) error {
	if e.pos == 0 {
		return h.Push(e, deadline)
	}
	i := int(e.pos) - 1
	if i >= len(h.items) || h.items[i] != e {
		return ErrQueued
	}
	e.deadline = deadline
	e.seq = h.seq
	h.seq++
	h.latest = max(h.latest, deadline)
	h.fix(i, e)
	return nil
}

// Remove takes e out of the heap in O(log n) and reports whether it was queued here.
// Removing an entry that is not queued (never pushed, already popped or removed, or
// queued in another heap) does nothing and returns false, so cancelling a timer that
// has already fired is harmless.
func (h *Heap[T]) Remove(e *Entry[T]) bool {
	i := int(e.pos) - 1
	if i < 0 || i >= len(h.items) || h.items[i] != e {
		return false
	}
	h.removeAt(i)
	return true
}

// Peek returns the entry that fires first without removing it, or false if the heap
// is empty.
func (h *Heap[T]) Peek() (*Entry[T], bool) {
	if len(h.items) == 0 {
		return nil, false
	}
	return h.items[0], true
}

// NextDeadline returns the earliest deadline in the heap, or false if the heap is
// empty. The loop waits until then when it has nothing else to do.
func (h *Heap[T]) NextDeadline() (int64, bool) {
	if len(h.items) == 0 {
		return 0, false
	}
	return h.items[0].deadline, true
}

// PopExpired removes every entry whose deadline is at or before now and appends them
// to dst in firing order (deadline, then insertion order); it returns the extended
// slice. Popped entries are no longer queued and may be pushed again, even while the
// caller walks dst. It runs in O(k log n) for k expired entries (sorting instead of
// popping one by one when now is past every deadline) and allocates only if
// dst must grow; pass dst[:0] of the previous call to reuse it.
func (h *Heap[T]) PopExpired(now int64, dst []*Entry[T]) []*Entry[T] {
	if n := len(h.items); n > bulkMin && now >= h.latest {
		// Everything is due. Sorting is O(n log n) like n pops, but its loads are
		// independent of each other, while each pop waits on one cache miss per level.
		start := len(dst)
		dst = append(dst, h.items...)
		slices.SortFunc(dst[start:], compare[T])
		for _, e := range dst[start:] {
			e.pos = 0
		}
		clear(h.items)
		h.items = h.items[:0]
		return dst
	}
	for len(h.items) > 0 && h.items[0].deadline <= now {
		dst = append(dst, h.items[0])
		h.popRoot()
	}
	return dst
}

// popRoot removes the root. It uses Floyd's bottom-up deletion: the hole left at the
// root descends to a leaf along the path of smallest children, comparing children only,
// and the last entry is then sifted up from there. The last entry nearly always belongs
// near the bottom, so this saves one comparison per level over a plain sift-down.
func (h *Heap[T]) popRoot() {
	items := h.items
	last := len(items) - 1
	items[0].pos = 0
	moved := items[last]
	items[last] = nil
	items = items[:last]
	h.items = items
	if last == 0 {
		return
	}
	i, n := 0, last
	for {
		c := i*arity + 1
		if c >= n {
			break
		}
		m, me := c, items[c]
		end := min(c+arity, n)
		for j := c + 1; j < end; j++ {
			if je := items[j]; before(je, me) {
				m, me = j, je
			}
		}
		items[i] = me
		me.pos = int32(i + 1)
		i = m
	}
	h.siftUp(i, moved)
}

// Clear removes all entries, marking each one not queued, and keeps the backing
// slice for reuse. Sequence numbers keep growing.
func (h *Heap[T]) Clear() {
	for i, e := range h.items {
		e.pos = 0
		h.items[i] = nil // let the GC have the entries
	}
	h.items = h.items[:0]
}

// AddDuration returns now+d, saturating at math.MaxInt64 and math.MinInt64 instead of
// wrapping, so a huge duration gives a deadline that never comes rather than one in
// the past. A negative d gives a deadline in the past (already expired at now).
func AddDuration(now int64, d time.Duration) int64 {
	s := now + int64(d)
	// Signed overflow happened iff both operands have the same sign and the sum's
	// sign differs.
	if (now >= 0) == (d >= 0) && (s >= 0) != (now >= 0) {
		if now >= 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return s
}

// removeAt removes the entry at index i and restores the heap property.
func (h *Heap[T]) removeAt(i int) {
	items := h.items
	last := len(items) - 1
	e := items[i]
	e.pos = 0
	moved := items[last]
	items[last] = nil // drop the reference held by the spare capacity
	h.items = items[:last]
	if i == last {
		return
	}
	h.fix(i, moved)
}

// fix places e, whose key may have changed, into the hole at index i.
func (h *Heap[T]) fix(i int, e *Entry[T]) {
	if i > 0 && before(e, h.items[(i-1)/arity]) {
		h.siftUp(i, e)
		return
	}
	h.siftDown(i, e)
}

// siftUp moves e from the hole at index i towards the root until its parent fires
// before it, then stores it. The hole technique writes each moved entry once instead
// of swapping.
func (h *Heap[T]) siftUp(i int, e *Entry[T]) {
	items := h.items
	for i > 0 {
		p := (i - 1) / arity
		pe := items[p]
		if !before(e, pe) {
			break
		}
		items[i] = pe
		pe.pos = int32(i + 1)
		i = p
	}
	items[i] = e
	e.pos = int32(i + 1)
}

// siftDown moves e from the hole at index i towards the leaves until no child fires
// before it, then stores it.
func (h *Heap[T]) siftDown(i int, e *Entry[T]) {
	items := h.items
	n := len(items)
	for {
		c := i*arity + 1
		if c >= n {
			break
		}
		// Find the child that fires first among up to four.
		m, me := c, items[c]
		end := min(c+arity, n)
		for j := c + 1; j < end; j++ {
			if je := items[j]; before(je, me) {
				m, me = j, je
			}
		}
		if !before(me, e) {
			break
		}
		items[i] = me
		me.pos = int32(i + 1)
		i = m
	}
	items[i] = e
	e.pos = int32(i + 1)
}
