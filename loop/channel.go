package loop

import (
	"slices"
	"sync"
	"sync/atomic"
)

// SubscriberID identifies a subscription to a [Channel]. IDs start at 1;
// 0 is never a subscription.
type SubscriberID uint64

// Channel is EventMachine's EM::Channel: a publish/subscribe fan-out. Every
// item pushed is delivered to every subscriber, on the loop goroutine.
//
// Delivery order is EventMachine's: item by item, and for each item every
// subscriber in subscription order. Each item goes to the subscribers
// present when its delivery starts, so a subscriber added during a
// delivery gets the next items; a subscriber removed during a delivery
// gets nothing more, not even the item being delivered (EventMachine still
// calls it for that item: it iterates over a copy of its subscriber list;
// here Unsubscribe on the loop goroutine means no further calls, which a
// one-shot Pop relies on).
//
// All methods are safe for concurrent use. Called from another goroutine,
// Unsubscribe cannot stop a call that has already begun. Make a Channel with
// [NewChannel].
//
// Where it differs from EventMachine: EM's push on the reactor thread
// delivers synchronously. Push here always delivers in a later tick phase
// (Go cannot tell the loop goroutine from others), so it never runs
// subscribers inside the caller.
type Channel[T any] struct {
	l       *Loop
	mu      sync.Mutex
	lastID  SubscriberID
	subs    []*subscriber[T]
	scratch []*subscriber[T] // delivery snapshot, loop goroutine only
}

// subscriber is one subscription.
type subscriber[T any] struct {
	id      SubscriberID
	fn      func(T)
	removed atomic.Bool
}

// NewChannel returns a channel without subscribers whose deliveries run on
// l.
func NewChannel[T any](l *Loop) *Channel[T] {
	return &Channel[T]{l: l}
}

// Subscribe adds fn as a subscriber and returns its ID (EventMachine's
// subscribe). fn runs on the loop goroutine for every item pushed after
// this call. A nil fn is ignored and gets ID 0. Safe for concurrent use.
func (c *Channel[T]) Subscribe(fn func(T)) SubscriberID {
	if fn == nil {
		return 0
	}
	s := &subscriber[T]{fn: fn}
	c.mu.Lock()
	c.lastID++
	s.id = c.lastID
	c.subs = append(c.subs, s)
	c.mu.Unlock()
	return s.id
}

// Unsubscribe removes the subscription id (EventMachine's unsubscribe) and
// reports whether it existed. On the loop goroutine, including from inside
// a subscriber during a delivery, the subscriber is never called again.
// Safe for concurrent use.
func (c *Channel[T]) Unsubscribe(id SubscriberID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.subs, func(s *subscriber[T]) bool { return s.id == id })
	if i < 0 {
		return false
	}
	c.subs[i].removed.Store(true)
	c.subs = slices.Delete(c.subs, i, i+1)
	return true
}

// Pop subscribes fn for one item only (EventMachine's pop): fn gets the
// next item pushed and is then unsubscribed. It returns the subscription's
// ID, which Unsubscribe accepts until the item arrives. A nil fn is ignored
// and gets ID 0. Safe for concurrent use.
func (c *Channel[T]) Pop(fn func(T)) SubscriberID {
	if fn == nil {
		return 0
	}
	var id SubscriberID
	c.mu.Lock() // id must be set before the first delivery can read it
	defer c.mu.Unlock()
	s := &subscriber[T]{fn: func(v T) {
		c.Unsubscribe(id)
		fn(v)
	}}
	c.lastID++
	id = c.lastID
	s.id = id
	c.subs = append(c.subs, s)
	return id
}

// Push delivers items to every subscriber, in a later tick phase, in the
// order described on [Channel] (EventMachine's push and <<). The items are
// copied, so the caller may reuse its slice. A panic in a subscriber is
// handled like a panic in any callback and the delivery goes on. Safe for
// concurrent use; from another goroutine it wakes the loop.
func (c *Channel[T]) Push(items ...T) {
	if len(items) == 0 {
		return
	}
	items = slices.Clone(items)
	_ = c.l.NextTick(func() { c.deliver(items) }) // fails only for a nil function
}

// NumSubscribers returns the number of subscriptions, one-shot Pops
// included (EventMachine's num_subscribers). Safe for concurrent use.
func (c *Channel[T]) NumSubscribers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs)
}

// deliver runs on the loop goroutine: for each item, every subscriber
// present when that item's turn comes and not removed meanwhile. Deliveries
// never nest (Push always defers to a tick), so scratch can be reused.
func (c *Channel[T]) deliver(items []T) {
	for _, v := range items {
		c.mu.Lock()
		snap := append(c.scratch[:0], c.subs...)
		c.mu.Unlock()
		for _, s := range snap {
			if !s.removed.Load() {
				callWith(c.l, s.fn, v)
			}
		}
		clear(snap)
		c.scratch = snap[:0]
	}
}
