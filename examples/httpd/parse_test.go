package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRequest(t *testing.T) {
	long := "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n"
	for _, tt := range []struct {
		name    string
		in      string
		code    int
		n       int // -1: len(in)
		keep    bool
		minor   int
		cl      int64
		method  string
		target  string
		partial bool // n == 0, need more
	}{
		{name: "minimal 1.1", in: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", n: -1, keep: true, minor: 1, method: "GET", target: "/"},
		{name: "bare LF", in: "GET /x HTTP/1.1\nHost: a\n\n", n: -1, keep: true, minor: 1, method: "GET", target: "/x"},
		{name: "leading empty lines", in: "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", n: -1, keep: true, minor: 1, method: "GET", target: "/"},
		{name: "pipelined: first only", in: "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n", n: 28, keep: true, minor: 1, method: "GET", target: "/1"},
		{name: "connection close", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", n: -1, minor: 1, method: "GET", target: "/"},
		{name: "connection list", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, close\r\n\r\n", n: -1, minor: 1, method: "GET", target: "/"},
		{name: "1.0 closes", in: "GET / HTTP/1.0\r\n\r\n", n: -1, method: "GET", target: "/"},
		{name: "1.0 keep-alive", in: "GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n", n: -1, keep: true, method: "GET", target: "/"},
		{name: "content-length", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", n: 48, keep: true, minor: 1, cl: 5, method: "POST", target: "/p"},
		{name: "same content-length twice", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length:5\r\n\r\n", n: -1, keep: true, minor: 1, cl: 5, method: "POST", target: "/"},
		{name: "header OWS", in: "GET / HTTP/1.1\r\nHost:a\r\nX-Y: \t v \t\r\n\r\n", n: -1, keep: true, minor: 1, method: "GET", target: "/"},
		{name: "head", in: "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", n: -1, keep: true, minor: 1, method: "HEAD", target: "/"},

		{name: "empty", in: "", partial: true},
		{name: "partial request line", in: "GET / HT", partial: true},
		{name: "partial headers", in: "GET / HTTP/1.1\r\nHost: a\r\n", partial: true},
		{name: "partial CR", in: "GET / HTTP/1.1\r\nHost: a\r\n\r", partial: true},
		{name: "only CRLFs", in: "\r\n\r\n\r\n", partial: true},

		{name: "no target", in: "GET HTTP/1.1\r\n\r\n", code: statusBadRequest},
		{name: "two spaces", in: "GET  / HTTP/1.1\r\n\r\n", code: statusBadRequest},
		{name: "bad method", in: "G(T / HTTP/1.1\r\n\r\n", code: statusBadRequest},
		{name: "garbage", in: "hello\r\n\r\n", code: statusBadRequest},
		{name: "bad version", in: "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", code: statusBadRequest},
		{name: "lower-case version", in: "GET / http/1.1\r\n\r\n", code: statusBadRequest},
		{name: "HTTP/2.0", in: "GET / HTTP/2.0\r\n\r\n", code: statusVersionNotSupported},
		{name: "control in target", in: "GET /\x01 HTTP/1.1\r\n\r\n", code: statusBadRequest},
		{name: "header without colon", in: "GET / HTTP/1.1\r\nHost a\r\n\r\n", code: statusBadRequest},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", code: statusBadRequest},
		{name: "empty header name", in: "GET / HTTP/1.1\r\n: a\r\n\r\n", code: statusBadRequest},
		{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", code: statusBadRequest},
		{name: "control in value", in: "GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", code: statusBadRequest},
		{name: "bare CR in value", in: "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", code: statusBadRequest},
		{name: "missing host", in: "GET / HTTP/1.1\r\n\r\n", code: statusBadRequest},
		{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", code: statusBadRequest},
		{name: "bad content-length", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", code: statusBadRequest},
		{name: "negative content-length", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", code: statusBadRequest},
		{name: "huge content-length", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999999\r\n\r\n", code: statusBadRequest},
		{name: "conflicting content-length", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", code: statusBadRequest},
		{name: "chunked", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", code: statusNotImplemented},
		{name: "chunked and length", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", code: statusBadRequest},
		{name: "head too large", in: long, code: statusHeaderTooLarge},
		{name: "incomplete head too large", in: long[:maxHeaderBytes], code: statusHeaderTooLarge},
		{name: "incomplete head just below", in: long[:maxHeaderBytes-1], partial: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, n, code := parseRequest([]byte(tt.in), maxHeaderBytes)
			switch {
			case tt.partial:
				assert.Equal(t, statusOK, code)
				assert.Zero(t, n)
			case tt.code != 0:
				assert.Equal(t, tt.code, code)
				assert.Zero(t, n)
			default:
				require.Equal(t, statusOK, code)
				want := tt.n
				if want < 0 {
					want = len(tt.in)
				}
				assert.Equal(t, want, n)
				assert.Equal(t, tt.keep, r.keepAlive, "keep-alive")
				assert.Equal(t, tt.minor, r.minor)
				assert.Equal(t, tt.cl, r.contentLength)
				assert.Equal(t, tt.method, string(r.method))
				assert.Equal(t, tt.target, string(r.target))
			}
		})
	}
}

func testClock() *clock {
	c := &clock{}
	c.set(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	return c
}

const testDate = "Tue, 02 Jan 2024 03:04:05 GMT"

const hello = "HTTP/1.1 200 OK\r\nServer: RingMachine\r\nDate: " + testDate +
	"\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"

func TestSession(t *testing.T) {
	get := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, tt := range []struct {
		name   string
		chunks []string
		want   string
		close  bool
	}{
		{name: "one", chunks: []string{get}, want: hello},
		{name: "pipelined", chunks: []string{get + get + get}, want: hello + hello + hello},
		{name: "split", chunks: []string{"GET / HT", "TP/1.1\r\nHo", "st: a\r\n", "\r", "\n"}, want: hello},
		{name: "body skipped", chunks: []string{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" + get}, want: hello + hello},
		{name: "body across reads", chunks: []string{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab", "cdefg", "hij" + get[:5], get[5:]}, want: hello + hello},
		{name: "GET / looking body", chunks: []string{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 27\r\n\r\n", get, get}, want: hello + hello},
		{name: "close", chunks: []string{"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + get}, close: true,
			want: strings.Replace(hello, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)},
		{name: "1.0", chunks: []string{"GET / HTTP/1.0\r\n\r\n"}, close: true,
			want: strings.Replace(hello, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)},
		{name: "1.0 keep-alive", chunks: []string{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
			want: strings.Replace(hello, "\r\n\r\n", "\r\nConnection: keep-alive\r\n\r\n", 1)},
		{name: "head", chunks: []string{"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"}, want: strings.TrimSuffix(hello, helloBody)},
		{name: "bad after good", chunks: []string{get + "BAD\r\n\r\n" + get}, close: true,
			want: hello + "HTTP/1.1 400 Bad Request\r\nServer: RingMachine\r\nDate: " + testDate +
				"\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request"},
		{name: "ignores data after close", chunks: []string{"garbage\r\n\r\n", get}, close: true,
			want: "HTTP/1.1 400 Bad Request\r\nServer: RingMachine\r\nDate: " + testDate +
				"\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request"},
		{name: "431", chunks: []string{"GET / HTTP/1.1\r\n", strings.Repeat("X-A: b\r\n", 2000)}, close: true,
			want: "HTTP/1.1 431 Request Header Fields Too Large\r\nServer: RingMachine\r\nDate: " + testDate +
				"\r\nContent-Type: text/plain\r\nContent-Length: 31\r\nConnection: close\r\n\r\nRequest Header Fields Too Large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := session{clock: testClock()}
			var got []byte
			var closing bool
			for _, c := range tt.chunks {
				got, closing = s.feed([]byte(c), got)
			}
			assert.Equal(t, tt.want, string(got))
			assert.Equal(t, tt.close, closing)
		})
	}
}

// TestSessionNoAlloc checks the hot path: pipelined requests, one of them
// split across reads, do not allocate once the buffers have grown.
func TestSessionNoAlloc(t *testing.T) {
	s := session{clock: testClock()}
	req := []byte("GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/plain\r\nConnection: keep-alive\r\n\r\n")
	batch := bytes.Repeat(req, 16)
	batch = append(batch, req[:40]...)
	rest := req[40:]
	out := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		out, _ = s.feed(batch, out[:0])
		out, _ = s.feed(rest, out[:0])
	})
	assert.Zero(t, allocs)
}

func BenchmarkSession(b *testing.B) {
	s := session{clock: testClock()}
	req := []byte("GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/plain,text/html;q=0.9\r\nConnection: keep-alive\r\n\r\n")
	batch := bytes.Repeat(req, 16)
	out := make([]byte, 0, 4096)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		out, _ = s.feed(batch, out[:0])
	}
}

// FuzzParse feeds a stream to a session at once and in the chunks cuts
// describes: nothing panics, the kept tail stays below the head cap, and
// the responses and the close decision do not depend on the chunking.
func FuzzParse(f *testing.F) {
	get := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, seed := range []string{
		get,
		strings.Repeat(get, 10),
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" + get,
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get + "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + get,
		"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nBAD\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"\r\n\n" + get,
		"GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 1500) + "\r\n",
	} {
		f.Add([]byte(seed), []byte{1, 7, 3, 200})
	}
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		whole := session{clock: testClock()}
		want, wantClose := whole.feed(bytes.Clone(stream), nil)
		if whole.in.len() >= maxHeaderBytes {
			t.Fatalf("kept %d bytes", whole.in.len())
		}

		chunked := session{clock: testClock()}
		var got []byte
		var gotClose bool
		rest := stream
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, 1+int(cuts[i%len(cuts)]))
			}
			chunk := bytes.Clone(rest[:n])
			got, gotClose = chunked.feed(chunk, got)
			clear(chunk) // the session must have copied what it keeps
			rest = rest[n:]
			if chunked.in.len() >= maxHeaderBytes {
				t.Fatalf("kept %d bytes", chunked.in.len())
			}
		}
		if !bytes.Equal(want, got) || wantClose != gotClose {
			t.Fatalf("chunking changed the answer:\nwhole   %q (close %v)\nchunked %q (close %v)", want, wantClose, got, gotClose)
		}

		// With an output limit (as when the client does not read its
		// responses), answering in steps gives the same answer.
		limited := session{clock: testClock(), limit: 1 + int(len(cuts))*50}
		got, gotClose = limited.feed(bytes.Clone(stream), nil)
		for i := 0; limited.backlog; i++ {
			if i > len(stream) {
				t.Fatal("the backlog does not shrink")
			}
			got, gotClose = limited.feed(nil, got)
		}
		if !bytes.Equal(want, got) || wantClose != gotClose {
			t.Fatalf("answering in steps changed the answer:\nwhole   %q (close %v)\nsteps   %q (close %v)", want, wantClose, got, gotClose)
		}
	})
}
