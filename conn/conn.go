package conn

import (
	"errors"
	"net"
	"time"

	"github.com/ringmachine/ringmachine/internal/connio"
)

// Stats are a connection's counters.
type Stats struct {
	BytesIn, BytesOut uint64
}

// DefaultConnectTimeout is the pending-connect timeout of an outbound
// connection, as in EventMachine (pending_connect_timeout).
const DefaultConnectTimeout = 20 * time.Second

// Conn is one connection (TCP, Unix socket, or datagram socket) as its
// Handler sees it: EventMachine's EM::Connection instance methods.
//
// Call its methods only from the loop goroutine (from the handler's
// callbacks, timers, ticks, ...); to act on a connection from another
// goroutine, use the loop's NextTick.
//
// A Conn belongs to the loop that made it: loop.Of(c) returns that loop, for
// a handler that needs timers, NextTick or other connections.
type Conn struct {
	d   connio.Driver
	h   Handler
	ctx any
}

func init() {
	connio.Register(
		func(d connio.Driver, h any) any { return &Conn{d: d, h: h.(Handler)} },
		func(c any) connio.Driver {
			if c, ok := c.(*Conn); ok && c != nil {
				return c.d
			}
			return nil
		},
		func(c any, d connio.Driver) { c.(*Conn).d = d })
}

// Handler returns the connection's handler.
func (c *Conn) Handler() Handler { return c.h }

// Context returns the value set by SetContext (nil by default).
func (c *Conn) Context() any { return c.ctx }

// SetContext attaches an arbitrary value to the connection.
func (c *Conn) SetContext(v any) { c.ctx = v }

// SendData queues a copy of b for sending (EventMachine's send_data): the
// caller may reuse b at once. Nothing is written synchronously; the queued
// bytes of a connection go out in one send per loop iteration. It returns
// ErrClosed once the connection is closed or closing, ErrOutboundFull past
// the hard cap of SetOutboundLimits, and ErrNotStream on a datagram socket.
// Above the high watermark the data is still queued, but reading from the
// peer pauses until the queue drains to the low watermark.
func (c *Conn) SendData(b []byte) error { return c.d.SendData(b) }

// SendFile queues the whole file at path, after the data already queued
// (EventMachine's send_file_data, without its 32 KiB limit): spliced by the
// kernel on io_uring, sendfile(2) on epoll. It returns the error of opening
// the file (an *os.PathError), or the errors of SendData.
func (c *Conn) SendFile(path string) error { return c.d.SendFile(path, 0, -1) }

// ProxyTo makes every byte c receives from now on go to target, without
// passing through c's handler (EventMachine's proxy_incoming_to and
// enable_proxy). Between two plain TCP or Unix stream connections the bytes
// never enter user memory: the kernel splices them from c's socket through a
// pipe into target's (IORING_OP_SPLICE on io_uring, splice(2) on epoll).
// With TLS on either side they pass through crypto/tls and are copied.
//
// Order is kept on both sides: bytes c received before the call and not
// yet delivered go first, and on target the proxied bytes take their place
// in its queue between what its own handler queued before and after they
// arrived. Backpressure: c stops reading while target has bufSize bytes or
// more queued (OutboundSize, which counts the proxied bytes not yet sent),
// so a target that does not drain holds the peer of c back through TCP;
// bufSize 0 means DefaultProxyBuffer (256 KiB); EventMachine's 0, no bound
// at all, is not offered. The target's hard cap (SetOutboundLimits) does not
// apply to proxied bytes.
//
// The proxy ends with StopProxy, when either connection closes (c's
// handler learns of target's close through ProxyTargetWatcher), or, for
// ProxyToN, after its n bytes. c's peer EOF reaches c's handler as usual
// (ReceiveEOF, or c closes once its own queue is sent). ProxyTo on a
// connection already proxying replaces its proxy. c may keep sending with
// SendData; a proxy in the other direction is target.ProxyTo(c, ...).
//
// Both connections must belong to the same loop. It returns ErrNotStream
// for datagram sockets, ErrClosed once c is closed or target is closed or
// closing, and an error for a nil target, c itself, a target of another
// loop or a negative bufSize.
func (c *Conn) ProxyTo(target *Conn, bufSize int) error {
	return c.ProxyToN(target, bufSize, 0)
}

