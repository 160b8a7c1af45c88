package conn

import "net"

// Handler receives a connection's events, like a subclass of EventMachine's
// EM::Connection. One handler serves one connection: servers get a fresh one
// per accepted connection from their factory.
//
// All callbacks run on the loop goroutine, never concurrently with each other
// or with any other callback of the same loop, so a handler needs no locks.
//
// Callback order, per side:
//
//	side      order
//	server    factory → PostInit → ReceiveData* → Unbind
//	client    PostInit → ConnectionCompleted → ReceiveData* → Unbind
//	client    PostInit → Unbind(err)         (refused, unreachable, connect timeout)
//
// Unbind runs exactly once per connection, after the loop phase in which the
// connection closed (never inside Close itself), with the reason: nil for a
// local Close, io.EOF when the peer closed, ErrInactivityTimeout,
// ErrConnectTimeout, or the failure (an *OpError wrapping the errno, so
// errors.Is(reason, syscall.ECONNRESET) works).
//
// Peer EOF. When the peer shuts down its sending side (shutdown(SHUT_WR), a
// client that half-closes after its request, or a full close), no byte
// already queued is lost: the connection first sends everything queued —
// including what the ReceiveData calls delivered just before the EOF queued —
// then closes, and Unbind gets io.EOF. From the EOF on, SendData returns
// ErrClosed, as after CloseAfterWriting. (EventMachine closes at once and drops
// those replies.) A handler that wants to keep writing after the peer's EOF,
// as a proxy forwarding a half-close does, implements HalfCloser.
//
// Peer that stops reading. A send that fails with EPIPE (the peer closed,
// or shut down its reading side, with bytes of ours unread) does not close
// the connection at once: what is queued is dropped, SendData returns
// ErrClosed, and the connection reads on until the peer's EOF, so the
// bytes the peer sent before it left all reach ReceiveData; Unbind then
// gets the *OpError wrapping EPIPE (or the receive's ECONNRESET, which a
// Unix socket reports once those bytes are read). TLS connections and
// proxy targets close at once.
type Handler interface {
	// PostInit runs when the connection object exists: for a server right
	// after accept, for a client right after Connect returns (before the
	// connection is established; data sent here is queued until it is).
	PostInit(c *Conn)

	// ConnectionCompleted runs on a client when the connection is established.
	ConnectionCompleted(c *Conn)

	// ReceiveData delivers bytes in order; chunking is arbitrary. data is
	// valid only during the call: copy what you keep.
	ReceiveData(c *Conn, data []byte)

	// Unbind runs once when the connection is gone; see the type's doc for
	// the reasons.
	Unbind(c *Conn, reason error)
}

// Base implements Handler with no-ops; embed it and override what you need.
type Base struct{}

// PostInit does nothing.
func (Base) PostInit(*Conn) {}

// ConnectionCompleted does nothing.
func (Base) ConnectionCompleted(*Conn) {}

// ReceiveData does nothing.
func (Base) ReceiveData(*Conn, []byte) {}

// Unbind does nothing.
func (Base) Unbind(*Conn, error) {}

// HalfCloser may be implemented by a Handler of a stream connection that wants
// true half-close, as Go's net allows: when the peer shuts down its sending
// side, ReceiveEOF runs (after every byte the peer sent was delivered to
// ReceiveData) instead of the connection closing. Reading is over, writing is
// not: SendData and SendFile keep working until the handler ends the
// connection with Close, CloseAfterWriting, or CloseWrite — after CloseWrite
// both directions are done, so the connection closes once its queue is sent
// and Unbind gets io.EOF. A connection that fails or times out meanwhile
// closes as usual.
//
// Without it, only what is already queued is sent after the peer's EOF. A
// handler that keeps requests of its own unanswered for a while (one that
// stops answering above the outbound high watermark and resumes on Drained,
// say) implements HalfCloser and closes once it has answered them.
type HalfCloser interface {
	ReceiveEOF(c *Conn)
}

// Drainer may be implemented by a Handler to learn when the outbound buffer
// fell to the low watermark after having been above the high one (see
// Conn.SetOutboundLimits), like Node's 'drain' event.
type Drainer interface {
	Drained(c *Conn)
}

// ProxyTargetWatcher may be implemented by the Handler of a proxy's source
// (Conn.ProxyTo) to learn that the proxy ended because its target closed
// (EventMachine's proxy_target_unbound). It runs just before the target's
// Unbind; from then on the source's own ReceiveData gets its bytes again.
type ProxyTargetWatcher interface {
	ProxyTargetUnbound(c *Conn)
}

// ProxyCompleter may be implemented by the Handler of a proxy's source to
// learn that a proxy started with ProxyToN has sent on its n bytes
// (EventMachine's proxy_completed). From then on the source's own
// ReceiveData gets its bytes again, starting with the first byte past the
// n.
type ProxyCompleter interface {
	ProxyCompleted(c *Conn)
}

// DatagramReceiver may be implemented by the Handler of a datagram socket
// (Loop.OpenDatagram): each datagram is delivered here with its sender instead
// of to ReceiveData. data is valid only during the call.
type DatagramReceiver interface {
	ReceiveDatagram(c *Conn, data []byte, from net.Addr)
}
