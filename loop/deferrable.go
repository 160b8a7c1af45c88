package loop

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// ErrDeferrableTimeout is the error a [Deferrable] fails with when its
// [Deferrable.Timeout] fires and no error was given.
var ErrDeferrableTimeout = errors.New("loop: deferrable timed out")

// ErrNoLoop is returned by [Deferrable.Timeout] on a Deferrable that was
// neither made by [NewDeferrable] nor bound with [Deferrable.Init].
var ErrNoLoop = errors.New("loop: deferrable has no loop")

// DeferredStatus is the state of a [Deferrable] (EventMachine's
// deferred_status).
type DeferredStatus uint8

const (
	// DeferredPending means neither Succeed nor Fail has been called
	// (EventMachine's :unknown).
	DeferredPending DeferredStatus = iota
	// DeferredSucceeded means Succeed was called last.
	DeferredSucceeded
	// DeferredFailed means Fail was called last (or the timeout fired).
	DeferredFailed
)

// String returns "pending", "succeeded" or "failed".
func (s DeferredStatus) String() string {
	switch s {
	case DeferredPending:
		return "pending"
	case DeferredSucceeded:
		return "succeeded"
	case DeferredFailed:
		return "failed"
	}
	return fmt.Sprintf("DeferredStatus(%d)", uint8(s))
}

// Deferrable is EventMachine's Deferrable: a value of type T that will
// succeed or fail later, with callbacks for either outcome. Embed it in a
// struct (EventMachine's "include EM::Deferrable") or make a standalone one
// with [NewDeferrable] (EventMachine's DefaultDeferrable).
//
//	type Request struct {
//		loop.Deferrable[*Response]
//		...
//	}
//	r := &Request{}
//	r.Init(l) // for Timeout, and to report callback panics one by one
//	r.Callback(func(resp *Response) { ... }).Errback(func(err error) { ... })
//
// Rules, as in EventMachine (checked against ruby-eventmachine 1.3):
//
//   - Callbacks (and errbacks) run in the order they were added, each with
//     the value (or error) stored at the moment it runs: a callback that
//     calls Succeed or Fail again changes what the remaining ones receive.
//     A Succeed from inside a callback runs the remaining callbacks at once,
//     inside that Succeed; a Fail from inside a callback drops them and runs
//     the errbacks instead.
//   - Succeed runs and forgets the callbacks and drops the errbacks; Fail
//     runs and forgets the errbacks and drops the callbacks.
//   - A callback added once d has succeeded runs at once, synchronously,
//     with the stored value (an errback once d has failed likewise, with the
//     stored error); one of the other kind is dropped. This holds from inside
//     a running callback too: the new callback runs before the remaining ones.
//   - Completing again is allowed, as in EventMachine: a second Succeed (or a
//     Fail after Succeed) replaces the status and value; callbacks that
//     already ran do not run again (there are none left to run), and
//     callbacks added afterwards see the new status and value.
//   - Succeed and Fail cancel a pending Timeout.
//   - A panic in a callback is handled like a panic in any loop callback
//     (Options.ErrorHandler, or Run stops and returns it) and the remaining
//     callbacks still run. With a loop bound (NewDeferrable or Init), each
//     panic is reported on its own and Succeed returns normally; without one,
//     the remaining callbacks run and then the panic goes on to Succeed's
//     caller (when that is a loop callback, to the ErrorHandler).
//
// The zero value is a pending Deferrable, usable except for Timeout, which
// needs a loop: bind one with Init. A Deferrable must not be copied after
// first use. Call its methods only from the loop goroutine.
//
// Not carried over from EventMachine: cancel_callback/cancel_errback (Go
// functions cannot be compared) and set_deferred_status (use Succeed or
// Fail).
type Deferrable[T any] struct {
	l         *Loop
	status    DeferredStatus
	value     T
	err       error
	callbacks []func(T)
	errbacks  []func(error)
	timer     *Timer
}

// NewDeferrable returns a pending Deferrable bound to l (EventMachine's
// DefaultDeferrable.new). Call only from the loop goroutine, or before Run
// from the goroutine that owns l.
func NewDeferrable[T any](l *Loop) *Deferrable[T] {
	return &Deferrable[T]{l: l}
}

// Init binds d to l and returns d: Timeout needs the loop, and with one bound
// a panic in a callback is reported to the loop's ErrorHandler on its own
// while Succeed or Fail carries on with the next callback. It is meant for
// Deferrables embedded in a struct; NewDeferrable does it already. Init does
// not reset the status or the callbacks.
func (d *Deferrable[T]) Init(l *Loop) *Deferrable[T] {
	d.l = l
	return d
}

// Callback adds fn to run when d succeeds and returns d, for chaining. If d
// has already succeeded, fn runs at once with the stored value; if it has
// failed, fn is dropped. A nil fn is ignored.
func (d *Deferrable[T]) Callback(fn func(T)) *Deferrable[T] {
	if fn == nil {
		return d
	}
	switch d.status {
	case DeferredSucceeded:
		fn(d.value)
	case DeferredPending:
		d.callbacks = append(d.callbacks, fn)
	}
	return d
}

