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
// int32 to keep [Entry] at 16 bytes.
const MaxLen = math.MaxInt32 - 1

// arity is the number of children per node. Keys live in the heap's own slots, so a
// level costs the loads of one sibling group, all independent of each other; eight
// 24-byte slots are exactly three cache lines, and slotOffset aligns every group to
// them. Measured on the 1M push+pop and push+remove benchmarks, 8 beat 2 and 4.
const arity = 8

// slotOffset shifts logical index i to physical index i+slotOffset so that every
// sibling group (logical arity*i+1 ... arity*i+arity) starts at a physical multiple of
// arity: a group never straddles two pages, and with 8 children it fills three whole
// cache lines.
const slotOffset = arity - 1

// Pages: the slots live in fixed-size pages reached through a table, not in one slice
// that append reallocates. Growing a contiguous slice of 24-byte slots by 1.25x copies
// and discards about four times its final size (~100 bytes per timer at 1M), more than
// the loop's whole per-timer budget; pages are never copied, so a heap costs its live
// 24 bytes per entry plus one table word per page. Page 0 alone starts small and grows
// by doubling, so a heap with a few entries stays small.
const (
	pageShift = 12
	pageSize  = 1 << pageShift // slots, 96 KiB per page
	pageMask  = pageSize - 1
)

// slot is one heap position: the entry's key, copied in so that comparisons never
// dereference an entry, and the entry, whose pos the heap updates on every move.
type slot[T any] struct {
	deadline int64  // nanoseconds on the caller's monotonic clock
	seq      uint64 // insertion order, breaks ties between equal deadlines
	e        *Entry[T]
}

// before reports whether a fires before b: earlier deadline, then earlier insertion.
func (a *slot[T]) before(b *slot[T]) bool {
	return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq)
}

// compareSlots orders slots like before, for slices.SortFunc. Sequence numbers are
// unique within a heap, so it never returns 0 for two queued slots.
func compareSlots[T any](a, b slot[T]) int {
	if a.deadline != b.deadline {
		if a.deadline < b.deadline {
			return -1
		}
		return 1
	}
	if a.seq < b.seq {
		return -1
	}
	if a.seq > b.seq {
		return 1
	}
	return 0
}

// Entry is one timer as the heap sees it: the owner's Value and the entry's position
// in the heap. Its deadline and sequence number live in the heap (see [Heap.Deadline]),
// so that comparisons read the heap's slots only. Embed it (or point to it) from the
// object that owns the timer; Value lets the owner find its way back from an entry
// returned by [Heap.PopExpired] or [Heap.Peek] without unsafe.
//
// The zero value is an entry that is not queued. An Entry must not be copied while it
// is queued, and belongs to at most one [Heap] at a time.
//
// With a pointer-sized T an Entry is 16 bytes.
type Entry[T any] struct {
	// Value is the owner's payload (typically a pointer back to the timer). The heap
	// never reads or writes it.
	Value T

	pos int32 // 1 + logical index in the heap; 0 when not queued
}

// Queued reports whether e is currently in a heap.
func (e *Entry[T]) Queued() bool { return e.pos != 0 }

// bulkMin is the heap size above which PopExpired sorts when every entry is due. It
// is a variable only so that FuzzHeap can drive the sorting path with small heaps.
var bulkMin = 64

