package loop_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// numbered returns n bytes of big-endian 32-bit counters: every byte says
// where it belongs, so a loss or a duplicate shows at its offset.
func numbered(n int) []byte {
	b := make([]byte, (n+3)&^3)
	for i := 0; i < len(b); i += 4 {
		binary.BigEndian.PutUint32(b[i:], uint32(i/4))
	}
	return b[:n]
}

// testDetach: a connection detached in the middle of a stream hands its
// descriptor back without losing or repeating a byte. The peer sends 16 MB
// of numbered bytes; the handler detaches after 1 MB, from ReceiveData, so
// the loop's receive is in flight: what ReceiveData got before Unbind
// (ErrDetached), followed by what the test then reads from the returned
// descriptor, is exactly what was sent, EOF included; the descriptor is a
// non-blocking, close-on-exec process fd that writes back to the peer. (On
// io_uring the accepted connection is a direct descriptor unless the suite
// runs with process fds.) The same again detached 20 ms after a Pause, so
// the bytes held meanwhile must reach ReceiveData before Unbind. A
// detached pipe end works the same way, and Detach refuses queued output,
// a TLS connection, a datagram socket, a client still connecting and a
// closed connection, each with its error.
func testDetach(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})

	detachMidStream(t, g, false)
	detachMidStream(t, g, true)

	// A pipe's read end: detached after its first bytes, the rest read
	// from the returned descriptor.
	r, w := pipePair(t)
	defer unix.Close(w)
	ev2 := make(chan event, 16)
	var pfd int
	g.do(func(l *loop.Loop) {
		h := &handler{t: t, ev: ev2}
		h.receive = func(c *conn.Conn, data []byte) {
			ev2 <- event{kind: "data", data: string(data)}
			var err error
			pfd, err = c.Detach()
			assert.NoError(t, err)
		}
		_, err := l.Attach(r, h)
		require.NoError(t, err)
	})
	expectKind(t, ev2, "post_init")
	_, err := unix.Write(w, []byte("first"))
	require.NoError(t, err)
	assert.Equal(t, "first", expectKind(t, ev2, "data").data)
	assert.ErrorIs(t, expectKind(t, ev2, "unbind").err, conn.ErrDetached)
	require.Equal(t, r, pfd, "a pipe end is a process fd")
	_, err = unix.Write(w, []byte("second"))
	require.NoError(t, err)
	require.NoError(t, unix.SetNonblock(pfd, false))
	buf := make([]byte, 64)
	n, err := unix.Read(pfd, buf)
	require.NoError(t, err)
	assert.Equal(t, "second", string(buf[:n]))
	require.NoError(t, unix.Close(pfd))

	// Refusals.
	ev := make(chan event, 16)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, addr2 := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := &handler{t: t, ev: ev}
		h.postInit = func(c *conn.Conn) {
			require.NoError(t, c.SendData(make([]byte, 1<<20)))
			_, err := c.Detach()
			assert.ErrorIs(t, err, conn.ErrCannotDetach, "queued output")
			assert.ErrorContains(t, err, "queued")
			require.NoError(t, c.Close())
			_, err = c.Detach()
			assert.ErrorIs(t, err, conn.ErrClosed, "closed")
		}
		return h
	})
	dial(t, addr2)
	expectKind(t, ev, "post_init")
	assert.NoError(t, expectKind(t, ev, "unbind").err)
	_, addr3 := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := &handler{t: t, ev: ev}
		h.postInit = func(c *conn.Conn) {
			require.NoError(t, c.StartTLS(&tls.Config{Certificates: []tls.Certificate{testutil.TestPKI(t).Leaf}}))
			_, err := c.Detach()
			assert.ErrorIs(t, err, conn.ErrCannotDetach, "TLS")
			assert.ErrorContains(t, err, "TLS")
			require.NoError(t, c.Close())
		}
		return h
	})
	dial(t, addr3)
	expectKind(t, ev, "post_init")
	assert.NoError(t, expectKind(t, ev, "unbind").err)
	g.do(func(l *loop.Loop) {
		c, err := l.Connect(ln.Addr().String(), &handler{t: t, ev: ev})
		require.NoError(t, err)
		_, err = c.Detach()
		assert.ErrorIs(t, err, conn.ErrCannotDetach, "connecting")
		require.NoError(t, c.Close())

		d, err := l.OpenDatagram("127.0.0.1:0", &handler{t: t, ev: ev})
		require.NoError(t, err)
		_, err = d.Detach()
		assert.ErrorIs(t, err, conn.ErrNotStream, "datagram")
		require.NoError(t, d.Close())
	})
	require.NoError(t, g.stop())
}

// detachMidStream is testDetach's stream: 16 MB of numbered bytes from a
// peer, detached after 1 MB (pause: after a Pause, 20 ms later, so the
// bytes of the receive in flight are held, not delivered, when Detach
// comes), then a write back through the descriptor.
func detachMidStream(t *testing.T, g *bgLoop, pause bool) {
	const size, after = 16 << 20, 1 << 20
	ev := make(chan event, 16)
	var before bytes.Buffer
	var fd int
	var detachErr error
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		h := &handler{t: t, ev: ev}
		var detach func(c *conn.Conn)
		paused := false
		h.receive = func(c *conn.Conn, data []byte) {
			before.Write(data)
			if before.Len() >= after && fd == 0 && detachErr == nil && !paused {
				if pause {
					// Paused first: what the receive in flight brings is
					// held, and must reach ReceiveData before Unbind.
					paused = true
					c.Pause()
					_, err := loop.Of(c).AddTimer(20*time.Millisecond, func() { detach(c) })
					require.NoError(t, err)
					return
				}
				detach(c)
			}
		}
		detach = func(c *conn.Conn) {
			fd, detachErr = c.Detach()
			// Nothing more to send, and Close leaves the fd alone.
			assert.ErrorIs(t, c.SendData([]byte("x")), conn.ErrClosed)
			assert.NoError(t, c.Close())
			_, err := c.Detach()
			assert.ErrorIs(t, err, conn.ErrClosed, "detached twice")
		}
		return h
	})
	peer := dial(t, addr)
	require.NoError(t, peer.SetDeadline(time.Now().Add(4*wait)))
	sent := numbered(size)
	wrote := make(chan error, 1)
	go func() {
		_, err := peer.Write(sent)
		wrote <- errors.Join(err, peer.(*net.TCPConn).CloseWrite())
	}()
	expectKind(t, ev, "post_init")
	u := expectKind(t, ev, "unbind")
	require.NoError(t, detachErr)
	require.Greater(t, fd, 2)
	assert.ErrorIs(t, u.err, conn.ErrDetached)
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	require.NoError(t, err)
	assert.NotZero(t, flags&unix.FD_CLOEXEC, "close-on-exec")
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	require.NoError(t, err)
	assert.NotZero(t, fl&unix.O_NONBLOCK, "non-blocking")

	require.NoError(t, unix.SetNonblock(fd, false))
	f := os.NewFile(uintptr(fd), "detached")
	defer f.Close()
	rest, err := io.ReadAll(f)
	require.NoError(t, err)
	require.NoError(t, <-wrote)
	t.Logf("pause %v: %d bytes before Unbind, %d read from the descriptor", pause, before.Len(), len(rest))
	testutil.RequireSameBytes(t, sent, append(before.Bytes(), rest...), "delivered then read")

	_, err = f.Write([]byte("from the new owner"))
	require.NoError(t, err)
	back := make([]byte, len("from the new owner"))
	_, err = io.ReadFull(peer, back)
	require.NoError(t, err)
	assert.Equal(t, "from the new owner", string(back))
}
