package loop_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// netConformance is the table of connection behaviours every backend must
// pass. Each runs against a loop in the background (bgLoop) and real
// sockets on loopback; the test goroutine talks to the loop with NextTick
// and reads what the handlers saw from channels.
var netConformance = []struct {
	name string
	fn   func(t *testing.T, b loop.Backend)
}{
	{"ServerCallbackOrder", testServerCallbackOrder},
	{"ClientCallbackOrder", testClientCallbackOrder},
	{"ConnectRefused", testConnectRefused},
	{"ConnectTimeout", testConnectTimeout},
	{"InactivityTimeout", testInactivityTimeout},
	{"PeerReset", testPeerReset},
	{"PeerClose", testPeerClose},
	{"LocalCloseUnbindAfterPhase", testLocalClose},
	{"CloseAfterWriting5MB", testCloseAfterWriting},
	{"Echo10MB", testEcho10MB},
	{"PauseResume", testPauseResume},
	{"StopFlushesAndUnbinds", testStopWithConns},
	{"HandlerPanic", testHandlerPanic},
	{"ThousandConns", testThousandConns},
	{"IPv6", testIPv6},
	{"UnixPath", testUnixPath},
	{"UnixAbstract", testUnixAbstract},
	{"UDPEcho", testUDPEcho},
	{"UDPReceiveData", testUDPReceiveData},
	{"SendFile50MB", testSendFile},
	{"DebugPoisonReceive", testPoisonReceive},
	{"ConnectionCount", testConnectionCount},
	{"ServerStopKeepsConns", testServerStop},
	{"OutboundLimits", testOutboundLimits},
	{"NotifyDrained", testNotifyDrained},
	{"NotifyDrainedClosed", testNotifyDrainedClosed},
	{"SocketOptions", testSocketOptions},
	{"SocketOptionsPending", testSocketOptionsPending},
	{"BindConnect", testBindConnect},
	{"Reconnect", testReconnect},
	{"TLSServer", testTLSServer},
	{"TLSClient", testTLSClient},
	{"TLSVerify", testTLSVerify},
	{"TLSBadPeers", testTLSBadPeers},
	{"StartTLS", testTLSStartTLS},
	{"TLSStopMidHandshake", testTLSStopMidHandshake},
	{"TLSCloseWriteEarly", testTLSCloseWriteEarly},
	{"Proxy32MB", testProxy32MB},
	{"ProxyOrder", testProxyOrder},
	{"ProxyAfterHeader", testProxyAfterHeader},
	{"ProxyStopInFlight", testProxyStopInFlight},
	{"ProxyTargetClosedInFlight", testProxyTargetClosedInFlight},
	{"ProxyToN", testProxyToN},
	{"ProxyStop", testProxyStop},
	{"ProxyTargetUnbound", testProxyTargetUnbound},
	{"ProxyBackpressure", testProxyBackpressure},
	{"ProxyBufferBound", testProxyBufferBound},
	{"ProxyHalfClose", testProxyHalfClose},
	{"ProxyErrors", testProxyErrors},
	{"ProxyTLS", testProxyTLS},
	{"WatchProcess", testWatchProcess},
	{"Attach", testAttach},
	{"Watch", testWatch},
	{"PopenCat", testPopenCat},
	{"PopenStatus", testPopenStatus},
	{"PopenIgnoresInput", testPopenIgnoresInput},
	{"PopenClosesOutput", testPopenClosesOutput},
	{"PopenLocalClose", testPopenLocalClose},
	{"PopenErrors", testPopenErrors},
	{"PopenMany", testPopenMany},
	{"PopenStop", testPopenStop},
	{"AttachPipe", testAttachPipe},
	{"Detach", testDetach},
	{"WatchFile", testWatchFile},
	{"WatchFileDir", testWatchFileDir},
	{"WatchFileShared", testWatchFileShared},
	{"WatchFileStop", testWatchFileStop},
	{"PeerStopsReading", testPeerStopsReading},
}

func TestNetConformance(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		for _, tc := range netConformance {
			t.Run(tc.name, func(t *testing.T) {
				testutil.CheckLeaks(t)
				tc.fn(t, b)
			})
		}
	})
}

// wait bounds every wait of the suite: generous, since -race slows the
// loop down, but finite.
const wait = 15 * time.Second

// bgLoop is a loop running on its own goroutine for the duration of a test.
type bgLoop struct {
	t       *testing.T
	l       *loop.Loop
	done    chan error
	stopped bool
	err     error
}

// startLoop runs a loop of backend b in the background; a cleanup stops it
// (before the leak check, which was registered earlier).
func startLoop(t *testing.T, b loop.Backend, opts loop.Options) *bgLoop {
	t.Helper()
	opts.Backend = b
	l, err := loop.New(opts)
	require.NoError(t, err)
	g := &bgLoop{t: t, l: l, done: make(chan error, 1)}
	started := make(chan struct{})
	go func() { g.done <- l.Run(func(*loop.Loop) { close(started) }) }()
	select {
	case <-started:
	case err := <-g.done:
		t.Fatalf("Run returned before starting: %v", err)
	case <-time.After(wait):
		t.Fatal("Run did not start")
	}
	t.Cleanup(func() {
		if !g.stopped {
			_ = g.stop()
		}
	})
	return g
}

