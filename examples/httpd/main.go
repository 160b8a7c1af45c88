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
//	wrk -t1 -c64 -d5s http://127.0.0.1:8080/
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
// The hot path does not allocate: requests are parsed in place in the
// received bytes, only an incomplete request head is copied (into a buffer
// the connection reuses), and the responses go into a per-connection buffer
// handed to SendData once per read.
//
// It prints one line once listening ("httpd: listening on ADDR (BACKEND)")
// and stops gracefully on SIGINT or SIGTERM. The backend follows
// RINGMACHINE_BACKEND (uring or epoll; io_uring when available otherwise).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
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
	tail     []byte // copy of an incomplete request head from earlier reads
	bodyLeft int64  // body bytes still to skip
	closed   bool   // a response ended the connection: ignore the rest
}

// feed consumes data (valid only during the call), appends the responses to
// out and returns it, and whether the connection must close once they are
// written.
func (s *session) feed(data []byte, out []byte) ([]byte, bool) {
	if s.closed {
		return out, true
	}
	buf := data
	if len(s.tail) > 0 {
		s.tail = append(s.tail, data...)
		buf = s.tail
	}
	for len(buf) > 0 {
		if s.bodyLeft > 0 {
			buf = s.skip(buf)
			continue
		}
		r, n, code := parseRequest(buf, maxHeaderBytes)
		if code != statusOK {
			s.closed = true
			s.tail = s.tail[:0]
			return appendError(out, s.clock.date, code), true
		}
		if n == 0 {
			break
		}
		buf = buf[n:]
		out = appendHello(out, s.clock.date, &r)
		s.bodyLeft = r.contentLength
		if !r.keepAlive {
			s.closed = true
			s.tail = s.tail[:0]
			return out, true
		}
	}
	// Keep the incomplete head (shorter than maxHeaderBytes). buf may alias
	// s.tail: append copies with memmove semantics.
	s.tail = append(s.tail[:0], buf...)
	return out, false
}

// skip drops up to s.bodyLeft bytes of body from the front of b.
func (s *session) skip(b []byte) []byte {
	n := min(int64(len(b)), s.bodyLeft)
	s.bodyLeft -= n
	return b[n:]
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

// handler is one connection: its session and its reusable response buffer.
type handler struct {
	conn.Base
	s   session
	out []byte
}

func (h *handler) ReceiveData(c *conn.Conn, data []byte) {
	out, closing := h.s.feed(data, h.out[:0])
	if len(out) > 0 {
		_ = c.SendData(out) // copies
	}
	if cap(out) <= 64<<10 {
		h.out = out // keep a reasonably sized buffer for the next read
	}
	if closing {
		_ = c.CloseAfterWriting()
	}
}

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("httpd", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen on `host:port` (or unix:/path)")
	loops := fs.Int("loops", 1, "number of reactors, each with its own SO_REUSEPORT listener (0: one per core)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *loops < 0 {
		return fmt.Errorf("-loops %d: must be 0 (one per core) or more", *loops)
	}
	g, err := loop.NewGroup(*loops, loop.Options{})
	if err != nil {
		return err
	}
	// One Date clock per loop, refreshed by that loop's timer: handlers read
	// their own loop's clock, so nothing is shared between reactors.
	clocks := make([]clock, g.Len())
	srv, err := g.StartServer(*addr, func(l *loop.Loop) conn.Handler {
		return &handler{s: session{clock: &clocks[l.Index()]}}
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
		fmt.Fprintf(stdout, "httpd: listening on %s (%s, %d loops)\n", srv.Addr(), l.Backend(), g.Len())
	})
	return errors.Join(startErr, err)
}
