// Command httpd is a minimal HTTP/1.1 server on RingMachine answering
// "Hello, World!" in the shape of the TechEmpower plaintext benchmark:
//
//	HTTP/1.1 200 OK
//	Server: RingMachine
//	Date: Mon, 02 Jan 2006 15:04:05 GMT
//	Content-Type: text/plain
//	Content-Length: 13
//
//	Hello, World!
//
// Usage:
//
//	go run ./examples/httpd                      # listens on 127.0.0.1:8080
//	go run ./examples/httpd -addr 127.0.0.1:0    # any free port
//	go run ./examples/httpd -loops 0             # one reactor per core
//	go run ./examples/httpd -header-timeout 5s -idle-timeout 30s
//	go run ./examples/httpd -tls-cert cert.pem -tls-key key.pem   # HTTPS
//	wrk -t1 -c64 -d5s http://127.0.0.1:8080/
//
// With -tls-cert and -tls-key (PEM files, as crypto/tls.LoadX509KeyPair
// reads them) every connection starts TLS at once (conn.Conn.StartTLS):
// HTTPS with HTTP/1.1 (ALPN "http/1.1"); the timeouts below count the
// handshake too, which is also bounded by the loop's TLS handshake timeout.
//
// Behaviour:
//
//   - Every method and every path gets the plaintext answer (HEAD without
//     its body); there is no 404.
//   - Connections are kept alive (HTTP/1.1 by default, HTTP/1.0 with
//     "Connection: keep-alive") and requests may be pipelined: all the
//     requests of one read are answered, in order, with one send.
//   - "Connection: close", or HTTP/1.0 without keep-alive, closes the
//     connection once the response is written.
//   - A request body announced by Content-Length is read and discarded,
//     across reads if need be. Transfer-Encoding (chunked bodies) is not
//     supported: 501 Not Implemented, then close.
//   - A malformed request line or header field, an HTTP/1.1 request without
//     Host, or conflicting Content-Length values get 400 Bad Request; a head
//     (request line and header fields) longer than 8 KiB gets 431 Request
//     Header Fields Too Large; a version other than HTTP/1.0 and 1.1 gets
//     505. Each of them closes the connection after the answer.
//   - The Date header is formatted once a second by a periodic timer, not
//     per request.
//
// Hostile and slow clients:
//
//   - A client that pipelines requests without reading the responses holds
//     at most about 256 KiB of them: above that (the high watermark of
//     conn.Conn.SetOutboundLimits) the server stops reading from it, and
//     the requests already received wait unanswered until the queue drains
//     to 64 KiB (Drained). Every response is still delivered once the
//     client reads, also when the client shut down its sending side
//     meanwhile: the connection closes after the last response. (Measured
//     with bench/hostile: README.)
//   - -header-timeout (default 10s): a connection whose request head, or
//     announced body, stays incomplete that long is closed (slowloris).
//     The time does not run while the server itself is not reading.
//   - -idle-timeout (default 60s): a connection with no traffic either
//     way for that long is closed, including one whose client stopped
//     reading its responses. 0 disables either timeout.
//   - Errors no connection can take, such as accept failing with EMFILE
//     when out of file descriptors, are printed to stderr ("httpd: ...")
//     and the server goes on (the loop retries the accept).
//
// The hot path does not allocate: requests are parsed in place in the
// received bytes, only an incomplete request head (or a backlog held while
// the client does not read) is copied, into a buffer the connection reuses,
// and the responses go into a per-connection buffer handed to SendData
// every 16 KiB or so.
//
// It prints one line once listening ("httpd: listening on ADDR (BACKEND)")
// and stops gracefully on SIGINT or SIGTERM. The backend follows
// RINGMACHINE_BACKEND (uring or epoll; io_uring when available otherwise).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "httpd:", err)
		os.Exit(1)
	}
}

// dateLayout is http.TimeFormat (RFC 1123 with GMT).
const dateLayout = "Mon, 02 Jan 2006 15:04:05 GMT"

// clock holds the Date header value, refreshed by a periodic timer on the
// loop goroutine and read by every connection of that loop.
type clock struct{ date []byte }

