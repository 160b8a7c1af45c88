package epoll

import "testing"

// MultishotBudget exposes multishotBudget to the tests.
const MultishotBudget = multishotBudget

// InjectEINTR makes every k-th system call attempt through the package's
// EINTR loop fail with EINTR for the duration of the test t, and returns a
// function that reports how many attempts it saw and how many it failed.
// The counters are package variables: not for tests that run in parallel,
// or that call Wake from another goroutine meanwhile.
func InjectEINTR(t testing.TB, k int) (counts func() (attempts, failed int)) {
	testEINTREvery, testEINTRAttempts, testEINTRs = k, 0, 0
	t.Cleanup(func() { testEINTREvery = 0 })
	return func() (int, int) { return testEINTRAttempts, testEINTRs }
}

// Syscalls returns how many system calls p has made.
func (p *Poller) Syscalls() uint64 { return p.syscalls }
