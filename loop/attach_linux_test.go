package loop_test

import (
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

// fileFD returns a duplicate of the descriptor behind c (a *net.TCPListener,
// *net.TCPConn, ...), owned by the caller; c is closed.
func fileFD(t *testing.T, c interface {
	File() (*os.File, error)
	Close() error
}) int {
	t.Helper()
	f, err := c.File()
	require.NoError(t, err)
	fd, err := unix.Dup(int(f.Fd()))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, c.Close())
	return fd
}

// testAttach: AttachServer serves a listener made elsewhere (its Addr is
// the listener's, Stop closes the descriptor); Attach adopts a connected
// TCP socket and a Unix socketpair end as connections, which echo and
// close their descriptor with them; descriptors that are not what each
// takes are refused and left open.
func testAttach(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	lfd := fileFD(t, ln.(*net.TCPListener))
	var srv *loop.Server
	g.do(func(l *loop.Loop) {
		srv, err = l.AttachServer(lfd, echoFactory(t))
	})
	require.NoError(t, err)
	assert.Equal(t, addr, srv.Addr().String())
	testutil.EchoOnce(t, dial(t, srv.Addr()), "through an attached listener")
	g.do(func(*loop.Loop) { assert.NoError(t, srv.Stop()) })
	// The close follows the reaping of the listener's accept, an
	// iteration or more later on io_uring process fds.
	assert.Eventually(t, func() bool {
		_, err := unix.FcntlInt(uintptr(lfd), unix.F_GETFD, 0)
		return err == unix.EBADF
	}, wait, time.Millisecond, "Stop closed the attached listener")

	// A connected TCP socket accepted elsewhere.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln2.Close()
	client := dial(t, ln2.Addr())
	accepted, err := ln2.Accept()
	require.NoError(t, err)
	cfd := fileFD(t, accepted.(*net.TCPConn))
	ev := make(chan event, 16)
	var c *conn.Conn
	g.do(func(l *loop.Loop) {
		h := &handler{t: t, ev: ev}
		h.receive = func(c *conn.Conn, data []byte) { assert.NoError(t, c.SendData(data)) }
		c, err = l.Attach(cfd, h)
	})
	require.NoError(t, err)
	expectKind(t, ev, "post_init")
	testutil.EchoOnce(t, client, "through an attached connection")
	require.NoError(t, client.Close())
	assert.ErrorIs(t, expectKind(t, ev, "unbind").err, io.EOF)
	assert.NotNil(t, c)

	// A Unix socketpair end.
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	peer := os.NewFile(uintptr(pair[1]), "peer")
	defer peer.Close()
	g.do(func(l *loop.Loop) {
		_, err = l.Attach(pair[0], echoFactory(t)())
	})
	require.NoError(t, err)
	testutil.EchoOnce(t, peer, "through an attached socketpair")

	// Refused, and left open.
	var p [2]int
	f, err := os.CreateTemp(t.TempDir(), "regular")
	require.NoError(t, err)
	p[0], err = unix.Dup(int(f.Fd())) // a regular file: neither socket nor pipe
	require.NoError(t, err)
	require.NoError(t, f.Close())
	p[1], err = unix.Dup(p[0])
	require.NoError(t, err)
	udp, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	listening := fileFD(t, lis.(*net.TCPListener))
	plain, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	g.do(func(l *loop.Loop) {
		h := conn.Base{}
		_, err := l.Attach(p[0], h)
		assert.ErrorIs(t, err, unix.ENOTSOCK, "a regular file")
		_, err = l.Attach(udp, h)
		assert.ErrorContains(t, err, "not a stream socket")
		_, err = l.Attach(listening, h)
		assert.ErrorContains(t, err, "listening socket")
		_, err = l.AttachServer(plain, echoFactory(t))
		assert.ErrorContains(t, err, "not a listening socket")
		_, err = l.Attach(-1, h)
		assert.ErrorIs(t, err, unix.EBADF)
		_, err = l.Attach(udp, nil)
		assert.ErrorIs(t, err, loop.ErrNilFunc)
		_, err = l.AttachServer(listening, nil)
		assert.ErrorIs(t, err, loop.ErrNilFunc)
	})
	for _, fd := range []int{p[0], p[1], udp, listening, plain} {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		assert.NoError(t, err, "fd %d left open", fd)
		unix.Close(fd)
	}
	require.NoError(t, g.stop())
}