// serveRecorded starts a server whose handlers record their events on ev,
// each set up by setup (nil: as they are), and returns its address.
func (g *bgLoop) serveRecorded(ev chan event, setup func(h *handler)) net.Addr {
	g.t.Helper()
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := newHandler(g.t)
		h.ev = ev
		if setup != nil {
			setup(h)
		}
		return h
	})
	return addr
}

// do runs fn on the loop goroutine and waits for it.
func (g *bgLoop) do(fn func(l *loop.Loop)) {
	g.t.Helper()
	ch := make(chan struct{})
	require.NoError(g.t, g.l.NextTick(func() { defer close(ch); fn(g.l) }))
	select {
	case <-ch:
	case <-time.After(wait):
		g.t.Fatal("loop did not run the tick")
	}
}

// stop stops the loop, waits for Run and returns its error.
func (g *bgLoop) stop() error {
	g.t.Helper()
	if g.stopped {
		return g.err
	}
	g.stopped = true
	g.l.Stop()
	select {
	case g.err = <-g.done:
	case <-time.After(wait):
		g.t.Fatal("Run did not return after Stop")
	}
	assert.False(g.t, g.l.Running())
	assert.Zero(g.t, g.l.InFlightOps(), "operations in flight after Run returned")
	assert.Zero(g.t, g.l.ConnectionCount(), "connections counted after Run returned")
	return g.err
}

// startServer starts a server on the loop and returns its address.
func (g *bgLoop) startServer(addr string, factory func() conn.Handler) (*loop.Server, net.Addr) {
	g.t.Helper()
	var srv *loop.Server
	var err error
	var a net.Addr
	g.do(func(l *loop.Loop) {
		srv, err = l.StartServer(addr, factory)
		if err == nil {
			a = srv.Addr()
		}
	})
	require.NoError(g.t, err)
	require.NotNil(g.t, a)
	return srv, a
}

// event is one callback as a handler saw it.
type event struct {
	kind string // "factory", "post_init", "completed", "data", "unbind", "drained", ...
	data string
	err  error
	c    *conn.Conn
	at   time.Time
}

// handler is a conn.Handler that records its callbacks on ev (when not
// nil) and runs the optional hooks. It checks that Unbind runs once.
type handler struct {
	t         *testing.T
	ev        chan event
	postInit  func(c *conn.Conn)
	completed func(c *conn.Conn)
	receive   func(c *conn.Conn, data []byte)
	unbind    func(c *conn.Conn, err error)
	drained   func(c *conn.Conn)
	unbinds   atomic.Int32
	inClose   bool // set around c.Close() by tests that check Unbind is not nested
}

func newHandler(t *testing.T) *handler {
	return &handler{t: t, ev: make(chan event, 4096)}
}

func (h *handler) record(e event) {
	if h.ev == nil {
		return
	}
	e.at = time.Now()
	select {
	case h.ev <- e:
	default:
		assert.Fail(h.t, "event channel full", "dropped %s", e.kind)
	}
}

func (h *handler) PostInit(c *conn.Conn) {
	h.record(event{kind: "post_init", c: c})
	if h.postInit != nil {
		h.postInit(c)
	}
}

func (h *handler) ConnectionCompleted(c *conn.Conn) {
	h.record(event{kind: "completed", c: c})
	if h.completed != nil {
		h.completed(c)
	}
}

func (h *handler) ReceiveData(c *conn.Conn, data []byte) {
	if h.receive != nil {
		h.receive(c, data)
		return
	}
	h.record(event{kind: "data", data: string(data), c: c})
}

func (h *handler) Unbind(c *conn.Conn, err error) {
	assert.False(h.t, h.inClose, "Unbind ran inside Close")
	assert.Equal(h.t, int32(1), h.unbinds.Add(1), "Unbind more than once")
	h.record(event{kind: "unbind", err: err, c: c})
	if h.unbind != nil {
		h.unbind(c, err)
	}
}

func (h *handler) Drained(c *conn.Conn) {
	h.record(event{kind: "drained", c: c})
	if h.drained != nil {
		h.drained(c)
	}
}

// next returns the next event on ch, failing the test after wait.
func next(t *testing.T, ch <-chan event) event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(wait):
		t.Fatal("timed out waiting for a callback")
		return event{}
	}
}

// expectKind returns the next event, which must be of the given kind.
func expectKind(t *testing.T, ch <-chan event, kind string) event {
	t.Helper()
	e := next(t, ch)
	require.Equal(t, kind, e.kind, "event %+v", e)
	return e
}

// collectData reads data events until an unbind, returning the bytes and
// the unbind event.
func collectData(t *testing.T, ch <-chan event) (string, event) {
	t.Helper()
	var b bytes.Buffer
	for {
		e := next(t, ch)
		switch e.kind {
		case "data":
			b.WriteString(e.data)
		case "unbind":
			return b.String(), e
		default:
			t.Fatalf("unexpected event %+v", e)
		}
	}
}

