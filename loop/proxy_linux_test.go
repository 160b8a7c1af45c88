package loop_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// proxyHandler is the conformance handler plus the proxy callbacks.
type proxyHandler struct {
	*handler
	completed func(c *conn.Conn)
}

func (h *proxyHandler) ProxyTargetUnbound(c *conn.Conn) {
	h.record(event{kind: "target_unbound", c: c})
}

func (h *proxyHandler) ProxyCompleted(c *conn.Conn) {
	h.record(event{kind: "proxy_completed", c: c})
	if h.completed != nil {
		h.completed(c)
	}
}

// proxyPair is two connections accepted by one server of a background
// loop, src and dst, with the test's ends of them, srcPeer and dstPeer.
type proxyPair struct {
	g                *bgLoop
	src, dst         *conn.Conn
	srcH, dstH       *proxyHandler
	srcPeer, dstPeer net.Conn
}

// newProxyPair accepts two connections (each handler recording on its own
// channel) and returns them once both are open.
func newProxyPair(t *testing.T, b loop.Backend, opts loop.Options) *proxyPair {
	t.Helper()
	g := startLoop(t, b, opts)
	accepted := make(chan *proxyHandler, 2)
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := &proxyHandler{handler: newHandler(t)}
		h.postInit = func(c *conn.Conn) { accepted <- h }
		return h
	})
	p := &proxyPair{g: g}
	p.srcPeer = dial(t, addr)
	p.srcH = <-accepted
	p.dstPeer = dial(t, addr)
	p.dstH = <-accepted
	p.src = expectKind(t, p.srcH.ev, "post_init").c
	p.dst = expectKind(t, p.dstH.ev, "post_init").c
	return p
}

// proxyDo runs fn on the loop with the pair's connections.
func (p *proxyPair) do(fn func(src, dst *conn.Conn)) {
	p.g.do(func(*loop.Loop) { fn(p.src, p.dst) })
}

// restAtHandler collects what the source's handler receives after its
// proxy stopped, until that and the bytes the proxy sent on (ProxiedBytes)
// add up to size; it returns both.
func (p *proxyPair) restAtHandler(t *testing.T, size int) ([]byte, uint64) {
	t.Helper()
	var atHandler bytes.Buffer
	var proxied uint64
	for {
		p.do(func(src, _ *conn.Conn) { proxied = src.ProxiedBytes() })
		if uint64(atHandler.Len())+proxied >= uint64(size) {
			return atHandler.Bytes(), proxied
		}
		e := next(t, p.srcH.ev)
		require.Equal(t, "data", e.kind)
		atHandler.WriteString(e.data)
	}
}

// readAllAsync reads n bytes from c on a goroutine; the result comes on the
// channel.
func readAllAsync(c net.Conn, n int) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		got := make([]byte, n)
		k, _ := io.ReadFull(c, got)
		ch <- got[:k]
	}()
	return ch
}

func writeAsync(c net.Conn, b []byte) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := c.Write(b)
		ch <- err
	}()
	return ch
}

// testProxy32MB: 32 MiB written to the source's peer in odd-sized pieces
// arrive at the target's peer byte for byte, both directions at once (each
// connection proxies to the other), and ProxiedBytes counts them.
func testProxy32MB(t *testing.T, b loop.Backend) { proxy32MB(t, b, loop.Options{}) }

// TestProxySpliceWorker is the 32 MiB proxy row with io_uring's splices
// on kernel workers (URingOptions.SpliceWorker).
func TestProxySpliceWorker(t *testing.T) {
	testutil.CheckLeaks(t)
	proxy32MB(t, loop.URing, loop.Options{URing: loop.URingOptions{SpliceWorker: true}})
}

func proxy32MB(t *testing.T, b loop.Backend, opts loop.Options) {
	const size = 32 << 20
	p := newProxyPair(t, b, opts)
	p.do(func(src, dst *conn.Conn) {
		assert.NoError(t, src.ProxyTo(dst, 0))
		assert.NoError(t, dst.ProxyTo(src, 64<<10))
	})
	up, down := randomBytes(t, size), randomBytes(t, size)
	require.NoError(t, p.srcPeer.SetDeadline(time.Now().Add(2*wait)))
	require.NoError(t, p.dstPeer.SetDeadline(time.Now().Add(2*wait)))
	gotUp, gotDown := readAllAsync(p.dstPeer, size), readAllAsync(p.srcPeer, size)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); assert.NoError(t, writeOddSized(p.srcPeer, up)) }()
	go func() { defer wg.Done(); assert.NoError(t, writeOddSized(p.dstPeer, down)) }()
	assert.True(t, bytes.Equal(up, <-gotUp), "source -> target")
	assert.True(t, bytes.Equal(down, <-gotDown), "target -> source")
	wg.Wait()
	p.do(func(src, dst *conn.Conn) {
		assert.Equal(t, uint64(size), src.ProxiedBytes())
		assert.Equal(t, uint64(size), dst.ProxiedBytes())
	})
	require.NoError(t, p.g.stop())
}

