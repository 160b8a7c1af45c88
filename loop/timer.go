package loop

import (
	"fmt"
	"time"

	"github.com/ringmachine/ringmachine/timers"
)

// Timer is a one-shot timer made by [Loop.AddTimer] (EventMachine's
// add_timer and EM::Timer). Call its methods only from the loop goroutine.
type Timer struct {
	e  timers.Entry[*Timer]
	l  *Loop
	fn func() // nil once fired or cancelled
}

// AddTimer calls fn on the loop goroutine once d has elapsed on the loop's
// clock (EventMachine's add_timer). Timers fire in the timer phase in
// deadline order, ties in the order they were added; a negative d fires
// before every timer that is due at the same time, and d == 0 never runs fn
// synchronously: it fires in the next timer phase (one added during a timer
// phase waits for the following iteration).
//
// It returns ErrNilFunc for a nil fn and ErrTooManyTimers when
// Options.MaxTimers timers are pending. Call only from the loop goroutine (or
// before Run, from the goroutine that owns the loop).
func (l *Loop) AddTimer(d time.Duration, fn func()) (*Timer, error) {
	if fn == nil {
		return nil, ErrNilFunc
	}
	t := &Timer{l: l, fn: fn}
	t.e.Value = t
	if err := l.armTimer(t, d); err != nil {
		return nil, err
	}
	return t, nil
}

// Cancel stops t from firing (EventMachine's cancel_timer). Cancelling a
// timer that already fired or was cancelled, including from inside its own
// callback, does nothing. It reports whether the call stopped the timer.
func (t *Timer) Cancel() bool {
	if t == nil || t.fn == nil {
		return false
	}
	t.fn = nil
	t.l.timerHeap.Remove(&t.e)
	t.l.nTimers--
	return true
}

// Pending reports whether t has neither fired nor been cancelled.
func (t *Timer) Pending() bool { return t != nil && t.fn != nil }

// armTimer queues t at now+d, counting it against MaxTimers.
func (l *Loop) armTimer(t *Timer, d time.Duration) error {
	if max := l.opts.MaxTimers; max > 0 && l.nTimers >= max {
		return fmt.Errorf("%w: %d pending (Options.MaxTimers)", ErrTooManyTimers, l.nTimers)
	}
	if err := l.timerHeap.Push(&t.e, timers.AddDuration(l.now, d)); err != nil {
		return fmt.Errorf("loop: arm timer: %w", err)
	}
	l.nTimers++
	return nil
}

// runTimers is phase 3: it refreshes the loop time and fires every timer due
// by then. The due timers are taken from the heap before any runs, so a
// timer armed by a callback (even with delay 0, or a periodic re-arm) waits
// for the next iteration.
func (l *Loop) runTimers() {
	l.updateTime()
	if d, ok := l.timerHeap.NextDeadline(); !ok || d > l.now {
		return
	}
	due := l.timerHeap.PopExpired(l.now, l.expired[:0])
	for i, e := range due {
		due[i] = nil
		t := e.Value
		fn := t.fn
		if fn == nil { // cancelled by an earlier callback of this phase
			continue
		}
		t.fn = nil
		l.nTimers--
		if l.stopReq.Load() {
			continue // Stop discards timers, even those already due
		}
		l.call(fn)
	}
	if cap(due) > 4096 {
		due = nil // do not keep a huge batch's backing array alive
	}
	l.expired = due[:0]
	l.runCloses()
}

// clearTimers discards every pending timer (at the end of a run).
func (l *Loop) clearTimers() {
	for {
		e, ok := l.timerHeap.Peek()
		if !ok {
			break
		}
		l.timerHeap.Remove(e)
		e.Value.fn = nil
	}
	l.nTimers = 0
}

// PeriodicTimer calls its function every interval until cancelled
// (EventMachine's add_periodic_timer and EM::PeriodicTimer). Call its methods
// only from the loop goroutine.
type PeriodicTimer struct {
	t        Timer
	fn       func()
	interval time.Duration
	canceled bool
}

// AddPeriodicTimer calls fn on the loop goroutine every d, measured from the
// end of the previous call: it is re-armed after fn returns, so it drifts as
// in EventMachine and missed periods are not caught up. If fn panics the
// timer is not re-armed (EventMachine's behaviour after an exception). A d
// below zero is treated as zero.
//
// It returns ErrNilFunc for a nil fn and ErrTooManyTimers when
// Options.MaxTimers timers are pending. Call only from the loop goroutine.
func (l *Loop) AddPeriodicTimer(d time.Duration, fn func()) (*PeriodicTimer, error) {
	if fn == nil {
		return nil, ErrNilFunc
	}
	p := &PeriodicTimer{fn: fn, interval: max(d, 0)}
	p.t.l = l
	p.t.e.Value = &p.t
	p.t.fn = p.fire
	if err := l.armTimer(&p.t, p.interval); err != nil {
		return nil, err
	}
	return p, nil
}

// fire runs the user function and re-arms the timer.
func (p *PeriodicTimer) fire() {
	p.fn()
	if p.canceled {
		return
	}
	p.t.fn = p.fire
	if err := p.t.l.armTimer(&p.t, p.interval); err != nil {
		p.t.fn = nil
		p.t.l.handlePanic(fmt.Errorf("loop: re-arm periodic timer: %w", err))
	}
}

// Cancel stops the timer; calling it from inside the timer's own function
// stops the re-arm. Cancelling twice does nothing. It reports whether the
// call stopped the timer.
func (p *PeriodicTimer) Cancel() bool {
	if p == nil || p.canceled {
		return false
	}
	p.canceled = true
	p.t.Cancel()
	return true
}

// Interval returns the current interval.
func (p *PeriodicTimer) Interval() time.Duration { return p.interval }

// SetInterval changes the interval (EventMachine's interval=). Like
// EventMachine it takes effect from the next re-arm: the pending deadline is
// kept. A d below zero is treated as zero.
func (p *PeriodicTimer) SetInterval(d time.Duration) { p.interval = max(d, 0) }

// armInternalTimer arms t, a timer of the loop's own (not counted against
// Options.MaxTimers), to run fn after d.
func (l *Loop) armInternalTimer(t *Timer, d time.Duration, fn func()) {
	l.armInternalTimerAt(t, l.monotonic()+int64(max(d, 0)), fn)
}

// armInternalTimerAt arms t for the loop time deadline.
func (l *Loop) armInternalTimerAt(t *Timer, deadline int64, fn func()) {
	t.l = l
	t.fn = fn
	t.e.Value = t
	if err := l.timerHeap.Push(&t.e, deadline); err != nil {
		t.fn = nil
		l.fail(fmt.Errorf("loop: arm timer: %w", err))
		return
	}
	l.nTimers++
}