// Errback adds fn to run when d fails and returns d, for chaining. If d has
// already failed, fn runs at once with the stored error; if it has
// succeeded, fn is dropped. A nil fn is ignored.
func (d *Deferrable[T]) Errback(fn func(error)) *Deferrable[T] {
	if fn == nil {
		return d
	}
	switch d.status {
	case DeferredFailed:
		fn(d.err)
	case DeferredPending:
		d.errbacks = append(d.errbacks, fn)
	}
	return d
}

// Succeed sets d's status to succeeded with value v (EventMachine's succeed
// and set_deferred_success): it cancels the timeout, runs the callbacks in
// the order they were added and drops the errbacks. See [Deferrable] for
// completing twice and for callbacks that complete d again.
func (d *Deferrable[T]) Succeed(v T) {
	d.CancelTimeout()
	d.status, d.value, d.err = DeferredSucceeded, v, nil
	d.dispatch()
}

// Fail sets d's status to failed with err (EventMachine's fail and
// set_deferred_failure): it cancels the timeout, runs the errbacks in the
// order they were added and drops the callbacks. err may be nil.
func (d *Deferrable[T]) Fail(err error) {
	d.CancelTimeout()
	var zero T
	d.status, d.value, d.err = DeferredFailed, zero, err
	d.dispatch()
}

// Status reports d's status.
func (d *Deferrable[T]) Status() DeferredStatus { return d.status }

// Value returns the value of the last Succeed (the zero value otherwise).
func (d *Deferrable[T]) Value() T { return d.value }

// Err returns the error of the last Fail (nil otherwise).
func (d *Deferrable[T]) Err() error { return d.err }

// Timeout makes d fail with err once after has elapsed on the loop's clock,
// unless it completes first (Succeed and Fail cancel the timer). A nil err
// means [ErrDeferrableTimeout]. It replaces any earlier timeout.
//
// Unlike EventMachine, whose timer fails even a Deferrable that has already
// succeeded, a Timeout on a completed Deferrable does nothing: a timeout
// bounds the wait for a pending outcome.
//
// It returns ErrNoLoop when no loop is bound (see Init) and the errors of
// [Loop.AddTimer]; d is unchanged then.
func (d *Deferrable[T]) Timeout(after time.Duration, err error) error {
	if d.l == nil {
		return ErrNoLoop
	}
	d.CancelTimeout()
	if d.status != DeferredPending {
		return nil
	}
	if err == nil {
		err = ErrDeferrableTimeout
	}
	t, aerr := d.l.AddTimer(after, func() {
		d.timer = nil
		d.Fail(err)
	})
	if aerr != nil {
		return aerr
	}
	d.timer = t
	return nil
}

// CancelTimeout cancels the pending timeout, if any, and reports whether
// there was one.
func (d *Deferrable[T]) CancelTimeout() bool {
	t := d.timer
	if t == nil {
		return false
	}
	d.timer = nil
	return t.Cancel()
}

// dispatch runs the callbacks (or errbacks) of the current status, first
// in first out, and drops the other kind. Each call reads the stored value
// afresh, and a nested Succeed or Fail consumes from the same lists, so a
// callback that completes d again is handled exactly as EventMachine's
// set_deferred_status handles it.
func (d *Deferrable[T]) dispatch() {
	if d.l != nil {
		d.runCallbacks()
		return
	}
	// No loop to report a panic to: let it go on to our caller, but first
	// run the callbacks that are left (deferred calls run while the panic
	// unwinds).
	finished := false
	defer func() {
		if !finished {
			d.dispatch()
		}
	}()
	d.runCallbacks()
	finished = true
}

// runCallbacks is dispatch's loop.
func (d *Deferrable[T]) runCallbacks() {
	switch d.status {
	case DeferredSucceeded:
		for len(d.callbacks) > 0 {
			fn := d.callbacks[0]
			d.callbacks[0] = nil
			d.callbacks = d.callbacks[1:]
			callWith(d.l, fn, d.value)
		}
		d.callbacks = nil
		d.errbacks = nil
	case DeferredFailed:
		for len(d.errbacks) > 0 {
			fn := d.errbacks[0]
			d.errbacks[0] = nil
			d.errbacks = d.errbacks[1:]
			callWith(d.l, fn, d.err)
		}
		d.errbacks = nil
		d.callbacks = nil
	}
}

// callWith calls fn(v). With a loop, a panic in fn is recovered and handled
// like a panic in any loop callback (Options.ErrorHandler, or the loop
// stops and Run returns it); with l nil it propagates.
func callWith[T any](l *Loop, fn func(T), v T) {
	if l != nil {
		defer l.recoverCallback()
	}
	fn(v)
}

// recoverCallback is deferred by callWith: it turns a panic into a
// *PanicError for handlePanic, as Loop.call does.
func (l *Loop) recoverCallback() {
	if v := recover(); v != nil {
		l.handlePanic(&PanicError{Value: v, Stack: debug.Stack()})
	}
}