// ProxyToN is ProxyTo for the next n bytes only (n 0: no limit); then the
// proxy ends, c's handler's ProxyCompleted runs (ProxyCompleter), and the
// bytes past the n go to c's ReceiveData. Errors as ProxyTo, and one for a
// negative n.
func (c *Conn) ProxyToN(target *Conn, bufSize int, n int64) error {
	if target == nil {
		return errors.New("conn: ProxyTo with nil target")
	}
	return c.d.ProxyTo(target.d, bufSize, n)
}

// StopProxy ends c's proxy (EventMachine's disable_proxy): bytes c receives
// from now on go to its own handler. Bytes already on their way to the
// target still reach it. It does nothing without a proxy, and never fails.
func (c *Conn) StopProxy() { _ = c.d.StopProxy() }

// ProxiedBytes reports the bytes c's latest proxy has sent on to its
// target (EventMachine's get_proxied_bytes); it keeps its value after the
// proxy ends, until the next ProxyTo.
func (c *Conn) ProxiedBytes() uint64 { return c.d.ProxiedBytes() }

// SendFileRange is SendFile for n bytes starting at offset (n < 0: to the end).
func (c *Conn) SendFileRange(path string, offset, n int64) error {
	return c.d.SendFile(path, offset, n)
}

// SendDatagram sends b as one datagram to addr, or to the sender of the last
// datagram received when addr is nil (EventMachine's send_data on a datagram
// socket). It returns ErrNotDatagram on a stream connection, ErrClosed once
// closed, and the send error otherwise.
func (c *Conn) SendDatagram(b []byte, addr net.Addr) error { return c.d.SendDatagram(b, addr) }

// Close closes the connection now (EventMachine's close_connection): queued
// output may be dropped, and Unbind(nil) follows after the current loop
// phase. Closing twice returns nil.
func (c *Conn) Close() error { return c.d.Close(false) }

// CloseAfterWriting closes the connection once every queued byte is sent
// (close_connection_after_writing). Later sends return ErrClosed.
func (c *Conn) CloseAfterWriting() error { return c.d.Close(true) }

// CloseWrite half-closes the connection: once the queued output is sent, the
// peer reads EOF, while data from the peer still arrives. Later sends return
// ErrClosed. It returns ErrNotStream on a datagram socket.
func (c *Conn) CloseWrite() error { return c.d.CloseWrite() }

// Pause stops reading from the peer; the kernel buffers what arrives (and
// eventually pushes back on the sender). Resume delivers what was held.
func (c *Conn) Pause() { c.d.Pause() }

// Resume undoes Pause.
func (c *Conn) Resume() { c.d.Resume() }

// Paused reports whether reading is paused (by Pause or by the high
// watermark of SetOutboundLimits).
func (c *Conn) Paused() bool { return c.d.Paused() }

// SetInactivityTimeout closes the connection with Unbind(ErrInactivityTimeout)
// when nothing is received or sent for d (comm_inactivity_timeout); 0
// disarms it. The timeout fires between d and d plus one loop iteration, not
// EventMachine's d..2d. It returns an error for a negative d.
func (c *Conn) SetInactivityTimeout(d time.Duration) error { return c.d.SetInactivityTimeout(d) }

// InactivityTimeout returns the current inactivity timeout (0: none).
func (c *Conn) InactivityTimeout() time.Duration { return c.d.InactivityTimeout() }

// SetConnectTimeout sets how long an outbound connection may take to be
// established (pending_connect_timeout, default DefaultConnectTimeout);
// after that it is closed with Unbind(ErrConnectTimeout). It has no effect
// once connected. It returns an error for d <= 0.
func (c *Conn) SetConnectTimeout(d time.Duration) error { return c.d.SetConnectTimeout(d) }

// OutboundSize reports the bytes queued and not yet handed to the kernel
// (get_outbound_data_size).
func (c *Conn) OutboundSize() int { return c.d.OutboundSize() }

// SetOutboundLimits bounds the outbound buffer. Above high, reading from the
// peer pauses (SendData still queues); at or below low it resumes and a
// handler implementing Drainer gets Drained. hardCap > 0 makes SendData
// return ErrOutboundFull rather than queue past it. 0 disables a limit. It
// returns an error unless 0 <= low <= high and (hardCap == 0 or
// hardCap >= high).
func (c *Conn) SetOutboundLimits(low, high, hardCap int) error {
	return c.d.SetOutboundLimits(low, high, hardCap)
}

