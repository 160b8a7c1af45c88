package conn

import (
	"errors"
	"net"
	"syscall"
)

// Sentinel errors. Compare with [errors.Is].
var (
	// ErrClosed is returned by SendData and the other sending methods once
	// the connection is closed or closing (Close or CloseAfterWriting was
	// called, or the peer went away).
	ErrClosed = errors.New("conn: use of closed connection")

	// ErrInactivityTimeout is the Unbind reason of a connection closed by
	// its inactivity timeout (SetInactivityTimeout). It also matches
	// syscall.ETIMEDOUT.
	ErrInactivityTimeout error = &timeoutError{"conn: inactivity timeout"}

	// ErrConnectTimeout is the Unbind reason of an outbound connection that
	// did not complete within its connect timeout (SetConnectTimeout). It also
	// matches syscall.ETIMEDOUT.
	ErrConnectTimeout error = &timeoutError{"conn: connect timeout"}

	// ErrOutboundFull is returned by SendData when queuing the data would take
	// the outbound buffer past its hard cap (SetOutboundLimits).
	ErrOutboundFull = errors.New("conn: outbound buffer full")

	// ErrNotDatagram is returned by SendDatagram on a stream connection,
	// and ErrNotStream by stream-only methods on a datagram socket.
	ErrNotDatagram = errors.New("conn: not a datagram socket")
	ErrNotStream   = errors.New("conn: not a stream connection")

	// ErrDetached is the Unbind reason of a connection whose descriptor
	// Detach handed back.
	ErrDetached = errors.New("conn: connection detached")

	// ErrCannotDetach is wrapped by the errors of Detach on a connection
	// that cannot hand its descriptor back yet or at all; the message says
	// why.
	ErrCannotDetach = errors.New("conn: cannot detach")

	// ErrNotConnected is returned by GetSockOpt on a client whose socket
	// does not exist yet (its host name is being resolved, or the ring is
	// making it): ask again from ConnectionCompleted.
	ErrNotConnected = errors.New("conn: socket not created yet")
)

// timeoutError is a sentinel that also matches syscall.ETIMEDOUT and reports
// itself as a timeout, like net.Error.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return false }

// Is makes errors.Is(err, syscall.ETIMEDOUT) true.
func (e *timeoutError) Is(target error) bool { return target == syscall.ETIMEDOUT }

// OpError describes a failed operation on a connection, in the mould of
// net.OpError. Err is typically a syscall.Errno, so
// errors.Is(err, syscall.ECONNREFUSED) works through it.
type OpError struct {
	// Op is the operation: "accept", "connect", "recv", "send", "sendfile",
	// "listen", "close", "shutdown", ...
	Op string
	// Backend is "uring" or "epoll".
	Backend string
	// Addr is the remote (or, for listen, local) address, if known.
	Addr net.Addr
	// Err is the underlying error.
	Err error
}

// Error returns "conn: <op> <addr> (<backend>): <err>".
func (e *OpError) Error() string {
	s := "conn: " + e.Op
	if e.Addr != nil {
		s += " " + e.Addr.String()
	}
	if e.Backend != "" {
		s += " (" + e.Backend + ")"
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *OpError) Unwrap() error { return e.Err }

// Timeout reports whether Err is a timeout.
func (e *OpError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout() || errors.Is(e.Err, syscall.ETIMEDOUT)
}
