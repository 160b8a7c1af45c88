package conn

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ringmachine/ringmachine/internal/connio"
)

// Control calls fn with the file descriptor of c's socket, for the socket
// options and calls this package has no method for (like Go's
// syscall.RawConn.Control). fn runs on the loop goroutine, at once; it must
// not keep the descriptor, close it, or read or write on it.
//
// On io_uring a connection's socket is usually a direct descriptor, which
// has no number in the process's table: fn then gets a process descriptor
// the loop installs for the call (one round trip to the kernel) and closes
// after it. For a client whose socket does not exist yet (Connect to a host
// name still being resolved, or a socket the ring is still making), fn is
// kept and runs once the socket exists, before it connects; Control then
// returns nil, and an error of fn closes the connection and is its Unbind
// reason. Options set from PostInit therefore always apply before the
// connect.
//
// It returns ErrClosed once c is closed, an error for a nil fn, the
// installing's error (EMFILE when the process is out of descriptors), or
// fn's.
func (c *Conn) Control(fn func(fd int) error) error {
	if fn == nil {
		return errors.New("conn: Control with nil function")
	}
	return c.d.Control(fn)
}

// SetSockOpt sets the integer socket option level/name to value
// (EventMachine's set_sock_opt; the constants are in golang.org/x/sys/unix
// or syscall). The error names the option. See Control for when it applies
// to a client that is still connecting.
func (c *Conn) SetSockOpt(level, name, value int) error {
	return c.Control(func(fd int) error { return connio.SetInt(fd, level, name, value) })
}

// GetSockOpt returns the integer socket option level/name (EventMachine's
// get_sock_opt). It returns ErrNotConnected for a client whose socket does
// not exist yet, or the error of getsockopt(2), naming the option.
func (c *Conn) GetSockOpt(level, name int) (int, error) {
	var v int
	var pending = true
	err := c.Control(func(fd int) error {
		pending = false
		var err error
		v, err = connio.GetInt(fd, level, name)
		return err
	})
	if err == nil && pending {
		return 0, ErrNotConnected
	}
	return v, err
}

// SetNoDelay turns Nagle's algorithm off (true, TCP_NODELAY, the default
// for every TCP connection, as in Go's net) or on (false: small writes wait
// to be coalesced with the next ones, up to one round trip). Errors as
// SetSockOpt.
func (c *Conn) SetNoDelay(noDelay bool) error {
	return c.Control(func(fd int) error { return connio.SetNoDelay(fd, noDelay) })
}

// SetKeepAlive configures TCP keep-alive probes as Go's
// net.TCPConn.SetKeepAliveConfig does (EventMachine's enable_keepalive and
// disable_keepalive): Enable turns SO_KEEPALIVE on or off; Idle is the
// silence before the first probe, Interval the time between probes, Count
// the unanswered probes before the connection fails (its Unbind reason then
// matches syscall.ETIMEDOUT). A zero Idle or Interval means 15 s and a zero
// Count 9, as in net; a negative one leaves the system's setting. The times
// are rounded up to whole seconds. Errors as SetSockOpt, and an error for a
// time above the kernel's limit of 32767 s.
func (c *Conn) SetKeepAlive(cfg net.KeepAliveConfig) error {
	return c.Control(func(fd int) error { return connio.SetKeepAlive(fd, cfg) })
}

// SetLinger sets SO_LINGER: d < 0 restores the default (Close returns at
// once and the kernel sends what is left in the background); d >= 0 makes
// the kernel's close wait up to d (rounded down to seconds) for unsent
// data, and d == 0 resets the connection on close, discarding it. The
// loop's own Close never blocks the loop either way: it is the kernel's
// close of the socket that lingers. Errors as SetSockOpt.
func (c *Conn) SetLinger(d time.Duration) error {
	return c.Control(func(fd int) error { return connio.SetLinger(fd, d) })
}

// SetReadBuffer sets the socket's receive buffer (SO_RCVBUF; the kernel
// doubles the value and caps it at net.core.rmem_max). Errors as
// SetSockOpt, and an error for bytes <= 0.
func (c *Conn) SetReadBuffer(bytes int) error {
	if bytes <= 0 {
		return fmt.Errorf("conn: SetReadBuffer(%d): must be positive", bytes)
	}
	return c.Control(func(fd int) error { return connio.SetReadBuffer(fd, bytes) })
}

// SetWriteBuffer sets the socket's send buffer (SO_SNDBUF; the kernel
// doubles the value and caps it at net.core.wmem_max). Errors as
// SetSockOpt, and an error for bytes <= 0.
func (c *Conn) SetWriteBuffer(bytes int) error {
	if bytes <= 0 {
		return fmt.Errorf("conn: SetWriteBuffer(%d): must be positive", bytes)
	}
	return c.Control(func(fd int) error { return connio.SetWriteBuffer(fd, bytes) })
}
