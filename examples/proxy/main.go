// Command proxy is a TCP forwarding proxy: every connection it accepts on
// -addr gets a connection of its own to -to, and the bytes flow both ways.
// By default each connection proxies to the other (conn.Conn.ProxyTo): the
// kernel splices the bytes from socket to socket and they never reach the
// handlers. With -copy they flow through the handlers instead (ReceiveData
// on one side, SendData on the other), the recipe for a proxy that looks at
// or changes what it forwards.
//
//	go run ./examples/proxy -addr 127.0.0.1:10001 -to 127.0.0.1:10000
//
// What makes it a proxy people can run:
//
//   - Backpressure across connections. ProxyTo stops reading from one side
//     while -buffer bytes wait to be sent to the other. With -copy the
//     handlers do the same by hand: when one side's outbound queue grows
//     past -buffer bytes (its peer reads slower than the other side writes),
//     the proxy pauses reading from the other side and resumes it once the
//     queue has drained to a quarter of that (conn.Conn.NotifyDrained). A
//     client that never reads holds at most about -buffer bytes per
//     direction in the proxy, whatever the backend sends.
//   - The kernel's buffers count too: by default Linux grows a socket's
//     receive buffer up to tcp_rmem's maximum (32 MiB on some systems), so
//     a client that never reads can park tens of MiB in the kernel before
//     the proxy's own bound matters; -sockbuf fixes every socket's buffers.
//   - Half-close is forwarded: a side that shuts down its sending side
//     (shutdown(SHUT_WR)) has it shut down on the other connection too,
//     after everything it sent; the reply still flows back (conn.HalfCloser).
//   - A side that goes away closes the other once its queued bytes are sent;
//     a connection idle for -idle in both directions is closed.
//   - A backend that cannot be reached closes the client's connection, and
//     the reason is printed.
//
// It stops gracefully on SIGINT or SIGTERM. The backend follows
// RINGMACHINE_BACKEND.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "proxy:", err)
		os.Exit(1)
	}
}

// stderr receives the connection failures the proxy reports and survives (a
// variable for the tests).
var stderr io.Writer = os.Stderr

// observe, when set (by tests, before the proxy starts), sees after each
// forwarded read (-copy) the bytes queued towards the side written to.
var observe func(queued int)

// settings are the proxy's limits, shared by all its connections.
type settings struct {
	to        string
	high, low int // pause the reading side above high, resume at low
	idle      time.Duration
	copy      bool // through the handlers, not ProxyTo
}

// side is the handler of one of a pair's two connections: it forwards what
// it receives to peer.
type side struct {
	conn.Base
	cfg  *settings
	name string     // "client" or "backend", for messages
	peer *conn.Conn // the other connection (nil until the backend exists)
	// other is the handler of peer, to tell it when this side ends.
	other *side
	// eof: the peer of this connection half-closed (ReceiveEOF ran);
	// shut: this connection's sending side is shut down.
	eof, shut bool
}

// PostInit runs for each accepted client: it connects to the backend. What
// the client sends meanwhile is queued on the backend connection until it
// is established.
func (s *side) PostInit(c *conn.Conn) {
	if s.name != "client" {
		return
	}
	_ = c.SetInactivityTimeout(s.cfg.idle)
	b := &side{cfg: s.cfg, name: "backend", peer: c, other: s}
	bc, err := loop.Of(c).Connect(s.cfg.to, b)
	if err != nil {
		fmt.Fprintf(stderr, "proxy: %s: %v\n", c.RemoteAddr(), err)
		_ = c.Close()
		return
	}
	_ = bc.SetInactivityTimeout(s.cfg.idle)
	s.peer, s.other = bc, b
	if !s.cfg.copy {
		// The backend is still connecting: what the client sends waits in
		// its queue until it is up.
		_ = c.ProxyTo(bc, s.cfg.high)
		_ = bc.ProxyTo(c, s.cfg.high)
	}
}