// dial connects to a, with a deadline, closed at the end of the test.
func dial(t *testing.T, a net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(a.Network(), a.String(), wait)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	return c
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// echoFactory makes handlers that echo, checking SendData's error.
func echoFactory(t *testing.T) func() conn.Handler {
	return func() conn.Handler {
		h := &handler{t: t}
		h.receive = func(c *conn.Conn, data []byte) { assert.NoError(t, c.SendData(data)) }
		return h
	}
}

func testServerCallbackOrder(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 100)
	var h *handler
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		ev <- event{kind: "factory"}
		h = newHandler(t)
		h.ev = ev
		return h
	})
	c := dial(t, addr)
	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	expectKind(t, ev, "factory")
	pi := expectKind(t, ev, "post_init")
	var local, remote net.Addr
	g.do(func(*loop.Loop) { local, remote = pi.c.LocalAddr(), pi.c.RemoteAddr() })
	assert.Equal(t, c.LocalAddr().String(), remote.String(), "RemoteAddr is the client's address")
	assert.Equal(t, c.RemoteAddr().String(), local.String(), "LocalAddr is the server's address")
	require.NoError(t, c.Close())
	data, u := collectData(t, ev)
	assert.Equal(t, "hello", data)
	assert.ErrorIs(t, u.err, io.EOF)
	assert.Same(t, pi.c, u.c)
	require.NoError(t, g.stop())
	assert.Equal(t, int32(1), h.unbinds.Load())
}

func testClientCallbackOrder(t *testing.T, b loop.Backend) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		s, err := ln.Accept()
		if !assert.NoError(t, err) {
			peer <- ""
			return
		}
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(wait))
		got := make([]byte, len("early"))
		_, err = io.ReadFull(s, got)
		assert.NoError(t, err)
		peer <- string(got)
		_, err = s.Write([]byte("reply"))
		assert.NoError(t, err)
	}()

	g := startLoop(t, b, loop.Options{})
	h := newHandler(t)
	inConnect := false
	h.postInit = func(c *conn.Conn) {
		assert.True(t, inConnect, "PostInit runs inside Connect")
		assert.NoError(t, c.SendData([]byte("early")), "data sent in PostInit is queued")
	}
	h.completed = func(c *conn.Conn) {
		assert.False(t, inConnect, "ConnectionCompleted runs after Connect returned")
		assert.Equal(t, ln.Addr().String(), c.RemoteAddr().String())
	}
	var c *conn.Conn
	g.do(func(l *loop.Loop) {
		inConnect = true
		c, err = l.Connect(ln.Addr().String(), h)
		inConnect = false
	})
	require.NoError(t, err)
	pi := expectKind(t, h.ev, "post_init")
	assert.Same(t, c, pi.c)
	expectKind(t, h.ev, "completed")
	assert.Equal(t, "early", <-peer)
	data, u := collectData(t, h.ev)
	assert.Equal(t, "reply", data)
	assert.ErrorIs(t, u.err, io.EOF)
	require.NoError(t, g.stop())
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func testConnectRefused(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	h := newHandler(t)
	addr := closedPort(t)
	var err error
	g.do(func(l *loop.Loop) { _, err = l.Connect(addr, h) })
	require.NoError(t, err, "a refused connection is reported through Unbind")
	expectKind(t, h.ev, "post_init")
	u := expectKind(t, h.ev, "unbind") // no ConnectionCompleted
	assert.ErrorIs(t, u.err, syscall.ECONNREFUSED)
	var op *conn.OpError
	if assert.ErrorAs(t, u.err, &op) {
		assert.Equal(t, "connect", op.Op)
		assert.Equal(t, b.String(), op.Backend)
	}
	require.NoError(t, g.stop())
	assert.Equal(t, int32(1), h.unbinds.Load())
}

// blackHole returns a loopback address where a SYN gets no answer: a
// listener with backlog 0 whose accept queue is full (Linux drops SYNs to
// a listener whose accept queue is full), and a cleanup closing it.
func blackHole(t *testing.T) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(fd, 0))
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	// Fill the accept queue; the first dial that times out proves the hole.
	for i := range 8 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return addr
			}
			t.Skipf("no local black hole: dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("no local black hole: the backlog-0 listener keeps accepting SYNs")
	return ""
}

func testConnectTimeout(t *testing.T, b loop.Backend) {
	addr := blackHole(t)
	g := startLoop(t, b, loop.Options{})
	h := newHandler(t)
	h.postInit = func(c *conn.Conn) {
		assert.Error(t, c.SetConnectTimeout(0), "d <= 0 is rejected")
		assert.NoError(t, c.SetConnectTimeout(50*time.Millisecond))
	}
	var err error
	var start time.Time
	g.do(func(l *loop.Loop) {
		start = time.Now()
		_, err = l.Connect(addr, h)
	})
	require.NoError(t, err)
	expectKind(t, h.ev, "post_init")
	u := expectKind(t, h.ev, "unbind")
	assert.ErrorIs(t, u.err, conn.ErrConnectTimeout)
	assert.ErrorIs(t, u.err, syscall.ETIMEDOUT)
	took := u.at.Sub(start)
	assert.GreaterOrEqual(t, took, 50*time.Millisecond)
	assert.Less(t, took, 3*time.Second)
	require.NoError(t, g.stop())
}