// Heap is an 8-ary min-heap of timer entries ordered by (deadline, insertion sequence).
// Push, Remove, Reset and popping one entry are O(log n); Peek, NextDeadline, Deadline
// and Len are O(1). None of them allocates, except when Push needs a new page of slots
// (24 bytes per entry, allocated 4096 at a time once the heap outgrows its first page;
// pages are never copied). Pages are kept for reuse when entries leave.
//
// The zero value is an empty heap ready to use. A Heap is not safe for concurrent use:
// the loop calls it from its own goroutine only. It must not be copied after first use.
type Heap[T any] struct {
	// pages[p] holds physical slots p*pageSize ... p*pageSize+len(pages[p])-1; logical
	// index i is physical i+slotOffset. Every page but page 0 has length pageSize;
	// non-nil pages beyond len(pages) are empty spares kept for reuse.
	pages [][]slot[T]
	n     int
	seq   uint64 // sequence number of the next insertion
	// latest bounds every queued deadline from above (the largest pushed since the
	// heap was last empty); when now reaches it, PopExpired sorts instead of popping.
	latest int64
	// merge is PopExpired's scratch for merging sorted pages, one element per page
	// ever allocated, grown by Push so that PopExpired never allocates.
	merge []mergeHead
}

// New returns an empty heap. It is equivalent to new(Heap[T]).
func New[T any]() *Heap[T] { return new(Heap[T]) }

// Len returns the number of queued entries.
func (h *Heap[T]) Len() int { return h.n }

// at returns the slot at logical index i.
func (h *Heap[T]) at(i int) *slot[T] {
	p := i + slotOffset
	return &h.pages[p>>pageShift][p&pageMask]
}

// set stores s at logical index i and records the position in its entry.
func (h *Heap[T]) set(i int, s slot[T]) {
	*h.at(i) = s
	s.e.pos = int32(i + 1)
}

// lookup returns the logical index of e if it is queued in h.
func (h *Heap[T]) lookup(e *Entry[T]) (int, bool) {
	i := int(e.pos) - 1
	if i < 0 || i >= h.n || h.at(i).e != e {
		return 0, false
	}
	return i, true
}

// grow makes room for one more slot at logical index h.n.
func (h *Heap[T]) grow() {
	p := h.n + slotOffset
	pi := p >> pageShift
	switch {
	case pi < len(h.pages) && (p&pageMask) < len(h.pages[pi]):
		return
	case pi == 0 && len(h.pages) == 1: // page 0 is full but small: double it
		old := h.pages[0]
		h.pages[0] = make([]slot[T], min(2*len(old), pageSize))
		copy(h.pages[0], old)
		return
	case len(h.pages) < cap(h.pages) && h.pages[:pi+1][pi] != nil: // reuse a spare page
		h.pages = h.pages[:pi+1]
		return
	}
	size := pageSize
	if pi == 0 {
		size = 2 * arity
	}
	h.pages = append(h.pages, make([]slot[T], size))
	h.merge = append(h.merge, mergeHead{})
}

// Push queues e to fire at deadline and assigns it the next sequence number, so it
// fires after every entry already queued with the same deadline. It runs in O(log n).
//
// Push returns [ErrQueued] if e is already queued, and [ErrFull] if the heap holds
// [MaxLen] entries; e is left unchanged in both cases.
func (h *Heap[T]) Push(e *Entry[T], deadline int64) error {
	if e.pos != 0 {
		return ErrQueued
	}
	n := h.n
	if n >= MaxLen {
		return ErrFull
	}
	if n == 0 || deadline > h.latest {
		h.latest = deadline
	}
	h.grow()
	h.n++
	h.siftUp(n, slot[T]{deadline: deadline, seq: h.seq, e: e})
	h.seq++
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
	i, ok := h.lookup(e)
	if !ok {
		return ErrQueued
	}
	h.latest = max(h.latest, deadline)
	h.fix(i, slot[T]{deadline: deadline, seq: h.seq, e: e})
	h.seq++
	return nil
}

// Remove takes e out of the heap in O(log n) and reports whether it was queued here.
// Removing an entry that is not queued (never pushed, already popped or removed, or
// queued in another heap) does nothing and returns false, so cancelling a timer that
// has already fired is harmless.
func (h *Heap[T]) Remove(e *Entry[T]) bool {
	i, ok := h.lookup(e)
	if !ok {
		return false
	}
	e.pos = 0
	moved := h.dropLast()
	if i != h.n {
		h.fix(i, moved)
	}
	return true
}

