package loop_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
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

// getPKI is the test PKI: a CA (Pool), Leaf signed by it and Self.
func getPKI(t *testing.T) *testutil.PKI { return testutil.TestPKI(t) }

// tlsEchoHandler starts TLS at once (or after a plaintext "STARTTLS" line
// when starttls is set) and echoes the plaintext.
type tlsEchoHandler struct {
	*handler
	cfg      *tls.Config
	starttls bool
	upgraded bool
}

func (h *tlsEchoHandler) PostInit(c *conn.Conn) {
	h.handler.PostInit(c)
	if !h.starttls {
		assert.NoError(h.t, c.StartTLS(h.cfg))
		assert.Error(h.t, c.StartTLS(h.cfg), "twice")
	}
}

func (h *tlsEchoHandler) ReceiveData(c *conn.Conn, data []byte) {
	if h.starttls && !h.upgraded {
		assert.Equal(h.t, "STARTTLS\n", string(data))
		assert.NoError(h.t, c.SendData([]byte("GO AHEAD\n")))
		assert.NoError(h.t, c.StartTLS(h.cfg))
		h.upgraded = true
		return
	}
	assert.NoError(h.t, c.SendData(data))
}

func (h *tlsEchoHandler) HandshakeCompleted(c *conn.Conn) {
	st, ok := c.TLSConnectionState()
	assert.True(h.t, ok)
	assert.True(h.t, st.HandshakeComplete)
	h.record(event{kind: "handshake", data: tls.VersionName(st.Version), c: c})
}

// serveTLSEcho starts a tlsEchoHandler server with the test PKI's leaf
// (TLS at once, or after "STARTTLS" when starttls is set), recording on ev
// (nil: not at all), postInit run for each connection (nil: none).
func serveTLSEcho(t *testing.T, g *bgLoop, ev chan event, starttls bool, postInit func(c *conn.Conn)) net.Addr {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{getPKI(t).Leaf}}
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := &tlsEchoHandler{handler: newHandler(t), cfg: cfg, starttls: starttls}
		h.ev = ev
		h.postInit = postInit
		return h
	})
	return addr
}

// tlsRoundTrip writes payload through a TLS client in odd-sized pieces
// while reading, and checks every byte of the echo.
func tlsRoundTrip(c net.Conn, payload []byte) error {
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- writeOddSized(c, payload) }()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if i := testutil.FirstDiff(payload, got); i >= 0 {
		return fmt.Errorf("echo differs from byte %d of %d", i, len(payload))
	}
	return nil
}

// testTLSServer: a Go crypto/tls client against a TLS echo server whose
// small outbound watermarks pause it mid-stream (the ciphertext not yet
// decrypted waits for Resume); every byte is checked; the client's
// close_notify ends the connection with io.EOF.
func testTLSServer(t *testing.T, b loop.Backend) {
	p := getPKI(t)
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 64)
	addr := serveTLSEcho(t, g, ev, false, func(c *conn.Conn) { assert.NoError(t, c.SetOutboundLimits(16<<10, 64<<10, 0)) })
	c, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: p.Pool})
	require.NoError(t, err)
	defer c.Close()
	expectKind(t, ev, "post_init")
	assert.Equal(t, "TLS 1.3", expectKind(t, ev, "handshake").data)
	require.NoError(t, tlsRoundTrip(c, randomBytes(t, 4<<20)))
	require.NoError(t, c.Close())
	drained := 0
	for {
		e := next(t, ev)
		if e.kind == "drained" {
			drained++
			continue
		}
		assert.Equal(t, "unbind", e.kind)
		assert.ErrorIs(t, e.err, io.EOF)
		break
	}
	assert.Positive(t, drained, "the echo paused at the high watermark")
	require.NoError(t, g.stop())
}

// testTLSClient: a client connection of the loop against a Go crypto/tls
// echo server, TLS started from PostInit before the connection exists;
// what it sends before the handshake completes is queued; the host name
// given to Connect is verified; CloseAfterWriting sends close_notify.
func testTLSClient(t *testing.T, b loop.Backend) {
	p := getPKI(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{p.Leaf}, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12})
	require.NoError(t, err)
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		_, err = io.Copy(c, c) // returns at the client's close_notify
		serverErr <- err
	}()
	g := startLoop(t, b, loop.Options{})
	payload := randomBytes(t, 1<<20)
	h := &tlsClient{handler: newHandler(t), cfg: &tls.Config{RootCAs: p.Pool}, payload: payload}
	g.do(func(l *loop.Loop) {
		_, err := l.Connect(ln.Addr().String(), h)
		assert.NoError(t, err)
	})
	expectKind(t, h.ev, "post_init")
	expectKind(t, h.ev, "completed")
	assert.Equal(t, "TLS 1.2", expectKind(t, h.ev, "handshake").data)
	u := expectKind(t, h.ev, "unbind")
	assert.NoError(t, u.err)
	assert.True(t, bytes.Equal(payload, h.got.Bytes()), "echo differs")
	select {
	case err := <-serverErr:
		assert.NoError(t, err, "the server read a clean close_notify")
	case <-time.After(wait):
		t.Fatal("server did not finish")
	}
	require.NoError(t, g.stop())
}

