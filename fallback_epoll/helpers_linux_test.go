package epoll_test

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	epoll "github.com/ringmachine/ringmachine/fallback_epoll"
	"github.com/ringmachine/ringmachine/internal/leakcheck"
)

// newPoller returns a Poller closed at the end of the test, with a leak check.
func newPoller(t testing.TB, opts epoll.Options) *epoll.Poller {
	t.Helper()
	leakcheck.Check(t)
	p, err := epoll.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

// closeLater closes fds at the end of the test.
func closeLater(t testing.TB, fds ...int) {
	t.Helper()
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
}

// sockaddr returns the socket address of ip:port and its family.
func sockaddr(t testing.TB, ip string, port int) (unix.Sockaddr, int) {
	t.Helper()
	a := netip.MustParseAddr(ip)
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: port}, unix.AF_INET
	}
	return &unix.SockaddrInet6{Addr: a.As16(), Port: port}, unix.AF_INET6
}

// port returns the port of an inet socket address.
func port(sa unix.Sockaddr) int {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port
	case *unix.SockaddrInet6:
		return sa.Port
	}
	return -1
}

// socket opens a non-blocking socket bound to ip:0 and returns it with its
// address; it skips the test when the address family is not available.
func socket(t testing.TB, ip string, typ int) (int, unix.Sockaddr) {
	t.Helper()
	sa, family := sockaddr(t, ip, 0)
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err == unix.EAFNOSUPPORT {
		t.Skipf("no %s sockets: %v", ip, err)
	}
	require.NoError(t, err)
	closeLater(t, fd)
	if err := unix.Bind(fd, sa); err == unix.EADDRNOTAVAIL {
		t.Skipf("cannot bind %s: %v", ip, err)
	} else {
		require.NoError(t, err)
	}
	bound, err := unix.Getsockname(fd)
	require.NoError(t, err)
	return fd, bound
}

// listenTCP returns a non-blocking listening socket on ip:0 and its address.
func listenTCP(t testing.TB, ip string) (int, unix.Sockaddr) {
	t.Helper()
	fd, sa := socket(t, ip, unix.SOCK_STREAM)
	require.NoError(t, unix.Listen(fd, 128))
	return fd, sa
}

// dialTCP returns a non-blocking socket with connect(2) started to sa.
func dialTCP(t testing.TB, sa unix.Sockaddr) int {
	t.Helper()
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	closeLater(t, fd)
	if err := unix.Connect(fd, sa); err != unix.EINPROGRESS {
		require.NoError(t, err)
	}
	return fd
}

// pollFD waits (blocking the test goroutine) for events on fd.
func pollFD(t testing.TB, fd int, events int16) {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		n, err := unix.Poll(pfd, 5000)
		if err == unix.EINTR {
			continue
		}
		require.NoError(t, err)
		require.Equal(t, 1, n, "poll timed out")
		return
	}
}

// tcpPair returns two connected non-blocking TCP sockets over ip.
func tcpPair(t testing.TB, ip string) (client, server int) {
	t.Helper()
	ln, sa := listenTCP(t, ip)
	client = dialTCP(t, sa)
	pollFD(t, ln, unix.POLLIN)
	server, _, err := unix.Accept4(ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	require.NoError(t, err)
	closeLater(t, server)
	pollFD(t, client, unix.POLLOUT)
	return client, server
}

// unixPair returns a non-blocking AF_UNIX stream socket pair.
func unixPair(t testing.TB) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	closeLater(t, fds[0], fds[1])
	return fds[0], fds[1]
}

// reap calls Wait with a dst of dstLen until done(all completions so far)
// holds, copying each Buf since it is only valid until the next Wait.
func reap(t testing.TB, p *epoll.Poller, dstLen int, done func([]epoll.Completion) bool) []epoll.Completion {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	dst := make([]epoll.Completion, dstLen)
	var all []epoll.Completion
	for !done(all) {
		require.True(t, time.Now().Before(deadline), "timed out; completions so far: %v", all)
		n, err := p.Wait(100*time.Millisecond, dst)
		require.NoError(t, err)
		for _, c := range dst[:n] {
			c.Buf = bytes.Clone(c.Buf)
			all = append(all, c)
		}
	}
	return all
}

// finals returns a done function for reap that holds once every token in
// uds has had its final completion.
func finals(uds ...uint64) func([]epoll.Completion) bool {
	return func(cs []epoll.Completion) bool {
		for _, ud := range uds {
			if !slices.ContainsFunc(cs, func(c epoll.Completion) bool { return c.UserData == ud && !c.More() }) {
				return false
			}
		}
		return true
	}
}

// final returns the final completion of ud in cs.
func final(t testing.TB, cs []epoll.Completion, ud uint64) epoll.Completion {
	t.Helper()
	i := slices.IndexFunc(cs, func(c epoll.Completion) bool { return c.UserData == ud && !c.More() })
	require.GreaterOrEqual(t, i, 0, "no final completion for %d in %v", ud, cs)
	return cs[i]
}

// received concatenates the data of ud's completions.
func received(cs []epoll.Completion, ud uint64) []byte {
	var b []byte
	for _, c := range cs {
		if c.UserData == ud && c.Res > 0 {
			b = append(b, c.Buf...)
		}
	}
	return b
}

// pattern returns n deterministic pseudo-random bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