func testInactivityTimeout(t *testing.T, b loop.Backend) {
	const d = 100 * time.Millisecond
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 4096)
	var armed time.Time
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := newHandler(t)
		h.ev = ev
		h.postInit = func(c *conn.Conn) {
			assert.Error(t, c.SetInactivityTimeout(-time.Second))
			assert.NoError(t, c.SetInactivityTimeout(d))
			assert.Equal(t, d, c.InactivityTimeout())
			armed = time.Now()
		}
		return h
	})
	c := dial(t, addr)
	pi := expectKind(t, ev, "post_init")
	_ = pi
	u := expectKind(t, ev, "unbind")
	assert.ErrorIs(t, u.err, conn.ErrInactivityTimeout)
	assert.ErrorIs(t, u.err, syscall.ETIMEDOUT)
	var at time.Time
	g.do(func(*loop.Loop) { at = armed })
	took := u.at.Sub(at)
	assert.GreaterOrEqual(t, took, d, "not early")
	assert.Less(t, took, d+2*time.Second, "not much late")
	_, err := c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the client sees the close")
	require.NoError(t, g.stop())
}

func testPeerReset(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 4096)
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler { h := newHandler(t); h.ev = ev; return h })
	c := dial(t, addr)
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	expectKind(t, ev, "post_init")
	assert.Equal(t, "x", expectKind(t, ev, "data").data)
	tc := c.(*net.TCPConn)
	require.NoError(t, tc.SetLinger(0))
	require.NoError(t, tc.Close()) // sends RST
	u := expectKind(t, ev, "unbind")
	assert.ErrorIs(t, u.err, syscall.ECONNRESET)
	require.NoError(t, g.stop())
}

func testPeerClose(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 4096)
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler { h := newHandler(t); h.ev = ev; return h })
	c := dial(t, addr)
	expectKind(t, ev, "post_init")
	require.NoError(t, c.Close())
	u := expectKind(t, ev, "unbind")
	assert.Equal(t, io.EOF, u.err, "a peer close is io.EOF itself")
	require.NoError(t, g.stop())
}

func testLocalClose(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 4096)
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := newHandler(t)
		h.ev = ev
		h.receive = func(c *conn.Conn, data []byte) {
			h.record(event{kind: "data", data: string(data)})
			h.inClose = true
			err := c.Close()
			h.inClose = false
			assert.NoError(t, err)
			h.record(event{kind: "close returned"})
			assert.True(t, c.Closing())
			assert.ErrorIs(t, c.SendData([]byte("late")), conn.ErrClosed)
			assert.NoError(t, c.Close(), "closing twice returns nil")
		}
		return h
	})
	c := dial(t, addr)
	_, err := c.Write([]byte("bye"))
	require.NoError(t, err)
	expectKind(t, ev, "post_init")
	expectKind(t, ev, "data")
	expectKind(t, ev, "close returned")
	u := expectKind(t, ev, "unbind")
	assert.NoError(t, u.err, "a local close unbinds with nil")
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, g.stop())
}

func testCloseAfterWriting(t *testing.T, b loop.Backend) {
	payload := randomBytes(t, 5<<20)
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 4096)
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := newHandler(t)
		h.ev = ev
		h.postInit = func(c *conn.Conn) {
			assert.NoError(t, c.SendData(payload))
			assert.NoError(t, c.CloseAfterWriting())
			assert.ErrorIs(t, c.SendData([]byte("late")), conn.ErrClosed)
			assert.True(t, c.Closing())
		}
		return h
	})
	c := dial(t, addr)
	got, err := io.ReadAll(c)
	require.NoError(t, err, "all the data, then EOF")
	assert.True(t, bytes.Equal(payload, got), "got %d bytes of %d", len(got), len(payload))
	expectKind(t, ev, "post_init")
	u := expectKind(t, ev, "unbind")
	assert.NoError(t, u.err)
	require.NoError(t, g.stop())
}

func testEcho10MB(t *testing.T, b loop.Backend) {
	payload := randomBytes(t, 10<<20)
	g := startLoop(t, b, loop.Options{})
	_, addr := g.startServer("127.0.0.1:0", echoFactory(t))
	c := dial(t, addr)
	go writeOddSized(c, payload)
	got := make([]byte, len(payload))
	_, err := io.ReadFull(c, got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, got), "echoed stream differs")
	require.NoError(t, g.stop())
}

