// Package proto holds the request handling the peer servers (Go net and
// gnet) share, so that they differ only in their networking: an HTTP
// plaintext responder and a RESP (Redis protocol) subset, both answering
// every complete request of a read with one buffer, like RingMachine's
// examples/httpd and examples/redis. They implement what the benchmarks
// send (wrk GETs, redis-benchmark PING/SET/GET/CONFIG), not the examples'
// full error handling.
package proto

import (
	"bytes"
	"sync/atomic"
	"time"
)

var date atomic.Pointer[[]byte]

func init() {
	setDate(time.Now())
	go func() {
		for t := range time.Tick(time.Second) {
			setDate(t)
		}
	}()
}

func setDate(t time.Time) {
	b := t.UTC().AppendFormat(nil, "Mon, 02 Jan 2006 15:04:05 GMT")
	date.Store(&b)
}

// HTTP is the state of one HTTP connection.
type HTTP struct {
	tail []byte
}

var (
	crlfcrlf = []byte("\r\n\r\n")
	connHdr  = []byte("\r\nConnection: close")
)

// Feed consumes data (valid only during the call) and appends to out the
// answer to every complete request head in it: the same plaintext
// "Hello, World!" response as examples/httpd. closing reports
// "Connection: close".
func (s *HTTP) Feed(data, out []byte) (_ []byte, closing bool) {
	buf := data
	if len(s.tail) > 0 {
		s.tail = append(s.tail, data...)
		buf = s.tail
	}
	d := *date.Load()
	for {
		i := bytes.Index(buf, crlfcrlf)
		if i < 0 {
			break
		}
		head := buf[:i+2]
		buf = buf[i+4:]
		out = append(out, "HTTP/1.1 200 OK\r\nServer: RingMachine\r\nDate: "...)
		out = append(out, d...)
		out = append(out, "\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"...)
		if bytes.Contains(head, connHdr) {
			out = append(out, "Connection: close\r\n\r\nHello, World!"...)
			s.tail = s.tail[:0]
			return out, true
		}
		out = append(out, "\r\nHello, World!"...)
	}
	s.tail = append(s.tail[:0], buf...)
	return out, false
}