// Deadline returns the deadline e is queued with in h, and false if e is not queued
// in h (never pushed, already popped or removed, or queued in another heap).
func (h *Heap[T]) Deadline(e *Entry[T]) (int64, bool) {
	i, ok := h.lookup(e)
	if !ok {
		return 0, false
	}
	return h.at(i).deadline, true
}

// Peek returns the entry that fires first without removing it, or false if the heap
// is empty.
func (h *Heap[T]) Peek() (*Entry[T], bool) {
	if h.n == 0 {
		return nil, false
	}
	return h.at(0).e, true
}

// NextDeadline returns the earliest deadline in the heap, or false if the heap is
// empty. The loop waits until then when it has nothing else to do.
func (h *Heap[T]) NextDeadline() (int64, bool) {
	if h.n == 0 {
		return 0, false
	}
	return h.at(0).deadline, true
}

// PopExpired removes every entry whose deadline is at or before now and appends them
// to dst in firing order (deadline, then insertion order); it returns the extended
// slice. Popped entries are no longer queued and may be pushed again, even while the
// caller walks dst. It runs in O(k log n) for k expired entries (sorting instead of
// popping one by one when now is past every deadline) and allocates only if
// dst must grow; pass dst[:0] of the previous call to reuse it.
func (h *Heap[T]) PopExpired(now int64, dst []*Entry[T]) []*Entry[T] {
	if h.n > bulkMin && now >= h.latest {
		return h.drainSorted(dst)
	}
	for h.n > 0 {
		root := h.at(0)
		if root.deadline > now {
			break
		}
		dst = append(dst, root.e)
		h.popRoot()
	}
	return dst
}

// drainSorted empties the heap into dst in firing order. Sorting is O(n log n) like n
// pops, but it walks contiguous slots, while each pop waits on a cache miss per level
// near the leaves. Each page is sorted in place, then the pages are merged through a
// small binary heap that caches each page's head key (one element per page, so it
// stays in L1 and the merge reads each slot once, in order).
func (h *Heap[T]) drainSorted(dst []*Entry[T]) []*Entry[T] {
	end := h.n + slotOffset // physical end
	np := len(h.pages)
	start := len(dst)
	dst = slices.Grow(dst, h.n)[:start+h.n]
	out := dst[start:]
	h.n = 0
	hs := h.merge[:np]
	for p := range np {
		lo, hi := 0, min(pageSize, end-p*pageSize)
		if p == 0 {
			lo = slotOffset
		}
		pg := h.pages[p][lo:hi]
		slices.SortFunc(pg, compareSlots[T])
		hs[p] = mergeHead{deadline: pg[0].deadline, seq: pg[0].seq, page: int32(p), cur: int32(lo), end: int32(hi)}
	}
	if np == 1 {
		pg := h.pages[0][slotOffset:end]
		for i := range pg {
			e := pg[i].e
			e.pos = 0
			out[i] = e
		}
		clear(pg)
		return dst
	}
	for k := np/2 - 1; k >= 0; k-- {
		siftMerge(hs, k)
	}
	for i := range out {
		top := &hs[0]
		pg := h.pages[top.page]
		e := pg[top.cur].e
		e.pos = 0
		out[i] = e
		if top.cur++; top.cur < top.end {
			next := &pg[top.cur]
			top.deadline, top.seq = next.deadline, next.seq
		} else {
			hs[0] = hs[len(hs)-1]
			hs = hs[:len(hs)-1]
			if len(hs) == 0 {
				break
			}
		}
		siftMerge(hs, 0)
	}
	for p := range np {
		clear(h.pages[p][:min(pageSize, end-p*pageSize)]) // let the GC have the entries
	}
	h.pages = h.pages[:1]
	return dst
}

// mergeHead is drainSorted's cursor into one sorted page, keyed by the page's next
// slot.
type mergeHead struct {
	deadline int64
	seq      uint64
	page     int32
	cur, end int32
}