// writeOddSized writes payload to c in odd-sized pieces, so chunk boundaries
// fall anywhere; it stops at the first error.
func writeOddSized(c net.Conn, payload []byte) error {
	for rest := payload; len(rest) > 0; {
		n := min(len(rest), 99991)
		if _, err := c.Write(rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

func testPauseResume(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 4096)
	var received bytes.Buffer
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := newHandler(t)
		h.ev = ev
		h.postInit = func(c *conn.Conn) {
			c.Pause()
			assert.True(t, c.Paused())
			_, err := g.l.AddTimer(200*time.Millisecond, func() {
				h.record(event{kind: "resume", data: received.String()})
				c.Resume()
				assert.False(t, c.Paused())
			})
			assert.NoError(t, err)
		}
		h.receive = func(c *conn.Conn, data []byte) {
			received.Write(data)
			if received.Len() == 3<<10 {
				h.record(event{kind: "all", data: received.String()})
			}
		}
		return h
	})
	c := dial(t, addr)
	want := bytes.Repeat([]byte("abc"), 1<<10)
	_, err := c.Write(want)
	require.NoError(t, err)
	expectKind(t, ev, "post_init")
	r := expectKind(t, ev, "resume")
	assert.Empty(t, r.data, "nothing delivered while paused")
	all := expectKind(t, ev, "all")
	assert.Equal(t, string(want), all.data, "everything held is delivered after Resume")
	require.NoError(t, g.stop())
}

func testStopWithConns(t *testing.T, b loop.Backend) {
	const n = 3
	payload := randomBytes(t, 2<<20)
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 100)
	var accepted int
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := newHandler(t)
		h.ev = ev
		h.postInit = func(c *conn.Conn) {
			assert.NoError(t, c.SendData(payload))
			if accepted++; accepted == n {
				// Every connection has its 2 MB queued, little of it sent.
				g.l.Stop()
			}
		}
		return h
	})
	results := make(chan []byte, n)
	for range n {
		c := dial(t, addr)
		go func() {
			got, err := io.ReadAll(c)
			assert.NoError(t, err)
			results <- got
		}()
	}
	for range n {
		got := <-results
		assert.True(t, bytes.Equal(payload, got), "pending output is flushed on Stop: got %d bytes of %d", len(got), len(payload))
	}
	var unbinds int
	for e := range drainEvents(ev, 500*time.Millisecond) {
		if e.kind == "unbind" {
			unbinds++
			assert.NoError(t, e.err, "Stop unbinds with nil")
		}
	}
	assert.Equal(t, n, unbinds, "one Unbind per connection")
	g.stopped = true
	select {
	case err := <-g.done:
		require.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	assert.Zero(t, g.l.InFlightOps())
}

// drainEvents yields the events of ch until none came for quiet.
func drainEvents(ch <-chan event, quiet time.Duration) func(func(event) bool) {
	return func(yield func(event) bool) {
		for {
			select {
			case e := <-ch:
				if !yield(e) {
					return
				}
			case <-time.After(quiet):
				return
			}
		}
	}
}

func testHandlerPanic(t *testing.T, b loop.Backend) {
	handled := make(chan error, 10)
	g := startLoop(t, b, loop.Options{ErrorHandler: func(err error) { handled <- err }})
	ev := make(chan event, 4096)
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := newHandler(t)
		h.ev = ev
		h.receive = func(*conn.Conn, []byte) { panic("boom") }
		return h
	})
	c := dial(t, addr)
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	select {
	case err := <-handled:
		var pe *loop.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "boom", pe.Value)
	case <-time.After(wait):
		t.Fatal("panic not reported")
	}
	// The loop goes on: a new connection is served.
	c2 := dial(t, addr)
	_, err = c2.Write([]byte("y"))
	require.NoError(t, err)
	select {
	case <-handled:
	case <-time.After(wait):
		t.Fatal("second panic not reported")
	}
	require.NoError(t, g.stop())
	unbinds := 0
	for e := range drainEvents(ev, 100*time.Millisecond) {
		if e.kind == "unbind" {
			unbinds++
		}
	}
	assert.Equal(t, 2, unbinds, "each connection is unbound exactly once")
	// CheckLeaks verifies the panicking connections' fds are gone.
}

func testThousandConns(t *testing.T, b loop.Backend) {
	const (
		conns   = 1000
		workers = 8
		size    = 64 << 10
	)
	g := startLoop(t, b, loop.Options{})
	_, addr := g.startServer("127.0.0.1:0", echoFactory(t))
	payload := randomBytes(t, size)
	var dialed sync.WaitGroup
	dialed.Add(workers)
	all := make(chan struct{})
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			var cs []net.Conn
			defer func() {
				for _, c := range cs {
					c.Close()
				}
			}()
			fail := func(err error) { dialed.Done(); errs <- err }
			for range conns / workers {
				c, err := net.DialTimeout("tcp", addr.String(), wait)
				if err != nil {
					fail(err)
					return
				}
				_ = c.SetDeadline(time.Now().Add(2 * wait))
				cs = append(cs, c)
			}
			dialed.Done()
			<-all // every connection is open at once
			for i, c := range cs {
				go func() { _, _ = c.Write(payload) }()
				got := make([]byte, size)
				if _, err := io.ReadFull(c, got); err != nil {
					errs <- fmt.Errorf("worker %d conn %d: %w", w, i, err)
					return
				}
				if !bytes.Equal(payload, got) {
					errs <- fmt.Errorf("worker %d conn %d: echo differs", w, i)
					return
				}
			}
			errs <- nil
		}()
	}
	dialed.Wait()
	require.Eventually(t, func() bool {
		var n int
		g.do(func(l *loop.Loop) { n = l.ConnectionCount() })
		return n >= conns
	}, wait, 10*time.Millisecond, "the server holds every connection")
	close(all)
	for range workers {
		assert.NoError(t, <-errs)
	}
	require.NoError(t, g.stop())
}

