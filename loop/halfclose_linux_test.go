package loop_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// The peer's EOF (DESIGN "Peer EOF"): a client that half-closes right after
// its request still gets every byte of the reply, on both backends.

var halfClose = []struct {
	name string
	fn   func(t *testing.T, b loop.Backend)
}{
	{"RequestThenShutdown", testRequestThenShutdown},
	{"Echo10MBCloseWrite", testEcho10MBCloseWrite},
	{"HalfCloser", testHalfCloser},
	{"HalfCloserCloseWriteFirst", testHalfCloserCloseWriteFirst},
	{"EOFWhilePaused", testEOFWhilePaused},
	{"ForwardedHalfCloseChurn", testForwardedHalfCloseChurn},
}

func TestHalfClose(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		for _, tc := range halfClose {
			t.Run(tc.name, func(t *testing.T) {
				testutil.CheckLeaks(t)
				tc.fn(t, b)
			})
		}
	})
}

// reply is the server's answer to req: larger than one receive buffer's worth
// of small requests, so it can take more than one send.
func reply(req []byte) []byte {
	return bytes.Repeat(append([]byte("reply:"), req...), 64)
}

// testRequestThenShutdown: 1,000 clients each send a request and shut down
// their write side at once; the server replies from ReceiveData. Every reply
// must arrive whole, and each connection unbinds with io.EOF.
func testRequestThenShutdown(t *testing.T, b loop.Backend) {
	const clients, workers = 1000, 16
	g := startLoop(t, b, loop.Options{})
	var unbinds, eofs atomic.Int64
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		return &hazardFunc{
			recv: func(c *conn.Conn, data []byte) { assert.NoError(t, c.SendData(reply(data))) },
			unbind: func(c *conn.Conn, reason error) {
				unbinds.Add(1)
				if reason == io.EOF {
					eofs.Add(1)
				}
			},
		}
	})
	lost := halfClosingClients(t, addr.String(), clients, workers)
	assert.Zero(t, lost, "replies lost to the client's half-close")
	require.Eventually(t, func() bool { return unbinds.Load() == clients }, wait, time.Millisecond)
	assert.Equal(t, int64(clients), eofs.Load(), "every connection unbinds with io.EOF")
	require.NoError(t, g.stop())
}

// halfClosingClients runs clients clients, workers at a time, against the
// server at addr: each sends "request NNNN", shuts down its sending side and
// reads until end of stream, which must be reply(request). It returns how
// many did not get their whole reply (the first three are logged).
func halfClosingClients(t *testing.T, addr string, clients, workers int) int64 {
	var lost atomic.Int64
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				req := []byte(fmt.Sprintf("request %04d", i))
				c, err := net.DialTimeout("tcp", addr, wait)
				if !assert.NoError(t, err) {
					lost.Add(1)
					continue
				}
				_ = c.SetDeadline(time.Now().Add(wait))
				_, err = c.Write(req)
				assert.NoError(t, err)
				assert.NoError(t, c.(*net.TCPConn).CloseWrite())
				got, err := io.ReadAll(c)
				c.Close()
				if err != nil || !bytes.Equal(got, reply(req)) {
					if lost.Add(1) <= 3 {
						t.Logf("client %d: %d of %d reply bytes (err %v)", i, len(got), len(reply(req)), err)
					}
				}
			}
		}()
	}
	for i := range clients {
		next <- i
	}
	close(next)
	wg.Wait()
	return lost.Load()
}

// testEcho10MBCloseWrite: a client writes 10 MB, shuts down its write side
// and reads until EOF: every byte comes back, in order, then EOF.
func testEcho10MBCloseWrite(t *testing.T, b loop.Backend) {
	payload := randomBytes(t, 10<<20)
	g := startLoop(t, b, loop.Options{})
	_, addr := g.startServer("127.0.0.1:0", echoFactory(t))
	c := dial(t, addr)
	go func() {
		if writeOddSized(c, payload) == nil {
			_ = c.(*net.TCPConn).CloseWrite()
		}
	}()
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	require.Equal(t, len(payload), len(got), "echoed length")
	assert.True(t, bytes.Equal(payload, got), "echoed stream differs")
	require.NoError(t, g.stop())
}

// eofHandler is a HalfCloser: it counts what it received and, after the
// peer's EOF, keeps writing from a timer before closing its side.
type eofHandler struct {
	hazardFunc
	t      *testing.T
	l      *loop.Loop
	got    int
	eofAt  int // bytes received when ReceiveEOF ran
	events chan string
	first  bool // CloseWrite before the peer's EOF
}

func (h *eofHandler) ReceiveData(c *conn.Conn, data []byte) {
	h.got += len(data)
	if h.first && h.got == 5 {
		assert.NoError(h.t, c.SendData([]byte("early")))
		assert.NoError(h.t, c.CloseWrite())
	}
}