// tlsClient sends its payload (from PostInit: queued through connect and
// handshake), reads the echo, and closes after writing once it is back.
type tlsClient struct {
	*handler
	cfg     *tls.Config
	payload []byte
	got     bytes.Buffer
}

func (h *tlsClient) PostInit(c *conn.Conn) {
	h.handler.PostInit(c)
	assert.NoError(h.t, c.StartTLS(h.cfg))
	_, ok := c.TLSConnectionState()
	assert.False(h.t, ok, "no state before the handshake")
	assert.NoError(h.t, c.SendData(h.payload))
	assert.GreaterOrEqual(h.t, c.OutboundSize(), len(h.payload), "queued plaintext is counted")
}

func (h *tlsClient) ReceiveData(c *conn.Conn, data []byte) {
	h.got.Write(data)
	if h.got.Len() == len(h.payload) {
		assert.NoError(h.t, c.CloseAfterWriting())
	}
}

func (h *tlsClient) HandshakeCompleted(c *conn.Conn) {
	st, ok := c.TLSConnectionState()
	assert.True(h.t, ok)
	// Verified against the host Connect was given (an IP: no SNI is sent,
	// so st.ServerName stays empty); without one crypto/tls would refuse.
	if assert.NotEmpty(h.t, st.PeerCertificates) {
		assert.NoError(h.t, st.PeerCertificates[0].VerifyHostname("127.0.0.1"))
	}
	h.record(event{kind: "handshake", data: tls.VersionName(st.Version), c: c})
}

// testTLSVerify: a client refuses an untrusted chain and a wrong host
// name; the failure is the Unbind reason.
func testTLSVerify(t *testing.T, b loop.Backend) {
	p := getPKI(t)
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		cfg  *tls.Config
		want string
	}{
		{"self-signed", p.Self, &tls.Config{RootCAs: p.Pool}, "certificate"},
		{"expired", p.Expired, &tls.Config{RootCAs: p.Pool}, "expired"},
		{"system roots", p.Leaf, &tls.Config{}, "certificate"},
		{"wrong host", p.Leaf, &tls.Config{RootCAs: p.Pool, ServerName: "wrong.example"}, "wrong.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{tc.cert}})
			require.NoError(t, err)
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					_, _ = io.Copy(io.Discard, c)
					c.Close()
				}
			}()
			g := startLoop(t, b, loop.Options{})
			h := newHandler(t)
			h.postInit = func(c *conn.Conn) { assert.NoError(t, c.StartTLS(tc.cfg)) }
			h.receive = func(*conn.Conn, []byte) { assert.Fail(t, "data from an unverified server") }
			g.do(func(l *loop.Loop) {
				_, err := l.Connect(ln.Addr().String(), h)
				assert.NoError(t, err)
			})
			expectKind(t, h.ev, "post_init")
			expectKind(t, h.ev, "completed") // TCP connected; the handshake fails
			u := expectKind(t, h.ev, "unbind")
			var op *conn.OpError
			if assert.ErrorAs(t, u.err, &op) {
				assert.Equal(t, "tls handshake", op.Op)
			}
			assert.ErrorContains(t, u.err, tc.want)
			require.NoError(t, g.stop())
		})
	}
}

// testTLSBadPeers: a peer that stalls mid-handshake is closed after the
// handshake timeout; one that sends something else than a ClientHello is
// closed with the TLS error; a server config without a certificate is
// refused at once.
func testTLSBadPeers(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{TLSHandshakeTimeout: 300 * time.Millisecond})
	ev := make(chan event, 64)
	addr := serveTLSEcho(t, g, ev, false, nil)
	// Stalls: a ClientHello's first bytes, then nothing.
	c := dial(t, addr)
	_, err := c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
	require.NoError(t, err)
	expectKind(t, ev, "post_init")
	u := expectKind(t, ev, "unbind")
	assert.ErrorIs(t, u.err, conn.ErrTLSHandshakeTimeout)
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	_, err = io.ReadAll(c)
	assert.NoError(t, err, "closed by the server")

	// Garbage.
	c2 := dial(t, addr)
	_, err = io.WriteString(c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	expectKind(t, ev, "post_init")
	u = expectKind(t, ev, "unbind")
	var op *conn.OpError
	if assert.ErrorAs(t, u.err, &op) {
		assert.Equal(t, "tls handshake", op.Op)
	}

	// No certificate.
	h := newHandler(t)
	h.postInit = func(c *conn.Conn) {
		assert.ErrorContains(t, c.StartTLS(&tls.Config{}), "certificate")
		assert.Error(t, c.StartTLS(nil))
		_ = c.Close()
	}
	_, addr2 := g.startServer("127.0.0.1:0", func() conn.Handler { return h })
	c3 := dial(t, addr2)
	expectKind(t, h.ev, "post_init")
	expectKind(t, h.ev, "unbind")
	_ = c3.Close()
	require.NoError(t, g.stop())
}

