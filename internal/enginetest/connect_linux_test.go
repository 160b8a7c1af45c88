package enginetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// refusedAddr returns an address on ip where nothing listens: a bound TCP
// socket that never listens, kept open so no one else takes the port.
func refusedAddr(t testing.TB, ip string) unix.Sockaddr {
	t.Helper()
	_, sa := boundSocket(t, ip, unix.SOCK_STREAM)
	return sa
}

// checkConnected checks that fd is connected to the listener ln at sa: the
// peer name is sa, and bytes written on fd come out of the accepted end.
func checkConnected(t testing.TB, fd, ln int, sa unix.Sockaddr) {
	t.Helper()
	peer, err := unix.Getpeername(fd)
	require.NoError(t, err)
	assert.Equal(t, addrPort(sa), addrPort(peer))
	require.True(t, pollFD(ln, unix.POLLIN, deadline), "accept timed out")
	s, _, err := unix.Accept4(ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	require.NoError(t, err)
	closeLater(t, s)
	msg := pattern(333, 77)
	n, err := unix.Write(fd, msg)
	require.NoError(t, err)
	require.Equal(t, len(msg), n)
	got, err := readN(s, len(msg), 4096, nil)
	require.NoError(t, err)
	requireBytes(t, msg, got, "bytes over the connection")
}

// TestConnect connects to a listener (Res 0, the socket really connected)
// and to a port where nothing listens (Res -ECONNREFUSED), over 127.0.0.1
// and ::1.
func TestConnect(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		ud := uint64(0)
		for _, ip := range []string{"127.0.0.1", "::1"} {
			if !canBind(ip) {
				t.Logf("skipping %s: cannot bind to it", ip)
				continue
			}
			ud += 2
			ln, sa := listenTCP(t, ip, 16)
			fd := newSocket(t, sa, unix.SOCK_STREAM)
			require.NoError(t, e.Connect(fd, sa, ud))
			c := finalOf(t, reap(t, e, 4, finals(ud)), ud)
			require.Equal(t, int32(0), c.Res, "%s: connect: %v", ip, c.Err())
			checkConnected(t, fd, ln, sa)

			refused := refusedAddr(t, ip)
			fd = newSocket(t, refused, unix.SOCK_STREAM)
			require.NoError(t, e.Connect(fd, refused, ud+1))
			c = finalOf(t, reap(t, e, 4, finals(ud+1)), ud+1)
			assert.Equal(t, -int32(unix.ECONNREFUSED), c.Res, "%s: connect to a closed port: %v", ip, c.Err())
		}
		assert.Zero(t, e.InFlight())
	})
}

// TestConnectTimeout bounds connects in the kernel (io_uring only; the loop
// bounds epoll's with a timer): a connect to a listener whose accept queue
// is full runs out its timeout with -ETIME, a connect that succeeds or is
// refused in time is not affected and leaves no completion behind,
// UpdateConnectTimeout shortens a pending one, and Cancel ends one with
// -ECANCELED.
func TestConnectTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		ct, ok := e.(connectTimeouter)
		if !ok {
			t.Skip("no ConnectTimeout on this engine: the loop bounds its connects with a timer")
		}
		hole := blackhole(t, "127.0.0.1")

		// Runs out.
		fd := newSocket(t, hole, unix.SOCK_STREAM)
		start := time.Now()
		require.NoError(t, ct.ConnectTimeout(fd, hole, 100*time.Millisecond, 1))
		cs := reap(t, e, 4, finals(1))
		took := time.Since(start)
		require.Len(t, of(cs, 1), 1, "completions: %s", describe(cs))
		assert.Equal(t, -int32(unix.ETIME), finalOf(t, cs, 1).Res, "connect timed out: %v", finalOf(t, cs, 1).Err())
		assert.GreaterOrEqual(t, took, 100*time.Millisecond, "the timeout fired early")

		// Succeeds in time, and is refused in time.
		ln, sa := listenTCP(t, "127.0.0.1", 16)
		fd = newSocket(t, sa, unix.SOCK_STREAM)
		require.NoError(t, ct.ConnectTimeout(fd, sa, 10*time.Second, 2))
		c := finalOf(t, reap(t, e, 4, finals(2)), 2)
		require.Equal(t, int32(0), c.Res, "connect: %v", c.Err())
		checkConnected(t, fd, ln, sa)
		refused := refusedAddr(t, "127.0.0.1")
		fd = newSocket(t, refused, unix.SOCK_STREAM)
		require.NoError(t, ct.ConnectTimeout(fd, refused, 10*time.Second, 3))
		c = finalOf(t, reap(t, e, 4, finals(3)), 3)
		assert.Equal(t, -int32(unix.ECONNREFUSED), c.Res, "connect to a closed port: %v", c.Err())
		// The timeouts these connects were linked to must leave nothing.
		quiet(t, e, 50*time.Millisecond)
		assert.Zero(t, e.InFlight())

		// UpdateConnectTimeout shortens an hour to 100 ms.
		fd = newSocket(t, hole, unix.SOCK_STREAM)
		require.NoError(t, ct.ConnectTimeout(fd, hole, time.Hour, 4))
		quiet(t, e, 50*time.Millisecond)
		require.NoError(t, ct.UpdateConnectTimeout(4, 100*time.Millisecond))
		cs = reap(t, e, 4, finals(4))
		require.Len(t, of(cs, 4), 1, "completions: %s", describe(cs))
		assert.Equal(t, -int32(unix.ETIME), finalOf(t, cs, 4).Res, "updated connect timeout: %v", finalOf(t, cs, 4).Err())
		assert.ErrorIs(t, ct.UpdateConnectTimeout(4, time.Second), unix.ENOENT, "update of a finished connect")
		assert.ErrorIs(t, ct.UpdateConnectTimeout(99, time.Second), unix.ENOENT, "update of an unknown token")

		// Cancel.
		fd = newSocket(t, hole, unix.SOCK_STREAM)
		require.NoError(t, ct.ConnectTimeout(fd, hole, time.Hour, 5))
		quiet(t, e, 20*time.Millisecond)
		require.NoError(t, e.Cancel(5))
		cs = reap(t, e, 4, finals(5))
		require.Len(t, of(cs, 5), 1, "completions: %s", describe(cs))
		assert.Equal(t, -int32(unix.ECANCELED), finalOf(t, cs, 5).Res, "cancelled connect: %v", finalOf(t, cs, 5).Err())
		quiet(t, e, 50*time.Millisecond)
		assert.Zero(t, e.InFlight())
	})
}