func testIPv6(t *testing.T, b loop.Backend) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	testEchoOn(t, b, "[::1]:0", "tcp")
}

func testUnixPath(t *testing.T, b loop.Backend) {
	dir, err := os.MkdirTemp("", "rm") // short: sun_path holds 108 bytes
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	testEchoOn(t, b, "unix:"+filepath.Join(dir, "s.sock"), "unix")
}

func testUnixAbstract(t *testing.T, b loop.Backend) {
	testEchoOn(t, b, fmt.Sprintf("unix:@ringmachine-test-%d-%d", os.Getpid(), time.Now().UnixNano()), "unix")
}

// testEchoOn runs an echo server on addr and echoes through it twice.
func testEchoOn(t *testing.T, b loop.Backend, addr, network string) {
	g := startLoop(t, b, loop.Options{})
	_, a := g.startServer(addr, echoFactory(t))
	assert.Equal(t, network, a.Network())
	t.Logf("listening on %s %s", a.Network(), a)
	for i := range 2 {
		testutil.EchoOnce(t, dial(t, a), fmt.Sprintf("hello %d over %s", i, a.Network()))
	}
	require.NoError(t, g.stop())
}

// dgramHandler echoes datagrams to their sender with SendDatagram(b, nil).
type dgramHandler struct {
	*handler
	from chan net.Addr
}

func (h dgramHandler) ReceiveDatagram(c *conn.Conn, data []byte, from net.Addr) {
	h.from <- from
	assert.NoError(h.t, c.SendDatagram(append([]byte("re:"), data...), nil))
}

func testUDPEcho(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	h := dgramHandler{handler: newHandler(t), from: make(chan net.Addr, 10)}
	var dc *conn.Conn
	var local net.Addr
	var err error
	g.do(func(l *loop.Loop) {
		dc, err = l.OpenDatagram("127.0.0.1:0", h)
		if err == nil {
			local = dc.LocalAddr()
			assert.ErrorIs(t, dc.SendData([]byte("x")), conn.ErrNotStream)
		}
	})
	require.NoError(t, err)
	require.NotNil(t, local)
	assert.Equal(t, "udp", local.Network())

	// Two clients: each reply goes to the sender of the last datagram.
	for i := range 2 {
		c := dial(t, local)
		for j := range 3 {
			msg := fmt.Sprintf("client %d msg %d", i, j)
			_, err := io.WriteString(c, msg)
			require.NoError(t, err)
			buf := make([]byte, 1500)
			n, err := c.Read(buf)
			require.NoError(t, err)
			assert.Equal(t, "re:"+msg, string(buf[:n]))
			from := <-h.from
			assert.Equal(t, c.LocalAddr().String(), from.String())
		}
	}
	g.do(func(*loop.Loop) { assert.NoError(t, dc.Close()) })
	expectKind(t, h.ev, "post_init")
	u := expectKind(t, h.ev, "unbind")
	assert.NoError(t, u.err)
	require.NoError(t, g.stop())
}

// testUDPReceiveData: without ReceiveDatagram, datagrams go to ReceiveData.
func testUDPReceiveData(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	h := newHandler(t)
	var local net.Addr
	var err error
	g.do(func(l *loop.Loop) {
		var dc *conn.Conn
		dc, err = l.OpenDatagram("127.0.0.1:0", h)
		if err == nil {
			local = dc.LocalAddr()
		}
	})
	require.NoError(t, err)
	c := dial(t, local)
	_, err = io.WriteString(c, "one datagram")
	require.NoError(t, err)
	for {
		e := next(t, h.ev)
		if e.kind == "post_init" {
			continue
		}
		require.Equal(t, "data", e.kind)
		assert.Equal(t, "one datagram", e.data)
		break
	}
	require.NoError(t, g.stop())
	u := expectKind(t, h.ev, "unbind")
	assert.NoError(t, u.err, "Stop unbinds a datagram socket with nil")
}

