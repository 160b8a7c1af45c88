// Package sigtest interrupts a thread's system calls with signals, for tests
// of the EINTR paths of blocking waits. It imports nothing of the project,
// so the leaves' tests can use it.
//
//	func TestWaitSignals(t *testing.T) {
//		runtime.LockOSThread() // before making what waits, if it is bound to its thread
//		defer runtime.UnlockOSThread()
//		p := newPoller(t)
//		sigtest.CheckTimedWait(t, 300*time.Millisecond, func(d time.Duration) (int, error) {
//			return p.Wait(d, dst)
//		})
//	}
package sigtest

import (
	"syscall"
	"testing"
	"time"
)

// Interrupt sends SIGURG to thread tid of this process every interval for
// the duration d, from a goroutine of its own, and then sends the number
// of signals sent on the returned channel. SIGURG is the Go runtime's
// preemption signal, which the runtime ignores when it has nothing to
// preempt, so the signals only interrupt the system call the thread is in
// (EINTR). It stops early if a signal cannot be sent (the thread is gone).
func Interrupt(tid int, interval, d time.Duration) <-chan int {
	pid := syscall.Getpid()
	done := make(chan int, 1)
	go func() {
		sent := 0
		for end := time.Now().Add(d); time.Now().Before(end); sent++ {
			if syscall.Tgkill(pid, tid, syscall.SIGURG) != nil {
				break
			}
			time.Sleep(interval)
		}
		done <- sent
	}()
	return done
}

// CheckTimedWait calls wait(timeout), a wait on the calling goroutine's
// locked thread that nothing completes, while SIGURG interrupts that thread
// every 10 ms for a second (Interrupt). It fails t unless the wait returned
// nothing (0, nil) after at least timeout, which must be well under a
// second: a wait that ends early at a signal fails, and so does one that
// starts its whole timeout again after each signal, as it then lasts until
// the signals stop.
func CheckTimedWait(t testing.TB, timeout time.Duration, wait func(time.Duration) (int, error)) {
	t.Helper()
	const signalling = time.Second
	done := Interrupt(syscall.Gettid(), 10*time.Millisecond, signalling)
	start := time.Now()
	n, err := wait(timeout)
	elapsed := time.Since(start)
	sent := <-done
	switch {
	case err != nil || n != 0:
		t.Errorf("wait: %d, %v; want 0, nil", n, err)
	case sent <= 10:
		t.Errorf("only %d signals sent", sent)
	case elapsed < timeout:
		t.Errorf("the wait ended early, after %v of %v", elapsed, timeout)
	case elapsed >= signalling:
		t.Errorf("the wait lasted %v for a %v timeout: it restarted its whole timeout after a signal", elapsed, timeout)
	}
}
