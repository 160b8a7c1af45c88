package loop

import "runtime"

// Test-only access to internals.

// InFlightOps reports the backend operations in flight; after Run, those
// the backend still had when Run closed it.
func (l *Loop) InFlightOps() int {
	if l.be == nil {
		return l.leftInFlight
	}
	return l.be.inFlight()
}

// SetTestHookOpenURing replaces opening io_uring; the returned func restores it.
func SetTestHookOpenURing(fn func() (any, error)) (restore func()) {
	old := testHookOpenURing
	testHookOpenURing = func() (backend, error) {
		b, err := fn()
		if err != nil {
			return nil, err
		}
		return b.(backend), nil
	}
	return func() { testHookOpenURing = old }
}

// SetTestHookRunEnding installs fn to run at the end of Run, after the stop
// request is cleared and before Running turns false, while Stop is held off
// (so fn may call Stop only from another goroutine). The returned func
// restores the previous hook.
func SetTestHookRunEnding(fn func(l *Loop)) (restore func()) {
	old := testHookRunEnding
	testHookRunEnding = fn
	return func() { testHookRunEnding = old }
}

// PendingTimers reports the number of pending timers.
func (l *Loop) PendingTimers() int { return l.nTimers }

// SetGOMAXPROCSForTest sets GOMAXPROCS to n and forgets that Run raised it;
// the returned func restores both.
func SetGOMAXPROCSForTest(n int) (restore func()) {
	procs.mu.Lock()
	raised := procs.raised
	procs.raised = false
	procs.mu.Unlock()
	old := runtime.GOMAXPROCS(n)
	return func() {
		runtime.GOMAXPROCS(old)
		procs.mu.Lock()
		procs.raised = raised
		procs.mu.Unlock()
	}
}

// Yields reports how many times the loop yielded its P (Options.YieldEvery,
// or for readied Defer workers). Call it on the loop goroutine.
func (l *Loop) Yields() int { return l.yields }