// siftMerge restores the binary min-heap order of hs below index k.
func siftMerge(hs []mergeHead, k int) {
	n := len(hs)
	x := hs[k]
	for {
		c := 2*k + 1
		if c >= n {
			break
		}
		if c+1 < n && (hs[c+1].deadline < hs[c].deadline ||
			hs[c+1].deadline == hs[c].deadline && hs[c+1].seq < hs[c].seq) {
			c++
		}
		if hs[c].deadline > x.deadline || hs[c].deadline == x.deadline && hs[c].seq > x.seq {
			break
		}
		hs[k] = hs[c]
		k = c
	}
	hs[k] = x
}

// dropLast clears the last slot, shrinks the heap by one and returns the slot.
func (h *Heap[T]) dropLast() slot[T] {
	h.n--
	last := h.at(h.n)
	s := *last
	*last = slot[T]{} // drop the reference held by the spare slot
	if p := h.n + slotOffset; p&pageMask == 0 && p > 0 {
		h.pages = h.pages[:p>>pageShift] // keep the emptied page as a spare
	}
	return s
}

// popRoot removes the root. It uses Floyd's bottom-up deletion: the hole left at the
// root descends to a leaf along the path of smallest children, comparing children only,
// and the last entry is then sifted up from there. The last entry nearly always belongs
// near the bottom, so this saves one comparison per level over a plain sift-down.
func (h *Heap[T]) popRoot() {
	h.at(0).e.pos = 0
	moved := h.dropLast()
	n := h.n
	if n == 0 {
		return
	}
	i := 0
	for {
		c := i*arity + 1
		if c >= n {
			break
		}
		m := h.minChild(c, min(c+arity, n))
		h.set(i, *h.at(m))
		i = m
	}
	h.siftUp(i, moved)
}

// minChild returns the logical index of the first-firing slot among c ... end-1, a
// sibling group, which slotOffset keeps inside one page.
func (h *Heap[T]) minChild(c, end int) int {
	p := c + slotOffset
	pg := h.pages[p>>pageShift]
	base := p & pageMask
	grp := pg[base : base+(end-c)]
	m := 0
	for j := 1; j < len(grp); j++ {
		if grp[j].before(&grp[m]) {
			m = j
		}
	}
	return c + m
}

// Clear removes all entries, marking each one not queued, and keeps the pages for
// reuse. Sequence numbers keep growing.
func (h *Heap[T]) Clear() {
	for i := range h.n {
		s := h.at(i)
		s.e.pos = 0
		*s = slot[T]{} // let the GC have the entries
	}
	h.n = 0
	if len(h.pages) > 1 {
		h.pages = h.pages[:1]
	}
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

// fix places s, whose key may differ from the slot it replaces, into the hole at
// logical index i.
func (h *Heap[T]) fix(i int, s slot[T]) {
	if i > 0 && s.before(h.at((i-1)/arity)) {
		h.siftUp(i, s)
		return
	}
	h.siftDown(i, s)
}

// siftUp moves s from the hole at logical index i towards the root until its parent
// fires before it, then stores it. The hole technique writes each moved slot once
// instead of swapping.
func (h *Heap[T]) siftUp(i int, s slot[T]) {
	for i > 0 {
		p := (i - 1) / arity
		ps := h.at(p)
		if !s.before(ps) {
			break
		}
		h.set(i, *ps)
		i = p
	}
	h.set(i, s)
}

// siftDown moves s from the hole at logical index i towards the leaves until no child
// fires before it, then stores it.
func (h *Heap[T]) siftDown(i int, s slot[T]) {
	n := h.n
	for {
		c := i*arity + 1
		if c >= n {
			break
		}
		m := h.minChild(c, min(c+arity, n))
		ms := h.at(m)
		if !ms.before(&s) {
			break
		}
		h.set(i, *ms)
		i = m
	}
	h.set(i, s)
}