func (c *clock) set(t time.Time) { c.date = t.UTC().AppendFormat(c.date[:0], dateLayout) }

// session is the protocol state of one connection, independent of the
// network so that tests and the fuzz target can drive it directly.
type session struct {
	clock    *clock
	in       inbuf // received and not consumed: an incomplete head, or a backlog
	bodyLeft int64 // body bytes still to skip
	// limit > 0 makes feed stop answering once it appended more than limit
	// bytes to out; the rest of the input waits in in (see backlog).
	limit   int
	backlog bool   // in may hold complete requests: call feed again
	closed  bool   // a response ended the connection: ignore the rest
	heads   uint64 // request heads consumed
}

// keepBuffer is the largest input buffer a connection keeps once empty.
const keepBuffer = 64 << 10

// feed consumes data (valid only during the call), appends the responses to
// out and returns it, and whether the connection must close once they are
// written. With s.limit set, it stops once it appended more than the limit
// and keeps the unanswered requests (s.backlog): feed(nil, ...) goes on.
func (s *session) feed(data []byte, out []byte) ([]byte, bool) {
	if s.closed {
		return out, true
	}
	buffered := s.in.len() > 0
	buf := data
	if buffered {
		s.in.add(data)
		buf = s.in.pending()
	}
	s.backlog = false
	done := 0 // bytes of buf consumed
	for start := len(out); done < len(buf); {
		if s.bodyLeft > 0 {
			n := min(int64(len(buf)-done), s.bodyLeft)
			s.bodyLeft -= n
			done += int(n)
			continue
		}
		if s.limit > 0 && len(out)-start > s.limit {
			s.backlog = true
			break
		}
		r, n, code := parseRequest(buf[done:], maxHeaderBytes)
		if code != statusOK {
			s.close()
			return appendError(out, s.clock.date, code), true
		}
		if n == 0 {
			break
		}
		done += n
		s.heads++
		out = appendHello(out, s.clock.date, &r)
		s.bodyLeft = r.contentLength
		if !r.keepAlive {
			s.close()
			return out, true
		}
	}
	// Keep the incomplete head (shorter than maxHeaderBytes) or the backlog.
	if buffered {
		s.in.consume(done, keepBuffer)
	} else if done < len(buf) {
		s.in.add(buf[done:])
	}
	return out, false
}

// close ends the session and drops what it holds.
func (s *session) close() {
	s.closed = true
	s.backlog = false
	s.in = inbuf{}
}

// incomplete reports whether part of a request (head or body) was received
// and not all of it (a backlog of complete requests is not incomplete).
func (s *session) incomplete() bool {
	return !s.closed && !s.backlog && (s.in.len() > 0 || s.bodyLeft > 0)
}

const helloBody = "Hello, World!"