func (h *eofHandler) ReceiveEOF(c *conn.Conn) {
	h.eofAt = h.got
	h.events <- fmt.Sprintf("eof after %d", h.got)
	if h.first {
		return // closed already in both directions: the loop closes
	}
	assert.False(h.t, c.Closing(), "a HalfCloser's connection stays open")
	_, err := h.l.AddTimer(20*time.Millisecond, func() {
		if err := c.SendData([]byte(fmt.Sprintf("late reply: got %d", h.got))); err != nil {
			h.events <- "send: " + err.Error()
		}
		if err := c.CloseWrite(); err != nil {
			h.events <- "closewrite: " + err.Error()
		}
	})
	if err != nil {
		h.events <- "timer: " + err.Error()
	}
}

func (h *eofHandler) Unbind(c *conn.Conn, reason error) {
	h.events <- fmt.Sprintf("unbind %v", reason)
}

// testHalfCloser: a HalfCloser learns of the EOF after every byte, writes
// afterwards, and the connection closes with io.EOF once it shut down its
// side too.
func testHalfCloser(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	events := make(chan string, 16)
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		return &eofHandler{t: t, l: g.l, events: events}
	})
	c := dial(t, addr)
	payload := randomBytes(t, 256<<10)
	_, err := c.Write(payload)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("late reply: got %d", len(payload)), string(got))
	assert.Equal(t, fmt.Sprintf("eof after %d", len(payload)), nextString(t, events))
	assert.Equal(t, "unbind EOF", nextString(t, events))
	require.NoError(t, g.stop())
}

// testHalfCloserCloseWriteFirst: a HalfCloser that shut down its own side
// before the peer's EOF is closed by the loop at the EOF, with io.EOF.
func testHalfCloserCloseWriteFirst(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	events := make(chan string, 16)
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		return &eofHandler{t: t, l: g.l, events: events, first: true}
	})
	c := dial(t, addr)
	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	got := make([]byte, 5)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, "early", string(got))
	_, err = c.Read(got)
	assert.ErrorIs(t, err, io.EOF, "the server shut down its side")
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	assert.Equal(t, "eof after 5", nextString(t, events))
	assert.Equal(t, "unbind EOF", nextString(t, events))
	require.NoError(t, g.stop())
}

// testEOFWhilePaused: bytes and the EOF arrive while the connection is
// paused; on Resume the bytes are delivered, the replies go out, and only
// then does the connection close with io.EOF.
func testEOFWhilePaused(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 4096)
	var server *conn.Conn
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := newHandler(t)
		h.ev = ev
		h.postInit = func(c *conn.Conn) { server = c; c.Pause() }
		h.receive = func(c *conn.Conn, data []byte) {
			h.record(event{kind: "data", data: string(data)})
			assert.NoError(t, c.SendData(data))
		}
		return h
	})
	c := dial(t, addr)
	expectKind(t, ev, "post_init")
	payload := randomBytes(t, 64<<10)
	_, err := c.Write(payload)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	time.Sleep(50 * time.Millisecond) // let the bytes and the EOF reach the paused server
	select {
	case e := <-ev:
		t.Fatalf("event %q while paused", e.kind)
	default:
	}
	g.do(func(*loop.Loop) { server.Resume() })
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, got), "got %d bytes of %d", len(got), len(payload))
	data, u := collectData(t, ev)
	assert.Equal(t, len(payload), len(data))
	assert.Equal(t, io.EOF, u.err)
	require.NoError(t, g.stop())
}

// forwarder answers each request and, at the peer's EOF, shuts down its own
// side (CloseWrite), as a proxy forwards a half-close: with nothing queued
// the loop then shuts the socket down and closes it in the same iteration.
type forwarder struct {
	hazardFunc
	t *testing.T
}

func (f *forwarder) ReceiveData(c *conn.Conn, data []byte) {
	assert.NoError(f.t, c.SendData(reply(data)))
}

func (f *forwarder) ReceiveEOF(c *conn.Conn) { assert.NoError(f.t, c.CloseWrite()) }

// testForwardedHalfCloseChurn: 2,000 clients, 16 at a time, each send a
// request and shut down their side; a HalfCloser answers and shuts down its
// side at the EOF, so every connection ends with a shutdown and a close while
// others are being accepted. Every reply must arrive whole: on io_uring a
// shutdown left in flight as IORING_OP_SHUTDOWN could run after the close
// and land on the connection accepted into the freed slot, which then lost
// its reply (its send failed with EPIPE).
func testForwardedHalfCloseChurn(t *testing.T, b loop.Backend) {
	const clients, workers = 2000, 16
	g := startLoop(t, b, loop.Options{})
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler { return &forwarder{t: t} })
	lost := halfClosingClients(t, addr.String(), clients, workers)
	assert.Zero(t, lost, "replies lost to another connection's half-close")
	require.NoError(t, g.stop())
}

func nextString(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(wait):
		t.Fatal("no event")
		return ""
	}
}
