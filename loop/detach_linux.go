package loop

import (
	"errors"
	"fmt"

	"github.com/ringmachine/ringmachine/conn"
	"golang.org/x/sys/unix"
)

// Detach (EventMachine's detach): a stream connection hands its descriptor
// back, unclosed. Nothing the loop took from the kernel is lost: a receive
// in flight is cancelled and what it had read, with any bytes held by a
// pause, goes to ReceiveData before Unbind(conn.ErrDetached); what the
// kernel still holds stays there for the new owner. Output is not sent
// on the caller's behalf: Detach refuses while any is queued, since sending
// it first could wait on the peer for ever, and the descriptor could not
// be written by its new owner meanwhile.
//
//	Detach ──no receive in flight──────────────────────► closeSock(ErrDetached)
//	   │                                                  (held bytes first, on a tick)
//	   └──receive in flight: cancel it; its completions ──► final: closeSock(ErrDetached)
//	      deliver (onDetachedRecv)
//
// From Detach on, the connection receives and sends nothing new (rdEOF and
// wrClosed are set) and its fd is never closed by the loop; an io_uring
// direct descriptor's slot is closed once the operations on it are reaped,
// the process fd installed for it being the caller's.

func (s *sock) Detach() (int, error) {
	switch {
	case s.kind != sockStream:
		return -1, conn.ErrNotStream
	case s.detached || s.closing():
		return -1, conn.ErrClosed
	case s.connecting():
		return -1, fmt.Errorf("%w: the connect is in progress", conn.ErrCannotDetach)
	case s.fl != nil && s.fl.child != nil:
		return -1, fmt.Errorf("%w: a child process's connection (the loop reaps the child and reports its status at Unbind)", conn.ErrCannotDetach)
	case s.tls() != nil:
		return -1, fmt.Errorf("%w: a TLS connection (its session state lives in the loop)", conn.ErrCannotDetach)
	case s.fl != nil && (s.fl.px != nil || s.fl.splicing != nil || s.fl.inPipe != nil || len(s.fl.feeders) > 0 || s.fl.pipeQ > 0):
		return -1, fmt.Errorf("%w: a proxy's source or target", conn.ErrCannotDetach)
	case s.out.Len() > 0 || len(s.files) > 0 || s.sendInFlight:
		return -1, fmt.Errorf("%w: %d bytes of output queued (detach once they are sent: NotifyDrained(0, ...))",
			conn.ErrCannotDetach, s.queued())
	}
	l := s.l
	fd, err := l.be.release(s.fd)
	if err != nil {
		return -1, fmt.Errorf("loop: Detach: %w", err)
	}
	s.detached = true
	s.wrClosed, s.shutPending = true, false
	s.rdEOF = true // no receive is armed again (updateRead)
	if s.inact != nil {
		s.inact.t.Cancel()
	}
	if s.recvArmed {
		// Its completions deliver what it read; the final one ends the
		// connection (onDetachedRecv).
		l.cancelRecv(s)
		return fd, nil
	}
	if s.heldLen() == 0 {
		l.closeSock(s, conn.ErrDetached)
		return fd, nil
	}
	// Bytes held by a pause: delivered on a tick, not inside the callback
	// that called Detach.
	_ = l.NextTick(func() { l.finishDetach(s, conn.ErrDetached) })
	return fd, nil
}

// onDetachedRecv handles a completion of the receive a Detach cancelled:
// its bytes are kept, after any held ones, and the final completion
// delivers them all and ends the connection. An EOF stays the new owner's
// to read; an error other than the cancel's joins the Unbind reason.
func (l *Loop) onDetachedRecv(s *sock, c *completion, final bool) {
	if final {
		s.recvArmed = false
		s.recvCancel = false
	}
	reason := conn.ErrDetached
	switch {
	case c.Res > 0:
		if !s.closed() {
			l.holdBytes(s, c.Buf)
		}
		if s.pipe != 0 || l.singleShot() {
			l.putRecvBuf(c.Buf)
		}
	case c.Res < 0:
		if err := errnoOf(c.Res); !errors.Is(err, unix.ECANCELED) && err != unix.ENOBUFS && err != unix.EAGAIN {
			reason = fmt.Errorf("%w: %w", conn.ErrDetached, l.opError(s.recvOp(), s, err))
		}
	}
	if final {
		l.finishDetach(s, reason)
	}
}

// finishDetach delivers the bytes s holds and closes it with reason, unless
// something closed it meanwhile (Stop).
func (l *Loop) finishDetach(s *sock, reason error) {
	if s.closed() {
		return
	}
	if s.heldLen() > 0 {
		data := s.fl.held
		s.fl.held = nil
		l.deliver(s, data)
		l.putHeldBuf(data)
	}
	l.closeSock(s, reason)
}
