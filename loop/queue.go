package loop

import "sync"

// Queue is EventMachine's EM::Queue: a FIFO of items that any goroutine can
// push to and that the loop pops from with callbacks. A Pop on an empty
// queue waits; waiting callbacks are served in the order they called Pop,
// one item each.
//
// Push, Len, Empty and NumWaiting are safe for concurrent use. Pop is for
// the loop goroutine. Make a Queue with [NewQueue].
//
// Where it differs from EventMachine: EM's push runs through EM.schedule, so
// on the reactor thread it hands items to waiting callbacks synchronously
// and from other threads it appends them only on the next tick. Go cannot
// tell which goroutine calls, so Push always appends at once (Len counts the
// items immediately) and always serves waiting callbacks in the next tick
// phase, never inside Push. Pop behaves as EM's on the reactor thread,
// except that a Pop from inside a Pop callback waits for that callback to
// return instead of recursing.
type Queue[T any] struct {
	l  *Loop
	mu sync.Mutex
	// items and waiters are never both non-empty for longer than it takes
	// a scheduled drain to run.
	items    fifo[T]
	waiters  fifo[func(T)]
	draining bool // a drain is queued with NextTick
	serving  bool // serveLocked is running (on the loop goroutine)
	drainFn  func()
}

// NewQueue returns an empty queue whose callbacks run on l.
func NewQueue[T any](l *Loop) *Queue[T] {
	q := &Queue[T]{l: l}
	q.drainFn = q.drain
	return q
}

// Push appends items to the queue (EventMachine's push and <<). If
// callbacks are waiting, they get the items, one each and in order, in the
// next tick phase. Safe for concurrent use; from another goroutine it wakes
// the loop when a callback is waiting.
func (q *Queue[T]) Push(items ...T) {
	if len(items) == 0 {
		return
	}
	q.mu.Lock()
	q.items.push(items...)
	schedule := q.needDrainLocked()
	q.mu.Unlock()
	if schedule {
		_ = q.l.NextTick(q.drainFn) // fails only for a nil function
	}
}

// Pop takes the oldest item and calls fn with it (EventMachine's pop). If
// an item is available and no callback is waiting before this one, fn runs
// at once, synchronously; otherwise fn waits for a Push and runs in a later
// tick phase. Each Pop takes one item. A nil fn is ignored.
//
// A Pop from inside a Pop callback does not recurse: the callback is queued
// and served, in order, once the running one returns, so a consumer that
// re-arms itself with Pop drains any number of items in constant stack
// (EventMachine recurses). A panic in fn is handled like a panic in any
// callback. Call only from the loop goroutine.
func (q *Queue[T]) Pop(fn func(T)) {
	if fn == nil {
		return
	}
	q.mu.Lock()
	if q.serving || q.waiters.len() > 0 || q.items.len() == 0 {
		// Wait: behind the others, or for the running serve loop, or for
		// a Push.
		q.waiters.push(fn)
		schedule := !q.serving && q.needDrainLocked()
		q.mu.Unlock()
		if schedule {
			_ = q.l.NextTick(q.drainFn) // fails only for a nil function
		}
		return
	}
	q.waiters.push(fn)
	q.serveLocked()
	q.mu.Unlock()
}

// Len returns the number of queued items (EventMachine's size). Safe for
// concurrent use.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.items.len()
}

// Empty reports whether no item is queued (EventMachine's empty?). Safe for
// concurrent use.
func (q *Queue[T]) Empty() bool { return q.Len() == 0 }

// NumWaiting returns the number of Pop callbacks waiting for an item
// (EventMachine's num_waiting). Safe for concurrent use.
func (q *Queue[T]) NumWaiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waiters.len()
}

// needDrainLocked marks a drain as queued and reports whether the caller
// must queue it: when items and waiters are both present and none is queued.
func (q *Queue[T]) needDrainLocked() bool {
	if q.draining || q.items.len() == 0 || q.waiters.len() == 0 {
		return false
	}
	q.draining = true
	return true
}

// drain runs on the loop goroutine, in the tick phase: it hands items to
// the waiting callbacks.
func (q *Queue[T]) drain() {
	q.mu.Lock()
	q.draining = false
	if !q.serving {
		q.serveLocked()
	}
	q.mu.Unlock()
}

// serveLocked hands items to waiting callbacks, first come first served,
// until either runs out. q.mu is held on entry and exit but released around
// each callback, which may Pop again (queued behind the others and served
// by this loop) or Push (served by this loop too). A panic in a callback is
// handled like any callback panic and the loop goes on.
func (q *Queue[T]) serveLocked() {
	q.serving = true
	for q.items.len() > 0 && q.waiters.len() > 0 {
		fn := q.waiters.pop()
		v := q.items.pop()
		q.mu.Unlock()
		callWith(q.l, fn, v)
		q.mu.Lock()
	}
	q.serving = false
}