// testTLSStartTLS: a plaintext exchange, then the upgrade (STARTTLS), then
// an echo over TLS on the same connection.
func testTLSStartTLS(t *testing.T, b loop.Backend) {
	p := getPKI(t)
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 64)
	addr := serveTLSEcho(t, g, ev, true, nil)
	raw := dial(t, addr)
	_, err := io.WriteString(raw, "STARTTLS\n")
	require.NoError(t, err)
	require.NoError(t, raw.SetDeadline(time.Now().Add(wait)))
	line, err := bufio.NewReader(raw).ReadString('\n') // nothing else comes before the handshake
	require.NoError(t, err)
	assert.Equal(t, "GO AHEAD\n", line)
	c := tls.Client(raw, &tls.Config{RootCAs: p.Pool, ServerName: "localhost"})
	require.NoError(t, tlsRoundTrip(c, randomBytes(t, 256<<10)))
	expectKind(t, ev, "post_init")
	expectKind(t, ev, "handshake")
	require.NoError(t, c.Close())
	require.NoError(t, g.stop())
}

// testTLSStopMidHandshake: stopping the loop while handshakes wait for
// bytes ends their goroutines (the leak check of the conformance table
// fails otherwise) and Unbinds the connections.
func testTLSStopMidHandshake(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 64)
	addr := serveTLSEcho(t, g, ev, false, nil)
	var conns []net.Conn
	for range 8 {
		conns = append(conns, dial(t, addr))
	}
	for range conns {
		expectKind(t, ev, "post_init")
	}
	require.NoError(t, g.stop())
	for range conns {
		u := expectKind(t, ev, "unbind")
		assert.False(t, errors.Is(u.err, conn.ErrTLSHandshakeTimeout))
	}
	for _, c := range conns {
		_ = c.Close()
	}
}

// testTLSCloseWriteEarly: CloseWrite called before the handshake is over
// waits for it: the queued data, then close_notify, then the FIN; the
// peer's answer still arrives.
func testTLSCloseWriteEarly(t *testing.T, b loop.Backend) {
	p := getPKI(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{p.Leaf}})
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		all, err := io.ReadAll(c) // until close_notify
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(all)
		_, _ = c.Write([]byte("bye"))
	}()
	g := startLoop(t, b, loop.Options{})
	h := newHandler(t)
	h.postInit = func(c *conn.Conn) {
		assert.NoError(t, c.StartTLS(&tls.Config{RootCAs: p.Pool}))
		assert.NoError(t, c.SendData([]byte("request")))
		assert.NoError(t, c.CloseWrite())
	}
	g.do(func(l *loop.Loop) {
		_, err := l.Connect(ln.Addr().String(), h)
		assert.NoError(t, err)
	})
	select {
	case s := <-got:
		assert.Equal(t, "request", s)
	case <-time.After(wait):
		t.Fatal("server read nothing")
	}
	expectKind(t, h.ev, "post_init")
	expectKind(t, h.ev, "completed")
	assert.Equal(t, "bye", expectKind(t, h.ev, "data").data)
	assert.ErrorIs(t, expectKind(t, h.ev, "unbind").err, io.EOF)
	require.NoError(t, g.stop())
}

// TestTLSFaultEcho streams TLS through an echo server whose engine (either)
// is wrapped in the fault injector: receives split anywhere (records cut
// across deliveries), short and deferred sends, EAGAIN, ENOBUFS, cancels
// and delayed completions, while low outbound watermarks pause and resume
// reading all the time (ciphertext held for Resume). Every byte of every
// connection must come back. No resets: a reset connection's bytes are
// not checkable.
func TestTLSFaultEcho(t *testing.T) {
	const conns, size = 16, 256 << 10
	p := getPKI(t)
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		for _, seed := range faultSeeds(t) {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				testutil.CheckLeaks(t)
				f := faultMix(seed)
				f.Reset = 0
				stats, restore := loop.SetTestFaults(f)
				defer restore()
				g := startLoop(t, b, loop.Options{})
				addr := serveTLSEcho(t, g, nil, false, func(c *conn.Conn) { assert.NoError(t, c.SetOutboundLimits(16<<10, 48<<10, 0)) })
				var wg sync.WaitGroup
				for range conns {
					wg.Add(1)
					go func() {
						defer wg.Done()
						c, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: p.Pool})
						if !assert.NoError(t, err) {
							return
						}
						defer c.Close()
						assert.NoError(t, tlsRoundTrip(c, randomBytes(t, size)))
					}()
				}
				wg.Wait()
				require.NoError(t, g.stop())
				st := stats()
				assert.Positive(t, st.SplitRecvs, "records were split")
				assert.Positive(t, st.ShortSends, "short sends")
			})
		}
	})
}