func testSendFile(t *testing.T, b loop.Backend) {
	const size = 50 << 20
	f, err := os.CreateTemp("", "ringmachine-sendfile")
	require.NoError(t, err)
	t.Cleanup(func() { os.Remove(f.Name()) })
	sum := sha256.New()
	chunk := randomBytes(t, 1<<20)
	for i := range size >> 20 {
		chunk[0] = byte(i)
		_, err := f.Write(chunk)
		require.NoError(t, err)
		sum.Write(chunk)
	}
	require.NoError(t, f.Close())
	want := sum.Sum(nil)

	missing := filepath.Join(t.TempDir(), "missing")
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 4096)
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := newHandler(t)
		h.ev = ev
		h.postInit = func(c *conn.Conn) {
			err := c.SendFile(missing)
			var pe *os.PathError
			assert.ErrorAs(t, err, &pe)
			assert.ErrorIs(t, err, fs.ErrNotExist)
			assert.NoError(t, c.SendData([]byte("header\n")))
			assert.NoError(t, c.SendFile(f.Name()))
			assert.NoError(t, c.SendData([]byte("trailer\n")), "data after a file goes after it")
			assert.NoError(t, c.CloseAfterWriting())
		}
		return h
	})
	c := dial(t, addr)
	got := sha256.New()
	head := make([]byte, len("header\n"))
	_, err = io.ReadFull(c, head)
	require.NoError(t, err)
	assert.Equal(t, "header\n", string(head))
	n, err := io.CopyN(got, c, size)
	require.NoError(t, err)
	assert.Equal(t, int64(size), n)
	assert.Equal(t, want, got.Sum(nil), "sha256 of the file")
	tail, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "trailer\n", string(tail))
	expectKind(t, ev, "post_init")
	assert.NoError(t, expectKind(t, ev, "unbind").err)
	require.NoError(t, g.stop())
}

func testPoisonReceive(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{DebugPoisonReceive: true})
	ev := make(chan event, 4096)
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := newHandler(t)
		h.ev = ev
		h.receive = func(c *conn.Conn, data []byte) {
			retained := data // the bug the option exposes
			assert.Equal(t, "hello", string(data), "intact during the call")
			assert.NoError(t, g.l.NextTick(func() {
				h.record(event{kind: "retained", data: string(retained)})
			}))
		}
		return h
	})
	c := dial(t, addr)
	_, err := io.WriteString(c, "hello")
	require.NoError(t, err)
	expectKind(t, ev, "post_init")
	r := expectKind(t, ev, "retained")
	assert.Equal(t, string(bytes.Repeat([]byte{0xDB}, 5)), r.data, "a retained slice reads as 0xDB")
	require.NoError(t, g.stop())
}

func testConnectionCount(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	_, addr := g.startServer("127.0.0.1:0", echoFactory(t))
	count := func() int {
		var n int
		g.do(func(l *loop.Loop) { n = l.ConnectionCount() })
		return n
	}
	base := count()
	var cs []net.Conn
	for range 3 {
		cs = append(cs, dial(t, addr))
	}
	require.Eventually(t, func() bool { return count() == base+3 }, wait, 5*time.Millisecond)
	// A client connection counts too.
	var err error
	g.do(func(l *loop.Loop) { _, err = l.Connect(addr.String(), &handler{t: t}) })
	require.NoError(t, err)
	require.Eventually(t, func() bool { return count() == base+5 }, wait, 5*time.Millisecond,
		"the client and the server side of its connection")
	for _, c := range cs {
		c.Close()
	}
	require.Eventually(t, func() bool { return count() == base+2 }, wait, 5*time.Millisecond)
	require.NoError(t, g.stop())
	assert.Zero(t, g.l.ConnectionCount())
}

func testServerStop(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	srv, addr := g.startServer("127.0.0.1:0", echoFactory(t))
	c := dial(t, addr)
	_, err := io.WriteString(c, "1")
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 1))
	require.NoError(t, err)
	g.do(func(*loop.Loop) { err = srv.Stop() })
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		c2, err := net.Dial("tcp", addr.String())
		if err == nil {
			c2.Close()
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	}, wait, 10*time.Millisecond, "a stopped server refuses connections")
	_, err = io.WriteString(c, "still here")
	require.NoError(t, err)
	got := make([]byte, len("still here"))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err, "existing connections live on")
	assert.Equal(t, "still here", string(got))
	require.NoError(t, g.stop())
}

func testOutboundLimits(t *testing.T, b loop.Backend) {
	const (
		low  = 64 << 10
		high = 256 << 10
		size = 32 << 20 // far more than the socket buffers hold
	)
	payload := randomBytes(t, size)
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 4096)
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := newHandler(t)
		h.ev = ev
		h.postInit = func(c *conn.Conn) {
			assert.Error(t, c.SetOutboundLimits(10, 5, 0), "low > high")
			assert.Error(t, c.SetOutboundLimits(0, 10, 5), "hardCap < high")
			assert.NoError(t, c.SetOutboundLimits(low, high, 0))
		}
		h.receive = func(c *conn.Conn, data []byte) {
			h.record(event{kind: "data", data: string(data)})
			if string(data) == "go" {
				assert.NoError(t, c.SendData(payload))
				assert.True(t, c.Paused(), "above the high watermark reading pauses")
				h.record(event{kind: "paused"})
			}
		}
		h.drained = func(c *conn.Conn) {
			assert.LessOrEqual(t, c.OutboundSize(), low)
			assert.False(t, c.Paused(), "reading resumes at the low watermark")
		}
		return h
	})
	c := dial(t, addr)
	_, err := io.WriteString(c, "go")
	require.NoError(t, err)
	pi := expectKind(t, ev, "post_init")
	assert.Equal(t, "go", expectKind(t, ev, "data").data)
	expectKind(t, ev, "paused")
	// Sent while the server is paused: delivered only after Drained.
	_, err = io.WriteString(c, "more")
	require.NoError(t, err)
	got := make([]byte, size)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, got))
	expectKind(t, ev, "drained")
	assert.Equal(t, "more", expectKind(t, ev, "data").data)

	// The hard cap.
	var capErr error
	g.do(func(*loop.Loop) {
		if assert.NoError(t, pi.c.SetOutboundLimits(0, 10, 20)) {
			capErr = pi.c.SendData(make([]byte, 30))
		}
	})
	assert.ErrorIs(t, capErr, conn.ErrOutboundFull)
	require.NoError(t, c.Close())
	assert.ErrorIs(t, expectKind(t, ev, "unbind").err, io.EOF)
	require.NoError(t, g.stop())
}