// testProxyOrder: bytes the source received before ProxyTo (held by a
// pause) go first, and on the target the proxied bytes sit between what its
// own handler queued before and after them.
func testProxyOrder(t *testing.T, b loop.Backend) {
	p := newProxyPair(t, b, loop.Options{})
	p.do(func(src, dst *conn.Conn) { src.Pause() })
	_, err := p.srcPeer.Write([]byte("held-before-proxy|"))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // the bytes reach the loop and wait there
	p.do(func(src, dst *conn.Conn) {
		assert.NoError(t, dst.SendData([]byte("target-first|")))
		assert.NoError(t, src.ProxyTo(dst, 0))
		src.Resume()
	})
	want := "target-first|held-before-proxy|"
	got := make([]byte, len(want))
	_, err = io.ReadFull(p.dstPeer, got)
	require.NoError(t, err)
	assert.Equal(t, want, string(got))
	// Proxied bytes, then the target's own, then proxied again.
	_, err = p.srcPeer.Write([]byte("spliced-1|"))
	require.NoError(t, err)
	got = make([]byte, len("spliced-1|"))
	_, err = io.ReadFull(p.dstPeer, got)
	require.NoError(t, err)
	p.do(func(src, dst *conn.Conn) { assert.NoError(t, dst.SendData([]byte("own|"))) })
	_, err = p.srcPeer.Write([]byte("spliced-2|"))
	require.NoError(t, err)
	rest := make([]byte, len("own|spliced-2|"))
	_, err = io.ReadFull(p.dstPeer, rest)
	require.NoError(t, err)
	assert.Equal(t, "spliced-1|own|spliced-2|", string(got)+string(rest))
	require.NoError(t, p.g.stop())
}

// testProxyAfterHeader: a handler reads a header line, then proxies the
// rest of the stream (an HTTP CONNECT, a PROXY-protocol line): it sends on
// the part of its chunk after the header itself, and everything the loop
// had received past that chunk (held while the receive was cancelled, when
// the peer's burst was already in) follows in order.
func testProxyAfterHeader(t *testing.T, b loop.Backend) {
	const size = 8 << 20
	p := newProxyPair(t, b, loop.Options{})
	header := []byte("CONNECT somewhere\n")
	payload := randomBytes(t, size)
	var once sync.Once
	receive := func(c *conn.Conn, data []byte) {
		once.Do(func() {
			i := bytes.IndexByte(data, '\n')
			if !assert.GreaterOrEqual(t, i, 0, "the header arrives whole in the first chunk") {
				return
			}
			assert.NoError(t, c.ProxyTo(p.dst, 0))
			assert.NoError(t, p.dst.SendData(data[i+1:]))
			data = nil
		})
		if len(data) > 0 {
			assert.Fail(t, "the handler got bytes after ProxyTo", "%d bytes", len(data))
		}
	}
	p.do(func(*conn.Conn, *conn.Conn) { p.srcH.receive = receive }) // set on the loop goroutine
	got := readAllAsync(p.dstPeer, size)
	_, err := p.srcPeer.Write(append(header, payload...))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, <-got))
	require.NoError(t, p.g.stop())
}

// testProxyStopInFlight: a StopProxy that comes while a splice from the
// source has bytes on their way (forced by a hook that stops the proxy
// just before such a completion is handled): those bytes still reach the
// target, and the handler gets the rest; together they are the stream.
func testProxyStopInFlight(t *testing.T, b loop.Backend) {
	const size = 4 << 20
	var stopped sync.Once
	var stopAt uint64
	restore := loop.SetTestSpliceInHook(func(c *conn.Conn) {
		stopped.Do(func() {
			stopAt = c.ProxiedBytes()
			c.StopProxy()
		})
	})
	defer restore()
	p := newProxyPair(t, b, loop.Options{})
	p.do(func(src, dst *conn.Conn) { assert.NoError(t, src.ProxyTo(dst, 0)) })
	payload := randomBytes(t, size)
	wrote := writeAsync(p.srcPeer, payload)
	atHandler, proxied := p.restAtHandler(t, size)
	require.NoError(t, <-wrote)
	assert.Greater(t, proxied, stopAt, "the bytes in flight at the stop count as proxied")
	atTarget := make([]byte, proxied)
	_, err := io.ReadFull(p.dstPeer, atTarget)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, append(atTarget, atHandler...)))
	require.NoError(t, p.g.stop())
}

