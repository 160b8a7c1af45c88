// Package sigtest interrupts a thread's system calls with signals, for tests
// of the EINTR paths of blocking waits. It imports nothing of the project,
// so the leaves' tests can use it.
//
//	runtime.LockOSThread()
//	defer runtime.UnlockOSThread()
//	sent := sigtest.Interrupt(syscall.Gettid(), 10*time.Millisecond, time.Second)
//	... a blocking wait on this thread ...
//	n := <-sent // how many signals went out
package sigtest

import (
	"syscall"
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