// ReceiveData forwards data to the other connection and pauses this one
// while the other's queue is above the high watermark.
func (s *side) ReceiveData(c *conn.Conn, data []byte) {
	if s.peer == nil {
		return
	}
	if err := s.peer.SendData(data); err != nil {
		// The other side is closing: nothing more can be forwarded.
		_ = c.Close()
		return
	}
	queued := s.peer.OutboundSize()
	if observe != nil {
		observe(queued)
	}
	if queued > s.cfg.high && !c.Paused() {
		c.Pause()
		_ = s.peer.NotifyDrained(s.cfg.low, func(*conn.Conn) { c.Resume() })
	}
}

// ReceiveEOF forwards a half-close: the other connection's sending side is
// shut down once it has sent everything this side sent. The pair closes
// once both directions are done.
func (s *side) ReceiveEOF(c *conn.Conn) {
	s.eof = true
	if s.peer == nil {
		_ = c.Close()
		return
	}
	_ = s.peer.CloseWrite()
	s.other.shut = true
	if s.shut {
		// This side's own sending side was shut down already: both
		// directions are over.
		_ = c.CloseAfterWriting()
	}
	if s.other.eof {
		_ = s.peer.CloseAfterWriting()
	}
}

// Unbind closes the other connection once its queue is sent, and reports a
// backend that failed.
func (s *side) Unbind(c *conn.Conn, reason error) {
	if s.name == "backend" && reason != nil && !errors.Is(reason, io.EOF) {
		fmt.Fprintf(stderr, "proxy: backend %s: %v\n", s.cfg.to, reason)
	}
	if s.peer != nil {
		_ = s.peer.CloseAfterWriting()
	}
}

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:10001", "listen on `host:port` (or unix:/path)")
	to := fs.String("to", "127.0.0.1:10000", "forward to `host:port` (or unix:/path)")
	buffer := fs.Int("buffer", 256<<10, "pause a side when more than this many `bytes` wait to be sent to the other")
	idle := fs.Duration("idle", 5*time.Minute, "close a connection idle this long in both directions (0: never)")
	copyMode := fs.Bool("copy", false, "forward through the handlers (ReceiveData, SendData) instead of splicing")
	spliceWorker := fs.Bool("splice-worker", false, "io_uring: splice on kernel worker threads (IORING_OP_SPLICE), not on the loop's")
	sockBuf := fs.Int("sockbuf", 0, "set every socket's kernel receive and send buffers to this many `bytes` (0: the kernel's autotuning, up to tcp_rmem's maximum)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *buffer <= 0 {
		return fmt.Errorf("-buffer %d: must be positive", *buffer)
	}
	if *idle < 0 {
		return fmt.Errorf("-idle %v: must not be negative", *idle)
	}
	if _, _, err := conn.ParseAddr(*to); err != nil {
		return fmt.Errorf("-to: %w", err)
	}
	cfg := &settings{to: *to, high: *buffer, low: *buffer / 4, idle: *idle, copy: *copyMode}
	if *sockBuf < 0 {
		return fmt.Errorf("-sockbuf %d: must not be negative", *sockBuf)
	}
	l, err := loop.New(loop.Options{
		URing:  loop.URingOptions{SpliceWorker: *spliceWorker},
		Socket: loop.SocketOptions{ReadBuffer: *sockBuf, WriteBuffer: *sockBuf},
	})
	if err != nil {
		return err
	}
	return l.RunContext(ctx, func(l *loop.Loop) error {
		srv, err := l.StartServer(*addr, func() conn.Handler { return &side{cfg: cfg, name: "client"} })
		if err != nil {
			return err
		}
		how := "splice"
		if cfg.copy {
			how = "copy"
		}
		fmt.Fprintf(stdout, "proxy: listening on %s, forwarding to %s (%s, %s)\n", srv.Addr(), cfg.to, l.Backend(), how)
		return nil
	})
}