// testProxyTargetClosedInFlight: the target closes while a splice from
// the source has bytes on their way to it (forced by a hook that closes
// the target just before such a completion is handled): those bytes reach
// the source's handler after ProxyTargetUnbound, followed by the rest, so
// the handler sees the whole stream.
func testProxyTargetClosedInFlight(t *testing.T, b loop.Backend) {
	const size = 2 << 20
	p := newProxyPair(t, b, loop.Options{})
	var once sync.Once
	restore := loop.SetTestSpliceInHook(func(c *conn.Conn) {
		once.Do(func() { assert.NoError(t, p.dst.Close()) })
	})
	defer restore()
	p.do(func(src, dst *conn.Conn) { assert.NoError(t, src.ProxyTo(dst, 0)) })
	payload := randomBytes(t, size)
	wrote := writeAsync(p.srcPeer, payload)
	expectKind(t, p.srcH.ev, "target_unbound")
	var atHandler bytes.Buffer
	for atHandler.Len() < size {
		atHandler.WriteString(expectKind(t, p.srcH.ev, "data").data)
	}
	require.NoError(t, <-wrote)
	assert.True(t, bytes.Equal(payload, atHandler.Bytes()), "the handler got the stream, the bytes in flight first")
	require.NoError(t, p.g.stop())
}

