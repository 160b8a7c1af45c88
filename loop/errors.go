package loop

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by the loop. Compare with [errors.Is].
var (
	// ErrLoopStopped is returned by operations that need a running loop (Defer,
	// StartServer, ...) when the loop is not running or is shutting down.
	ErrLoopStopped = errors.New("loop: loop stopped")

	// ErrAlreadyRunning is returned by Run when the loop is already running.
	ErrAlreadyRunning = errors.New("loop: already running")

	// ErrNilFunc is returned when a nil callback is passed where one is required.
	ErrNilFunc = errors.New("loop: nil function")

	// ErrTooManyTimers is returned by AddTimer and AddPeriodicTimer when
	// Options.MaxTimers timers are already pending (EventMachine raises
	// "ran out of timers" in the same situation).
	ErrTooManyTimers = errors.New("loop: too many timers")

	// ErrInvalidBackend is returned by Run when Options.Backend or the
	// RINGMACHINE_BACKEND environment variable names no known backend.
	ErrInvalidBackend = errors.New("loop: invalid backend")
)

// PanicError is the error a recovered panic becomes: it is passed to
// Options.ErrorHandler, returned by Run when no handler is set, and given to
// the callback of [DeferErr] when the deferred operation panics.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the goroutine that panicked, as printed by
	// runtime/debug.Stack.
	Stack []byte
}

// Error implements error. It includes the panic value but not the stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("loop: panic in callback: %v", e.Value)
}

// Unwrap returns the panic value when it is an error, so errors.Is and
// errors.As see through a panic(err).
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}