// testNotifyDrained: NotifyDrained fires once the queue is at most low,
// without pausing the connection's reading; a replaced function never runs;
// on an already drained queue it runs in a later tick, never inside the call.
// loop.Of returns the connection's loop.
func testNotifyDrained(t *testing.T, b loop.Backend) {
	const (
		low  = 64 << 10
		size = 32 << 20 // far more than the socket buffers hold
	)
	payload := randomBytes(t, size)
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 4096)
	addr := g.serveRecorded(ev, func(h *handler) {
		h.receive = func(c *conn.Conn, data []byte) {
			h.record(event{kind: "data", data: string(data), c: c})
			switch string(data) {
			case "go":
				assert.Same(t, g.l, loop.Of(c), "Of returns the owning loop")
				assert.NoError(t, c.SendData(payload))
				assert.Error(t, c.NotifyDrained(-1, func(*conn.Conn) {}), "negative low")
				assert.Error(t, c.NotifyDrained(low, nil), "nil function")
				assert.NoError(t, c.NotifyDrained(low, func(*conn.Conn) {
					assert.Fail(t, "a replaced function ran")
				}))
				assert.NoError(t, c.NotifyDrained(low, func(c *conn.Conn) {
					assert.LessOrEqual(t, c.OutboundSize(), low)
					h.record(event{kind: "notified", c: c})
				}))
				assert.False(t, c.Paused(), "NotifyDrained never pauses reading")
			case "again":
				ran := false
				assert.NoError(t, c.NotifyDrained(low, func(c *conn.Conn) {
					ran = true
					h.record(event{kind: "notified-again", c: c})
				}))
				assert.False(t, ran, "runs in a later tick, not inside the call")
			}
		}
	})
	assert.Nil(t, loop.Of(nil))
	c := dial(t, addr)
	_, err := io.WriteString(c, "go")
	require.NoError(t, err)
	expectKind(t, ev, "post_init")
	assert.Equal(t, "go", expectKind(t, ev, "data").data)
	// Not paused: this arrives while the 32 MiB are still queued.
	_, err = io.WriteString(c, "x")
	require.NoError(t, err)
	assert.Equal(t, "x", expectKind(t, ev, "data").data)
	got := make([]byte, size)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, got))
	expectKind(t, ev, "notified")
	_, err = io.WriteString(c, "again")
	require.NoError(t, err)
	assert.Equal(t, "again", expectKind(t, ev, "data").data)
	expectKind(t, ev, "notified-again")
	require.NoError(t, c.Close())
	assert.ErrorIs(t, expectKind(t, ev, "unbind").err, io.EOF)
	require.NoError(t, g.stop())
}

// testNotifyDrainedClosed: a connection that closes before its queue drains
// never runs the function; NotifyDrained on a closing connection or a
// datagram socket fails.
func testNotifyDrainedClosed(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 64)
	addr := g.serveRecorded(ev, func(h *handler) {
		h.receive = func(c *conn.Conn, data []byte) {
			assert.NoError(t, c.SendData(make([]byte, 16<<20)))
			assert.NoError(t, c.NotifyDrained(0, func(*conn.Conn) {
				assert.Fail(t, "ran after the connection closed")
			}))
			assert.NoError(t, c.Close())
			assert.ErrorIs(t, c.NotifyDrained(0, func(*conn.Conn) {}), conn.ErrClosed)
		}
	})
	c := dial(t, addr)
	_, err := io.WriteString(c, "go") // and never read
	require.NoError(t, err)
	expectKind(t, ev, "post_init")
	assert.NoError(t, expectKind(t, ev, "unbind").err)
	var dgErr error
	g.do(func(l *loop.Loop) {
		d, err := l.OpenDatagram("127.0.0.1:0", conn.Base{})
		if assert.NoError(t, err) {
			dgErr = d.NotifyDrained(0, func(*conn.Conn) {})
			_ = d.Close()
		}
	})
	assert.ErrorIs(t, dgErr, conn.ErrNotStream)
	// A tick or two for any wrongly kept function to run.
	g.do(func(*loop.Loop) {})
	g.do(func(*loop.Loop) {})
	require.NoError(t, c.Close())
	require.NoError(t, g.stop())
}