// testProxyToN: a proxy for n bytes sends exactly those on, runs
// ProxyCompleted once, and the bytes past n reach the source's handler.
func testProxyToN(t *testing.T, b loop.Backend) {
	const n, extra = 3<<20 + 17, 100 << 10
	p := newProxyPair(t, b, loop.Options{})
	p.do(func(src, dst *conn.Conn) {
		assert.Error(t, src.ProxyToN(dst, 0, -1), "negative length")
		assert.NoError(t, src.ProxyToN(dst, 0, n))
	})
	payload := randomBytes(t, n+extra)
	got := readAllAsync(p.dstPeer, n)
	require.NoError(t, writeOddSized(p.srcPeer, payload))
	assert.True(t, bytes.Equal(payload[:n], <-got), "the first n bytes at the target")
	var handler bytes.Buffer
	completed := 0
	for handler.Len() < extra {
		e := next(t, p.srcH.ev)
		switch e.kind {
		case "proxy_completed":
			completed++
			assert.Zero(t, handler.Len(), "ProxyCompleted before the handler's bytes")
		case "data":
			handler.WriteString(e.data)
		default:
			t.Fatalf("unexpected %+v", e)
		}
	}
	assert.Equal(t, 1, completed)
	assert.True(t, bytes.Equal(payload[n:], handler.Bytes()), "the rest at the source's handler")
	p.do(func(src, dst *conn.Conn) { assert.Equal(t, uint64(n), src.ProxiedBytes()) })
	// Nothing more reached the target.
	require.NoError(t, p.dstPeer.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	k, _ := p.dstPeer.Read(make([]byte, 1))
	assert.Zero(t, k)
	require.NoError(t, p.g.stop())
}

// testProxyStop: after StopProxy the source's handler gets the bytes again;
// what the target got and what the handler got make up the stream, in
// order, with nothing lost or repeated.
func testProxyStop(t *testing.T, b loop.Backend) {
	const size = 8 << 20
	p := newProxyPair(t, b, loop.Options{})
	p.do(func(src, dst *conn.Conn) { assert.NoError(t, src.ProxyTo(dst, 0)) })
	payload := randomBytes(t, size)
	var atTarget bytes.Buffer
	targetDone := make(chan struct{})
	go func() {
		defer close(targetDone)
		_, _ = io.Copy(&atTarget, p.dstPeer)
	}()
	wrote := writeAsync(p.srcPeer, payload)
	time.Sleep(20 * time.Millisecond)
	p.do(func(src, dst *conn.Conn) {
		src.StopProxy()
		src.StopProxy() // twice is nothing
	})
	atHandler, proxied := p.restAtHandler(t, size)
	require.NoError(t, <-wrote)
	// ProxiedBytes counts what reached the target's queue: let it drain.
	p.do(func(src, dst *conn.Conn) { assert.NoError(t, dst.CloseAfterWriting()) })
	<-targetDone
	assert.Equal(t, int(proxied), atTarget.Len(), "ProxiedBytes counts what the target got")
	assert.True(t, bytes.Equal(payload, append(atTarget.Bytes(), atHandler...)), "target %d + handler %d bytes", atTarget.Len(), len(atHandler))
	require.NoError(t, p.g.stop())
}

// testProxyTargetUnbound: when the target closes, the source's handler
// hears ProxyTargetUnbound, before the target's Unbind, and receives the
// bytes that come after.
func testProxyTargetUnbound(t *testing.T, b loop.Backend) {
	p := newProxyPair(t, b, loop.Options{})
	p.do(func(src, dst *conn.Conn) { assert.NoError(t, src.ProxyTo(dst, 0)) })
	_, err := p.srcPeer.Write([]byte("to-target"))
	require.NoError(t, err)
	got := make([]byte, len("to-target"))
	_, err = io.ReadFull(p.dstPeer, got)
	require.NoError(t, err)
	require.NoError(t, p.dstPeer.Close())
	told := expectKind(t, p.srcH.ev, "target_unbound")
	assert.Same(t, p.src, told.c)
	unbound := expectKind(t, p.dstH.ev, "unbind")
	// Both are recorded on the loop goroutine, one after the other.
	assert.False(t, unbound.at.Before(told.at), "ProxyTargetUnbound runs before the target's Unbind")
	_, err = p.srcPeer.Write([]byte("to-handler"))
	require.NoError(t, err)
	var at bytes.Buffer
	for at.Len() < len("to-handler") {
		at.WriteString(expectKind(t, p.srcH.ev, "data").data)
	}
	assert.Equal(t, "to-handler", at.String())
	p.do(func(src, dst *conn.Conn) { assert.ErrorIs(t, src.ProxyTo(dst, 0), conn.ErrClosed) })
	require.NoError(t, p.g.stop())
}

// testProxyBackpressure: a target whose peer never reads stops the
// source's reading: the writer to the source stalls, the target's queue
// stays near the buffer size, and once the target's peer reads everything
// arrives byte for byte.
func testProxyBackpressure(t *testing.T, b loop.Backend) {
	const (
		size = 64 << 20
		buf  = 128 << 10
	)
	// Fixed kernel buffers on every socket of the path: with autotuning
	// (receive buffers up to tcp_rmem's maximum, 32 MiB here) the kernel
	// alone could hold what the writer offers.
	const sockBuf = 128 << 10
	p := newProxyPair(t, b, loop.Options{Socket: loop.SocketOptions{ReadBuffer: sockBuf, WriteBuffer: sockBuf}})
	for _, c := range []net.Conn{p.srcPeer, p.dstPeer} {
		require.NoError(t, c.(*net.TCPConn).SetReadBuffer(sockBuf))
		require.NoError(t, c.(*net.TCPConn).SetWriteBuffer(sockBuf))
	}
	p.do(func(src, dst *conn.Conn) { assert.NoError(t, src.ProxyTo(dst, buf)) })
	payload := randomBytes(t, size)
	require.NoError(t, p.srcPeer.SetDeadline(time.Now().Add(4*wait)))
	require.NoError(t, p.dstPeer.SetDeadline(time.Now().Add(4*wait)))
	wrote := writeAsync(p.srcPeer, payload)
	// The writer stalls: the kernel's buffers on both paths hold a few MiB
	// at most, the proxy its buffer and one pipe's worth past it (a splice
	// starts below the buffer size and may fill a pipe).
	select {
	case err := <-wrote:
		t.Fatalf("64 MiB written through a target that never reads (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	var queued int
	p.do(func(src, dst *conn.Conn) { queued = dst.OutboundSize() })
	assert.LessOrEqual(t, queued, buf+loop.ProxyPipeSize, "the target's queue stays bounded")
	got := make([]byte, size)
	_, err := io.ReadFull(p.dstPeer, got)
	require.NoError(t, err)
	require.NoError(t, <-wrote)
	assert.True(t, bytes.Equal(payload, got))
	require.NoError(t, p.g.stop())
}

// testProxyBufferBound: a target whose queue is at or above the proxy's
// buffer size already (its own 32 MiB, which its peer does not read yet)
// takes nothing from the source: the proxy reads no byte until the target
// drains. With a buffer larger than that queue the proxy reads at once,
// and its bytes wait behind the target's own. Either way the target's peer
// gets its own bytes followed by the proxied ones.
func testProxyBufferBound(t *testing.T, b loop.Backend) {
	for _, buf := range []int{64 << 10, 64 << 20} {
		t.Run(fmt.Sprint(buf), func(t *testing.T) { proxyBufferBound(t, b, buf) })
	}
}

func proxyBufferBound(t *testing.T, b loop.Backend, buf int) {
	const own, proxied = 32 << 20, 1 << 20
	p := newProxyPair(t, b, loop.Options{})
	ownBytes, payload := randomBytes(t, own), randomBytes(t, proxied)
	p.do(func(src, dst *conn.Conn) {
		assert.NoError(t, dst.SendData(ownBytes))
		assert.NoError(t, src.ProxyTo(dst, buf))
	})
	wrote := writeAsync(p.srcPeer, payload)
	time.Sleep(200 * time.Millisecond)
	var moved uint64
	var queued int
	p.do(func(src, dst *conn.Conn) { moved, queued = src.ProxiedBytes(), dst.OutboundSize() })
	if buf < own {
		assert.Zero(t, moved, "nothing proxied while the target's queue is above the buffer size")
		assert.Greater(t, queued, buf, "the target's own bytes still wait (else the check above proves nothing)")
	} else {
		assert.NotZero(t, moved, "proxied while the target's queue is below the buffer size")
		assert.Greater(t, queued-int(moved), 0, "the target's own bytes still wait before them")
	}
	require.NoError(t, p.dstPeer.SetDeadline(time.Now().Add(2*wait)))
	got := make([]byte, own+proxied)
	_, err := io.ReadFull(p.dstPeer, got)
	require.NoError(t, err)
	require.NoError(t, <-wrote)
	assert.True(t, bytes.Equal(ownBytes, got[:own]), "the target's own bytes")
	assert.True(t, bytes.Equal(payload, got[own:]), "then the proxied ones")
	require.NoError(t, p.g.stop())
}

// testProxyHalfClose: the source's peer EOF after its bytes: they all reach
// the target, and the source's HalfCloser learns of the EOF; a plain
// handler's source closes with io.EOF.
func testProxyHalfClose(t *testing.T, b loop.Backend) {
	const size = 4 << 20
	p := newProxyPair(t, b, loop.Options{})
	p.do(func(src, dst *conn.Conn) { assert.NoError(t, src.ProxyTo(dst, 0)) })
	payload := randomBytes(t, size)
	got := readAllAsync(p.dstPeer, size)
	require.NoError(t, writeOddSized(p.srcPeer, payload))
	require.NoError(t, p.srcPeer.(*net.TCPConn).CloseWrite())
	assert.True(t, bytes.Equal(payload, <-got))
	assert.ErrorIs(t, expectKind(t, p.srcH.ev, "unbind").err, io.EOF)
	require.NoError(t, p.g.stop())
}

// testProxyErrors: what ProxyTo refuses.
func testProxyErrors(t *testing.T, b loop.Backend) {
	p := newProxyPair(t, b, loop.Options{})
	p.g.do(func(l *loop.Loop) {
		src, dst := p.src, p.dst
		assert.Error(t, src.ProxyTo(nil, 0), "nil target")
		assert.Error(t, src.ProxyTo(src, 0), "itself")
		assert.Error(t, src.ProxyTo(dst, -1), "negative buffer")
		d, err := l.OpenDatagram("127.0.0.1:0", conn.Base{})
		if assert.NoError(t, err) {
			assert.ErrorIs(t, d.ProxyTo(dst, 0), conn.ErrNotStream)
			assert.ErrorIs(t, src.ProxyTo(d, 0), conn.ErrNotStream)
			_ = d.Close()
		}
		assert.NoError(t, src.ProxyTo(dst, 0))
		for _, c := range []*conn.Conn{src, dst} {
			_, err := c.Detach()
			assert.ErrorIs(t, err, conn.ErrCannotDetach, "Detach of a proxy's source or target")
		}
		assert.Error(t, src.StartTLS(&tls.Config{}), "StartTLS on a proxy's source")
		assert.Error(t, dst.StartTLS(&tls.Config{}), "StartTLS on a proxy's target")
		assert.NoError(t, dst.CloseWrite())
		assert.ErrorIs(t, src.ProxyTo(dst, 0), conn.ErrClosed, "a target shut down for writing")
	})
	var other error
	g2 := startLoop(t, b, loop.Options{})
	g2.do(func(l *loop.Loop) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		c, err := l.Connect(ln.Addr().String(), conn.Base{})
		require.NoError(t, err)
		other = c.ProxyTo(p.dst, 0)
		_ = c.Close()
	})
	assert.Error(t, other, "a target of another loop")
	require.NoError(t, g2.stop())
	require.NoError(t, p.g.stop())
}

// testProxyTLS: a TLS source proxies its plaintext to a plain target
// (copied: the bytes pass through crypto/tls), byte for byte.
func testProxyTLS(t *testing.T, b loop.Backend) {
	const size = 4 << 20
	pki := testutil.TestPKI(t)
	p := newProxyPair(t, b, loop.Options{})
	p.do(func(src, dst *conn.Conn) {
		assert.NoError(t, src.StartTLS(&tls.Config{Certificates: []tls.Certificate{pki.Leaf}}))
		assert.NoError(t, src.ProxyTo(dst, 64<<10))
	})
	tc := tls.Client(p.srcPeer, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
	payload := randomBytes(t, size)
	got := readAllAsync(p.dstPeer, size)
	require.NoError(t, writeOddSized(tc, payload))
	assert.True(t, bytes.Equal(payload, <-got))
	p.do(func(src, dst *conn.Conn) { assert.Equal(t, uint64(size), src.ProxiedBytes()) })
	require.NoError(t, p.g.stop())
}

// TestProxyFaults runs proxies through the fault injector on both engines:
// the source's handler reads a header line and then proxies the rest to the
// target with a small buffer, so the bytes already received go through
// faulted receives and the proxy's splices meet EAGAIN, short moves and
// delayed completions; with TLS on the source every byte goes through
// faulted receives and is copied. Every byte is checked at the target's
// peer.
func TestProxyFaults(t *testing.T) {
	const size = 4 << 20
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		for _, tlsSrc := range []bool{false, true} {
			for _, seed := range faultSeeds(t) {
				t.Run(fmt.Sprintf("tls=%v/seed=%d", tlsSrc, seed), func(t *testing.T) {
					testutil.CheckLeaks(t)
					f := faultMix(seed)
					f.Reset = 0 // the connections must live: every byte is checked
					stats, restore := loop.SetTestFaults(f)
					defer restore()
					proxyFaults(t, b, tlsSrc, size)
					st := stats()
					assert.Positive(t, st.Delayed+st.Agains+st.ShortSends+st.SplitRecvs, "faults were injected")
				})
			}
		}
	})
}

func proxyFaults(t *testing.T, b loop.Backend, tlsSrc bool, size int) {
	p := newProxyPair(t, b, loop.Options{})
	pki := testutil.TestPKI(t)
	var header bytes.Buffer // the header line, which the handler reads itself
	receive := func(c *conn.Conn, data []byte) {
		if bytes.HasSuffix(header.Bytes(), []byte("\n")) {
			assert.Fail(t, "the handler got bytes after ProxyTo", "%d bytes", len(data))
			return
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			header.Write(data) // the header comes in pieces
			return
		}
		header.Write(data[:i+1])
		assert.NoError(t, c.ProxyTo(p.dst, 64<<10))
		assert.NoError(t, p.dst.SendData(data[i+1:]))
	}
	p.do(func(src, dst *conn.Conn) {
		p.srcH.receive = receive
		if tlsSrc {
			assert.NoError(t, src.StartTLS(&tls.Config{Certificates: []tls.Certificate{pki.Leaf}}))
		}
	})
	var w io.Writer = p.srcPeer
	if tlsSrc {
		w = tls.Client(p.srcPeer, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
	}
	payload := randomBytes(t, size)
	require.NoError(t, p.srcPeer.SetDeadline(time.Now().Add(4*wait)))
	require.NoError(t, p.dstPeer.SetDeadline(time.Now().Add(4*wait)))
	got := readAllAsync(p.dstPeer, size)
	wrote := make(chan error, 1)
	go func() {
		_, err := w.Write(append([]byte("PROXY please\n"), payload...))
		wrote <- err
	}()
	g := <-got
	require.NoError(t, <-wrote)
	require.Equal(t, len(payload), len(g), "bytes at the target")
	assert.True(t, bytes.Equal(payload, g), "first difference at %d", testutil.FirstDiff(payload, g))
	p.do(func(*conn.Conn, *conn.Conn) { assert.Equal(t, "PROXY please\n", header.String()) }) // the loop's buffer
	require.NoError(t, p.g.stop())
}
