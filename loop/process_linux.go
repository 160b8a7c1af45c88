package loop

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ProcessWatcher is told when a process watched with Loop.WatchProcess
// exits (EventMachine's ProcessWatch#process_exited).
type ProcessWatcher interface {
	ProcessExited(w *ProcessWatch)
}

// ProcessWatcherFunc makes a function a ProcessWatcher.
type ProcessWatcherFunc func(w *ProcessWatch)

// ProcessExited calls f(w).
func (f ProcessWatcherFunc) ProcessExited(w *ProcessWatch) { f(w) }

// ProcessWatch is a watch on one process (Loop.WatchProcess).
type ProcessWatch struct {
	pid     int
	s       *sock
	h       ProcessWatcher
	exited  bool
	stopped bool
}

// PID returns the watched process's id.
func (w *ProcessWatch) PID() int { return w.pid }

// Exited reports whether the process has exited (ProcessExited has run or
// is running).
func (w *ProcessWatch) Exited() bool { return w.exited }

// Stop ends the watch without a call to ProcessExited (EventMachine's
// stop_watching); after the exit, or a second time, it does nothing. Call
// only from the loop goroutine.
func (w *ProcessWatch) Stop() {
	if w.stopped || w.exited {
		return
	}
	w.stopped = true
	w.s.l.closeSock(w.s, nil)
}

// WatchProcess calls h.ProcessExited once, on the loop goroutine, when the
// process pid exits (EventMachine's EM.watch_process), whatever its parent:
// through a pidfd (pidfd_open(2), Linux 5.3) that the loop polls
// (IORING_OP_POLL_ADD on io_uring, readiness on epoll). It does not reap
// the process: a child of this program is still waited for by whoever
// started it (os/exec's Wait). A process that has exited but is not reaped
// yet counts as exited: ProcessExited runs at once. The watch ends after
// ProcessExited, with Stop, or when the loop stops; it holds one process
// fd meanwhile.
//
// Errors: one wrapping os.ErrProcessDone when no process pid exists (it
// has exited and been reaped, or never was); pidfd_open's otherwise
// (errors.ErrUnsupported before Linux 5.3, EMFILE), wrapped with the pid;
// ErrLoopStopped when the loop is not running; an error for a pid below 1
// or a nil h. Call only from the loop goroutine.
func (l *Loop) WatchProcess(pid int, h ProcessWatcher) (*ProcessWatch, error) {
	if pid < 1 {
		return nil, fmt.Errorf("loop: WatchProcess: pid %d", pid)
	}
	if h == nil {
		return nil, errors.New("loop: WatchProcess: nil watcher")
	}
	if !l.running.Load() || l.stopping || l.be == nil {
		return nil, ErrLoopStopped
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	switch {
	case err == unix.ESRCH:
		return nil, fmt.Errorf("loop: WatchProcess %d: %w", pid, os.ErrProcessDone)
	case err == unix.ENOSYS:
		return nil, fmt.Errorf("loop: WatchProcess %d: pidfd_open: %w", pid, errors.ErrUnsupported)
	case err != nil:
		return nil, fmt.Errorf("loop: WatchProcess %d: %w", pid, os.NewSyscallError("pidfd_open", err))
	}
	s := l.newSock(sockPidfd, fd, "pidfd")
	w := &ProcessWatch{pid: pid, s: s, h: h}
	s.flow().pw = w
	if err := l.be.pollFD(fd, unix.POLLIN, s.tok(opPoll)); err != nil {
		l.closeSock(s, nil)
		return nil, fmt.Errorf("loop: WatchProcess %d: %w", pid, err)
	}
	s.ops++
	return w, nil
}

// onProcessExit handles the poll of a watched process's pidfd.
func (l *Loop) onProcessExit(s *sock, c *completion) {
	w := s.fl.pw
	if s.closed() || w.stopped {
		return
	}
	if c.Res < 0 {
		if err := errnoOf(c.Res); err != unix.ECANCELED {
			l.report(fmt.Errorf("loop: WatchProcess %d: poll: %w", w.pid, err))
		}
		l.closeSock(s, nil)
		return
	}
	w.exited = true
	l.closeSock(s, nil)
	l.call(func() { w.h.ProcessExited(w) })
}
