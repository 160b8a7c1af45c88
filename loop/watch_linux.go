package loop

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// WatchHandler is told when a watched descriptor (Loop.Watch) is readable
// or writable, as NotifyReadable and NotifyWritable ask (EventMachine's
// notify_readable and notify_writable).
type WatchHandler interface {
	Readable(w *Watch)
	Writable(w *Watch)
}

// Watch is a descriptor the loop watches for its owner, who reads and
// writes it (Loop.Watch).
type Watch struct {
	l        *Loop
	s        *sock
	h        WatchHandler
	fd       int
	rd, wr   bool // NotifyReadable, NotifyWritable
	inR, inW bool // a poll for each is in flight
	stopped  bool
}

// FD returns the watched descriptor.
func (w *Watch) FD() int { return w.fd }

// NotifyReadable turns the Readable calls on or off (EventMachine's
// notify_readable=). While on, Readable runs once per loop iteration in
// which the descriptor is readable: level-triggered, so a handler that
// does not read what is there is called again. Call only from the loop
// goroutine; after Stop it does nothing.
func (w *Watch) NotifyReadable(on bool) {
	w.rd = on
	w.arm()
}

// NotifyWritable is NotifyReadable for Writable (notify_writable=).
func (w *Watch) NotifyWritable(on bool) {
	w.wr = on
	w.arm()
}

// IsNotifyReadable and IsNotifyWritable report the settings.
func (w *Watch) IsNotifyReadable() bool { return w.rd }

// IsNotifyWritable reports whether Writable calls are on.
func (w *Watch) IsNotifyWritable() bool { return w.wr }

// Stop ends the watch (EventMachine's detach of a watched descriptor): no
// more calls, and the descriptor stays open, its owner's to close (after
// Stop: a poll may still hold it until the loop's next iteration on
// io_uring, which is harmless, but an epoll registration of a closed
// descriptor is not). A second call does nothing. Call only from the loop
// goroutine.
func (w *Watch) Stop() {
	if w.stopped {
		return
	}
	w.stopped = true
	w.l.closeSock(w.s, nil)
}

// arm submits the polls the settings want and are not in flight.
//
// They are one-shot polls, armed again after each call, not multishot
// ones: a multishot poll reports wake-ups, not readiness, so a handler
// that leaves bytes unread would not be called again, and keeping
// EventMachine's level-triggered notify_readable on it would take a
// poll(2) per call. A one-shot poll re-armed is one SQE that goes with
// the loop's next io_uring_enter, and the kernel checks readiness when it
// is armed.
func (w *Watch) arm() {
	if w.stopped || w.s.closed() {
		return
	}
	l := w.l
	if w.rd && !w.inR {
		if err := l.be.pollFD(w.fd, unix.POLLIN, w.s.tok(opPoll)); err != nil {
			l.report(fmt.Errorf("loop: Watch fd %d: %w", w.fd, err))
			return
		}
		w.s.ops++
		w.inR = true
	}
	if w.wr && !w.inW {
		if err := l.be.pollFD(w.fd, unix.POLLOUT, w.s.tok(opPollOut)); err != nil {
			l.report(fmt.Errorf("loop: Watch fd %d: %w", w.fd, err))
			return
		}
		w.s.ops++
		w.inW = true
	}
}

// Watch watches the descriptor fd, which its owner reads and writes itself
// (EventMachine's EM.watch): h.Readable and h.Writable run on the loop
// goroutine while NotifyReadable and NotifyWritable ask for them (both
// off to begin with). The loop never reads, writes or closes fd: after
// Stop (or when the loop stops) it is the owner's as before. Any descriptor
// poll(2) takes will do: a socket, a pipe, a terminal, an eventfd, a timerfd
// (on epoll, not a regular file: its polls end with an error, reported to
// Options.ErrorHandler). A descriptor the loop's own connections use must
// not be watched.
//
// Errors: an error wrapping unix.EBADF for a negative or closed fd;
// ErrNilFunc for a nil h; ErrLoopStopped when the loop is not running.
// Call only from the loop goroutine.
func (l *Loop) Watch(fd int, h WatchHandler) (*Watch, error) {
	if h == nil {
		return nil, ErrNilFunc
	}
	if !l.running.Load() || l.stopping || l.be == nil {
		return nil, ErrLoopStopped
	}
	if fd < 0 {
		return nil, fmt.Errorf("loop: Watch: fd %d: %w", fd, unix.EBADF)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("loop: Watch: fd %d: %w", fd, err)
	}
	s := l.newSock(sockWatch, fd, "fd")
	w := &Watch{l: l, s: s, h: h, fd: fd}
	s.flow().fw = w
	return w, nil
}

// onWatchReady handles a poll of a watched descriptor: the handler is
// told, and the poll armed again while it is wanted.
func (l *Loop) onWatchReady(s *sock, c *completion, write bool) {
	w := s.fl.fw
	if write {
		w.inW = false
	} else {
		w.inR = false
	}
	if s.closed() || w.stopped {
		return
	}
	if c.Res < 0 {
		if err := errnoOf(c.Res); err != unix.ECANCELED {
			l.report(fmt.Errorf("loop: Watch fd %d: poll: %w", w.fd, err))
		}
		return
	}
	switch {
	case write && w.wr:
		l.call(func() { w.h.Writable(w) })
	case !write && w.rd:
		l.call(func() { w.h.Readable(w) })
	}
	w.arm()
}
