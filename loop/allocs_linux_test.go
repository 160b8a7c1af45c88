package loop_test

import (
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// TestEchoAllocsPerRequest: an echo server in the steady state allocates
// nothing per request on either engine (receive, ReceiveData, SendData, the
// send and its completion). The client drives 16 connections with raw
// blocking system calls, which allocate nothing either, so the process's
// allocation count over 16,000 round trips is the loop's, and it must stay
// below one per hundred requests (what the runtime and the test framework
// allocate on their own in that time).
func TestEchoAllocsPerRequest(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		echoAllocs(t, b, loop.RecvMultishot)
	})
	t.Run("uring-bundle", func(t *testing.T) {
		testutil.RequireURing(t)
		echoAllocs(t, loop.URing, loop.RecvMultishotBundle)
	})
}

// echoAllocs is TestEchoAllocsPerRequest on backend b with receive mode recv.
func echoAllocs(t *testing.T, b loop.Backend, recv loop.URingRecvMode) {
	testutil.CheckLeaks(t)
	const conns, size, warm, rounds = 16, 64, 200, 1000
	g := startLoop(t, b, loop.Options{URing: loop.URingOptions{Recv: recv}})
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		return &hazardFunc{recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
	})
	fds := make([]int, conns)
	for i := range fds {
		fds[i] = rawDial(t, addr.(*net.TCPAddr))
	}
	out := make([][]byte, conns)
	for i := range out {
		out[i] = make([]byte, size)
	}
	in := make([]byte, size)
	round := func(r int) error {
		for i, fd := range fds {
			for j := range out[i] {
				out[i][j] = byte(r*7 + i*3 + j)
			}
			if err := full(fd, out[i], unix.Write, "write"); err != nil {
				return err
			}
		}
		for i, fd := range fds {
			if err := full(fd, in, unix.Read, "read"); err != nil {
				return err
			}
			for j := range in {
				if in[j] != out[i][j] {
					return fmt.Errorf("round %d, connection %d: byte %d is %d, want %d", r, i, j, in[j], out[i][j])
				}
			}
		}
		return nil
	}
	for r := range warm {
		require.NoError(t, round(r))
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for r := range rounds {
		if err := round(warm + r); err != nil {
			require.NoError(t, err)
		}
	}
	runtime.ReadMemStats(&after)
	n := conns * rounds
	per := float64(after.Mallocs-before.Mallocs) / float64(n)
	t.Logf("%s, %s: %.4f allocations and %.2f bytes per request (%d requests)",
		b, recv, per, float64(after.TotalAlloc-before.TotalAlloc)/float64(n), n)
	assert.Less(t, per, 0.01, "allocations per echoed request")
	require.NoError(t, g.stop())
}

// rawDial connects a blocking TCP socket to a with system calls only (no
// netpoller, no allocation per read or write) and closes it at cleanup.
func rawDial(t *testing.T, a *net.TCPAddr) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = unix.Close(fd) })
	sa := &unix.SockaddrInet4{Port: a.Port}
	copy(sa.Addr[:], a.IP.To4())
	require.NoError(t, unix.Connect(fd, sa))
	require.NoError(t, unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1))
	// A reply that never comes fails the read instead of hanging the test.
	tv := unix.NsecToTimeval(int64(wait))
	require.NoError(t, unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	require.NoError(t, unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv))
	return fd
}

// full moves all of p through the blocking socket fd with call (unix.Read
// or unix.Write), resuming after a signal cut a call short; a call that
// moves nothing is the end of the stream.
func full(fd int, p []byte, call func(int, []byte) (int, error), name string) error {
	for len(p) > 0 {
		n, err := call(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if n == 0 {
			return fmt.Errorf("%s: EOF with %d bytes to go", name, len(p))
		}
		p = p[n:]
	}
	return nil
}
