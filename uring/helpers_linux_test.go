package uring

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/internal/leakcheck"
)

func TestMain(m *testing.M) {
	// Warm up what opens long-lived fds on first use (the runtime's netpoller, via os), so
	// the per-test fd leak check sees only the test's own fds.
	if f, err := os.CreateTemp("", "uring-warmup"); err == nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}
	os.Exit(m.Run())
}

// newRing locks the test goroutine to its thread (SINGLE_ISSUER), creates a ring and
// closes it when the test ends, checking fds.
func newRing(t testing.TB, entries uint32, opts *Options) *Ring {
	t.Helper()
	leakcheck.Check(t)
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	r, err := New(entries, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		// Tests that close the ring themselves leave ErrClosed here.
		if err := r.Close(); !errors.Is(err, ErrClosed) {
			require.NoError(t, err)
		}
	})
	return r
}

// sqe returns a fresh SQE or fails the test.
func sqe(t testing.TB, r *Ring) *SQE {
	t.Helper()
	s, ok := r.GetSQE()
	require.True(t, ok, "SQ full")
	return s
}

// reap submits and collects exactly n CQEs, failing after a generous deadline.
func reap(t testing.TB, r *Ring, n int) []CQE {
	t.Helper()
	var got []CQE
	buf := make([]CQE, 64)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n {
		require.True(t, time.Now().Before(deadline), "got %d of %d CQEs: %+v", len(got), n, got)
		_, err := r.SubmitAndWait(1, 100*time.Millisecond)
		require.NoError(t, err)
		k := r.PeekCQEs(buf[:min(len(buf), n-len(got))])
		got = append(got, buf[:k]...)
	}
	return got
}

// byUserData indexes CQEs by user data, failing on duplicates of non-multishot results.
func byUserData(cqes []CQE) map[uint64][]CQE {
	m := make(map[uint64][]CQE)
	for _, c := range cqes {
		m[c.UserData] = append(m[c.UserData], c)
	}
	return m
}

func closeOnCleanup(t testing.TB, fds ...int) {
	t.Helper()
	t.Cleanup(func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	})
}

func socketpair(t testing.TB) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	closeOnCleanup(t, fds[0], fds[1])
	return fds[0], fds[1]
}

func pipe(t testing.TB) (int, int) {
	t.Helper()
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	closeOnCleanup(t, p[0], p[1])
	return p[0], p[1]
}

// listenTCP returns a listening socket on 127.0.0.1 and its port.
func listenTCP(t testing.TB) (int, int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	closeOnCleanup(t, fd)
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(fd, 16))
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	return fd, sa.(*unix.SockaddrInet4).Port
}

// dialTCP connects a blocking socket to 127.0.0.1:port.
func dialTCP(t testing.TB, port int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	closeOnCleanup(t, fd)
	require.NoError(t, unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}))
	return fd
}

// tcpPair returns two connected TCP sockets over loopback.
func tcpPair(t testing.TB) (int, int) {
	t.Helper()
	ln, port := listenTCP(t)
	c := dialTCP(t, port)
	s, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
	require.NoError(t, err)
	closeOnCleanup(t, s)
	return c, s
}

func readAll(t testing.TB, fd int, n int) []byte {
	t.Helper()
	out := make([]byte, 0, n)
	buf := make([]byte, n)
	for len(out) < n {
		k, err := unix.Read(fd, buf[:n-len(out)])
		require.NoError(t, err)
		if k == 0 {
			break
		}
		out = append(out, buf[:k]...)
	}
	return out
}