func appendHello(out, date []byte, r *request) []byte {
	out = append(out, "HTTP/1.1 200 OK\r\nServer: RingMachine\r\nDate: "...)
	out = append(out, date...)
	out = append(out, "\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"...)
	switch {
	case !r.keepAlive:
		out = append(out, "Connection: close\r\n"...)
	case r.minor == 0:
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	out = append(out, "\r\n"...)
	if string(r.method) != "HEAD" {
		out = append(out, helloBody...)
	}
	return out
}

func appendError(out, date []byte, code int) []byte {
	var reason string
	switch code {
	case statusBadRequest:
		reason = "Bad Request"
	case statusHeaderTooLarge:
		reason = "Request Header Fields Too Large"
	case statusNotImplemented:
		reason = "Not Implemented"
	case statusVersionNotSupported:
		reason = "HTTP Version Not Supported"
	default:
		code, reason = 500, "Internal Server Error"
	}
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, ' ')
	out = append(out, reason...)
	out = append(out, "\r\nServer: RingMachine\r\nDate: "...)
	out = append(out, date...)
	out = append(out, "\r\nContent-Type: text/plain\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(reason)), 10)
	out = append(out, "\r\nConnection: close\r\n\r\n"...)
	return append(out, reason...)
}

// Outbound watermarks of every connection (conn.Conn.SetOutboundLimits):
// reading from a client pauses while more than outHigh bytes of responses
// wait for it, and resumes at outLow. A client that pipelines without
// reading its responses thus holds at most about outHigh bytes of them
// (plus what the loop had already received when reading paused).
const (
	outLow  = 64 << 10
	outHigh = 256 << 10
	// step bounds the output of one feed call (see handler.ReceiveData).
	step = conn.OutboundChunkSize
)

// handler is one connection: its session, its reusable response buffer and
// its timeouts.
type handler struct {
	s   session
	out []byte
	l   *loop.Loop
	cfg *config

	since time.Time   // when the incomplete request (head or body) started
	seen  uint64      // s.heads when since was set
	eof   bool        // the client sent its last byte (ReceiveEOF)
	timer *loop.Timer // checks the header timeout; nil when not armed
	fire  func()
}

// config is what run's flags set for every connection.
type config struct {
	headerTimeout, idleTimeout time.Duration
	tls                        *tls.Config // nil: plaintext
}

func (h *handler) PostInit(c *conn.Conn) {
	if h.cfg.tls != nil {
		if err := c.StartTLS(h.cfg.tls); err != nil {
			fmt.Fprintln(stderr, "httpd:", err)
			_ = c.Close()
			return
		}
	}
	_ = c.SetOutboundLimits(outLow, outHigh, 0)
	if h.cfg.idleTimeout > 0 {
		_ = c.SetInactivityTimeout(h.cfg.idleTimeout)
	}
}

func (*handler) ConnectionCompleted(*conn.Conn) {}

func (h *handler) ReceiveData(c *conn.Conn, data []byte) {
	// Answer in steps of about 16 KiB, so that SendData queues the replies
	// in the loop's recycled chunks and the reply buffer stays small, until
	// the input is consumed or the client is not keeping up (above the high
	// watermark reading pauses, and Drained goes on).
	for {
		h.s.limit = step
		out, closing := h.s.feed(data, h.out[:0])
		data = nil
		if len(out) > 0 {
			_ = c.SendData(out) // copies
		}
		if cap(out) <= 64<<10 {
			h.out = out // keep a reasonably sized buffer for the next step
		}
		if closing {
			_ = c.CloseAfterWriting()
			return
		}
		if !h.s.backlog || c.OutboundSize() > outHigh {
			break
		}
	}
	if h.eof && !h.s.backlog {
		_ = c.CloseAfterWriting()
		return
	}
	if observe != nil {
		observe(c.OutboundSize(), h.s.in.len())
	}
	h.watch(c)
}

// observe, when set (by tests, before the server starts), sees after each
// read the bytes queued for the client and the bytes received and not
// answered yet.
var observe func(queued, buffered int)

// Drained answers the requests left waiting while the client was not
// reading its responses.
func (h *handler) Drained(c *conn.Conn) {
	if h.s.backlog {
		h.ReceiveData(c, nil)
	}
}

// ReceiveEOF: the client sends nothing more. The connection closes once the
// requests already received are answered, which may wait for Drained: left
// to the loop, the EOF would close the connection with them unanswered.
func (h *handler) ReceiveEOF(c *conn.Conn) {
	h.eof = true
	if !h.s.backlog {
		_ = c.CloseAfterWriting()
	}
}

func (h *handler) Unbind(*conn.Conn, error) {
	h.s.close()
	h.timer.Cancel()
	h.timer = nil
}

// watch arms the header timeout when a request is incomplete. One timer
// per connection at most: when it fires it closes the connection if the
// request then in progress started a full timeout ago, and otherwise
// re-arms for the rest of that request's time.
func (h *handler) watch(c *conn.Conn) {
	if h.cfg.headerTimeout <= 0 {
		return
	}
	if !h.s.incomplete() {
		h.since = time.Time{}
		return
	}
	if h.since.IsZero() || h.seen != h.s.heads {
		// A new request (or its body) is in progress; it started with
		// this read, near enough.
		h.since, h.seen = h.l.Now(), h.s.heads
	}
	if h.timer.Pending() {
		return
	}
	if h.fire == nil {
		h.fire = func() { h.check(c) }
	}
	h.timer, _ = h.l.AddTimer(max(h.since.Add(h.cfg.headerTimeout).Sub(h.l.Now()), 0), h.fire)
}

func (h *handler) check(c *conn.Conn) {
	h.timer = nil
	if c.Closing() || !h.s.incomplete() || h.since.IsZero() {
		return
	}
	if c.Paused() {
		// Not reading because the client is not reading its responses:
		// the idle timeout deals with a client stuck there.
		h.since = h.l.Now()
	}
	if left := h.since.Add(h.cfg.headerTimeout).Sub(h.l.Now()); left > 0 {
		h.timer, _ = h.l.AddTimer(left, h.fire)
		return
	}
	_ = c.Close()
}

// Defaults of the flags that protect the server from slow or idle clients.
const (
	defaultHeaderTimeout = 10 * time.Second
	defaultIdleTimeout   = 60 * time.Second
)

// stderr receives the errors the server reports and survives (a variable
// for the tests).
var stderr io.Writer = os.Stderr

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("httpd", flag.ContinueOnError)
	fs.SetOutput(stderr) // usage and flag errors
	addr := fs.String("addr", "127.0.0.1:8080", "listen on `host:port` (or unix:/path)")
	loops := fs.Int("loops", 1, "number of reactors, each with its own SO_REUSEPORT listener (0: one per core)")
	headerTimeout := fs.Duration("header-timeout", defaultHeaderTimeout, "close a connection whose request head (or body) stays incomplete this long (0: never)")
	idleTimeout := fs.Duration("idle-timeout", defaultIdleTimeout, "close a connection after this long without traffic (0: never)")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this PEM certificate `file` (with -tls-key)")
	tlsKey := fs.String("tls-key", "", "the PEM private key `file` of -tls-cert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *loops < 0:
		return fmt.Errorf("-loops %d: must be 0 (one per core) or more", *loops)
	case *headerTimeout < 0:
		return fmt.Errorf("-header-timeout %v: must not be negative", *headerTimeout)
	case *idleTimeout < 0:
		return fmt.Errorf("-idle-timeout %v: must not be negative", *idleTimeout)
	}
	cfg := &config{headerTimeout: *headerTimeout, idleTimeout: *idleTimeout}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		cfg.tls = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	}
	var (
		mu       sync.Mutex
		panicErr error
		g        *loop.Group
	)
	// Accept failures (EMFILE, ...) are printed and the server goes on (the
	// loop retries the accept); a panic in a handler stops the server and
	// run returns it. Each loop calls it on its own goroutine.
	onError := func(err error) {
		if pe := (*loop.PanicError)(nil); errors.As(err, &pe) {
			mu.Lock()
			if panicErr == nil {
				panicErr = err
			}
			mu.Unlock()
			g.Stop()
			return
		}
		fmt.Fprintln(stderr, "httpd:", err)
	}
	g, err := loop.NewGroup(*loops, loop.Options{ErrorHandler: onError})
	if err != nil {
		return err
	}
	// One Date clock per loop, refreshed by that loop's timer: handlers read
	// their own loop's clock, so nothing is shared between reactors.
	clocks := make([]clock, g.Len())
	srv, err := g.StartServer(*addr, func(l *loop.Loop) conn.Handler {
		return &handler{s: session{clock: &clocks[l.Index()]}, l: l, cfg: cfg}
	})
	if err != nil {
		return err
	}
	var startErr error
	err = g.Run(func(l *loop.Loop) {
		clk := &clocks[l.Index()]
		clk.set(time.Now())
		if _, err := l.AddPeriodicTimer(time.Second, func() { clk.set(time.Now()) }); err != nil {
			startErr = err // written by at most one loop: it then stops the group
			g.Stop()
			return
		}
		if l.Index() != 0 {
			return
		}
		stop := context.AfterFunc(ctx, g.Stop)
		_ = l.AddShutdownHook(func() { stop() })
		scheme := "http"
		if cfg.tls != nil {
			scheme = "https"
		}
		fmt.Fprintf(stdout, "httpd: listening on %s (%s, %d loops, %s)\n", srv.Addr(), l.Backend(), g.Len(), scheme)
	})
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(startErr, panicErr, err)
}
