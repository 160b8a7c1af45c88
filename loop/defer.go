package loop

import (
	"fmt"
	"runtime/debug"
)

// Defer runs op on one of the loop's pool workers and then cb(result) on the
// loop goroutine, in the tick phase (EventMachine's EM.defer(op, callback)).
// cb may be nil. If op panics, cb is not called and the panic is handled like
// a panic in any callback: reported to Options.ErrorHandler as a *PanicError,
// or, without a handler, it stops the loop and Run returns it.
//
// It returns ErrNilFunc for a nil op, ErrLoopStopped when the loop is not
// running or is stopping (op then never runs), and the pool's error when its
// queue is full. Once Defer has returned nil, cb runs exactly once unless the
// loop stops first: Stop waits for operations already running, discards
// their callbacks, and drops operations that have not started.
// Call only from the loop goroutine.
func Defer[T any](l *Loop, op func() T, cb func(T)) error {
	if op == nil {
		return ErrNilFunc
	}
	return l.submit(func() func() {
		v := op()
		if cb == nil {
			return nil
		}
		return func() { cb(v) }
	})
}

// DeferErr is Defer for operations that can fail: cb receives op's result
// and error. A panic in op reaches cb as a *PanicError (with the stack), so
// the callback always learns how its operation ended. Errors are as for
// Defer. Call only from the loop goroutine.
func DeferErr[T any](l *Loop, op func() (T, error), cb func(T, error)) error {
	if op == nil {
		return ErrNilFunc
	}
	return l.submit(func() (done func()) {
		var v T
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = &PanicError{Value: r, Stack: debug.Stack()}
				}
			}()
			v, err = op()
		}()
		if cb == nil {
			return nil
		}
		return func() { cb(v, err) }
	})
}

// submit hands a job to the pool.
func (l *Loop) submit(job func() func()) error {
	if l.pool == nil || l.stopping || !l.running.Load() {
		return ErrLoopStopped
	}
	if err := l.pool.Submit(job); err != nil {
		return fmt.Errorf("loop: defer: %w", err)
	}
	l.readiedWorkers = true
	return nil
}

// deferPanic is the pool's OnPanic: the panic of a Defer op is re-raised on
// the loop goroutine, where call hands it to the ErrorHandler.
func deferPanic(v any, stack []byte) func() {
	err := &PanicError{Value: v, Stack: stack}
	return func() { panic(deferredPanic{err}) }
}

// deferredPanic carries a worker's panic to the loop goroutine, so that
// Loop.call reports the worker's stack rather than its own.
type deferredPanic struct{ err *PanicError }
