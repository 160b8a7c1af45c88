// Package connio is the contract between package conn and the event loop
// that drives its connections: the Driver a loop implements for each
// connection, the constructor of a conn.Conn around it, and the outbound
// byte queue the loop keeps per connection. Programs never use it; it is
// internal so that conn's public surface is what handlers call.
//
// conn does not import the loop, and connio imports neither: conn
// registers its constructor here at init, and the loop builds its Conns
// through NewConn.
//
//	c := connio.NewConn(sock, handler) // a *conn.Conn
package connio

import (
	"crypto/tls"
	"net"
	"syscall"
	"time"
)

// Driver is what a conn.Conn needs from the event loop that owns it. All
// methods are called on the loop goroutine.
type Driver interface {
	// SendData copies b into the outbound queue and arranges for it to be
	// sent in the current loop iteration.
	SendData(b []byte) error
	// SendFile queues the file's bytes [offset, offset+n) after the data
	// already queued (n < 0: to the end of the file).
	SendFile(path string, offset, n int64) error
	// SendDatagram sends one datagram to addr (nil: the last sender).
	SendDatagram(b []byte, addr net.Addr) error
	// Close closes the connection now (afterWriting false) or once the
	// queued output is sent (true).
	Close(afterWriting bool) error
	// CloseWrite shuts down the sending side once the queued output is sent.
	CloseWrite() error
	// Pause stops reading; Resume starts again; Paused reports it.
	Pause()
	Resume()
	Paused() bool
	// SetInactivityTimeout arms (d > 0) or disarms (d == 0) the inactivity
	// timeout.
	SetInactivityTimeout(d time.Duration) error
	InactivityTimeout() time.Duration
	// SetConnectTimeout sets the pending-connect timeout of a client.
	SetConnectTimeout(d time.Duration) error
	// OutboundSize reports the bytes queued and not yet sent.
	OutboundSize() int
	// SetOutboundLimits sets the watermarks and the hard cap (0: none).
	SetOutboundLimits(low, high, hardCap int) error
	// NotifyDrained runs fn once, on the loop goroutine, when the outbound
	// queue is at most low bytes; a later call replaces a pending one.
	NotifyDrained(low int, fn func()) error
	// LocalAddr and RemoteAddr report the socket's addresses.
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	// Closing reports whether the connection is closed or closing.
	Closing() bool
	// Counters reports the bytes received and sent.
	Counters() (in, out uint64)
	// Owner returns the event loop that owns the connection.
	Owner() any
	// StartTLS switches the connection to TLS with cfg.
	StartTLS(cfg *tls.Config) error
	// TLSState returns the TLS session's state once its handshake is done.
	TLSState() (tls.ConnectionState, bool)
	// ProxyTo sends what the connection receives on to target (n > 0: the
	// next n bytes only); StopProxy ends it; ProxiedBytes counts the bytes
	// the latest proxy sent on.
	ProxyTo(target Driver, bufSize int, n int64) error
	StopProxy() error
	ProxiedBytes() uint64
	// Detach hands the connection's descriptor back without closing it;
	// Unbind follows once the bytes the loop already read are delivered.
	Detach() (int, error)
	// Control calls fn with a process fd for the connection's socket (for
	// a client whose socket does not exist yet, later, before it connects).
	Control(fn func(fd int) error) error
	// Child reports the child process of a Popen connection: its pid (0
	// for other connections) and, once it is reaped, its conn.ExitStatus
	// (nil before).
	Child() (pid int, status any)
	// SignalChild sends sig to that child.
	SignalChild(sig syscall.Signal) error
}

// The constructor and accessors package conn registers at init.
var (
	newConn  func(d Driver, h any) any
	driverOf func(c any) Driver
	rebind   func(c any, d Driver)
)

// Register is called once, by package conn's init: newFn makes a *conn.Conn
// of a driver and a conn.Handler, driverFn returns the driver of a
// *conn.Conn (nil for anything else), rebindFn gives a *conn.Conn a new
// driver.
func Register(newFn func(d Driver, h any) any, driverFn func(c any) Driver, rebindFn func(c any, d Driver)) {
	newConn, driverOf, rebind = newFn, driverFn, rebindFn
}

// Rebind makes the *conn.Conn c act on d from now on (a reconnected client
// keeps its Conn, its handler and its context).
func Rebind(c any, d Driver) { rebind(c, d) }

// NewConn returns a new *conn.Conn (as any) bound to d and to the
// conn.Handler h.
func NewConn(d Driver, h any) any { return newConn(d, h) }

// DriverOf returns the driver of a *conn.Conn, or nil when c is not one
// (or is nil).
func DriverOf(c any) Driver { return driverOf(c) }