// Detach stops the loop's management of the connection without closing its
// descriptor and returns it (EventMachine's detach): a process fd the
// caller owns and must close, non-blocking and close-on-exec. For an
// io_uring direct descriptor, which no system call takes, it is a process
// fd installed for it (IORING_OP_FIXED_FD_INSTALL, Linux 6.8), and the
// direct descriptor's slot is released. A detached pipe end is returned
// the same way.
//
// Nothing is lost: bytes the loop has already taken from the kernel (a
// receive in flight, which Detach cancels, and bytes held by Pause) go to
// ReceiveData before Unbind, and bytes still in the kernel stay there for
// the new owner, as does the peer's EOF. Unbind then runs once, with
// ErrDetached (joined with the receive's error if it failed); after Detach
// the connection sends nothing and Close does nothing. Start using the
// descriptor once Unbind has run: until then a cancelled receive may still
// be reading from it.
//
// Queued output is not sent on the caller's behalf, since that could wait
// on the peer for ever: with any queued (OutboundSize() > 0, or a SendFile
// pending), Detach fails with an error wrapping ErrCannotDetach; call it
// from NotifyDrained(0, ...) to detach once the queue is sent.
//
// Errors (nothing changes): ErrClosed on a closed, closing or already
// detached connection; ErrNotStream on a datagram socket; errors wrapping
// ErrCannotDetach for queued output, a client still connecting, a TLS
// connection (its session state lives in the loop), a proxy's source or
// target and a child process's connection (the loop's Popen); an error from installing a direct descriptor's process fd
// (EMFILE, say).
func (c *Conn) Detach() (int, error) { return c.d.Detach() }

// LocalAddr returns the local address (get_sockname).
func (c *Conn) LocalAddr() net.Addr { return c.d.LocalAddr() }

// RemoteAddr returns the peer's address (get_peername); nil for an
// unconnected datagram socket.
func (c *Conn) RemoteAddr() net.Addr { return c.d.RemoteAddr() }

// Closing reports whether the connection is closed or closing.
func (c *Conn) Closing() bool { return c.d.Closing() }

// Stats returns the connection's byte counters.
func (c *Conn) Stats() Stats {
	in, out := c.d.Counters()
	return Stats{BytesIn: in, BytesOut: out}
}

// OutboundChunkSize is the size of the chunks the outbound queue copies
// SendData's bytes into: a program that produces a large reply piece by
// piece (a file, a generated body) keeps its memory flat by sending pieces
// of this size and waiting for Drained (or NotifyDrained) in between.
const OutboundChunkSize = 16 << 10

// The loop's outbound queue uses chunks of OutboundChunkSize: a compile
// error here if the two drift apart.
var (
	_ [OutboundChunkSize - connio.ChunkSize]struct{}
	_ [connio.ChunkSize - OutboundChunkSize]struct{}
)

// NotifyDrained runs fn once, on the loop goroutine, when at most low bytes
// of c's outbound queue are still unsent (OutboundSize() <= low): at once in
// the next tick if that already holds, otherwise after the send that brings
// the queue down. Unlike SetOutboundLimits it never pauses c's reading, so
// it serves backpressure across connections: a proxy pauses the connection
// it reads from when the other side's queue grows, and resumes it here.
//
//	func (p *toBackend) ReceiveData(c *conn.Conn, data []byte) {
//		p.backend.SendData(data)
//		if p.backend.OutboundSize() > high && !c.Paused() {
//			c.Pause()
//			p.backend.NotifyDrained(low, func(*conn.Conn) { c.Resume() })
//		}
//	}
//
// A later call replaces a pending fn. If c closes first, fn never runs (the
// handler's Unbind says so). It returns ErrClosed once c is closed or
// closing, ErrNotStream on a datagram socket, and an error for a negative
// low or a nil fn.
func (c *Conn) NotifyDrained(low int, fn func(c *Conn)) error {
	if low < 0 {
		return errors.New("conn: NotifyDrained with negative low watermark")
	}
	if fn == nil {
		return errors.New("conn: NotifyDrained with nil function")
	}
	return c.d.NotifyDrained(low, func() { fn(c) })
}
