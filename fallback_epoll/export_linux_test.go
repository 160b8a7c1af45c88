package epoll

import "testing"

// MultishotBudget exposes multishotBudget to the tests.
const MultishotBudget = multishotBudget

// SetTestHookEINTR installs f as the EINTR injection hook for the duration
// of the test t.
func SetTestHookEINTR(t testing.TB, f func() bool) {
	old := testHookEINTR
	testHookEINTR = f
	t.Cleanup(func() { testHookEINTR = old })
}

// Syscalls returns how many system calls p has made.
func (p *Poller) Syscalls() uint64 { return p.syscalls.Load() }
