package enginetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/uring/engine"
)

// TestCancel cancels armed receives on an accepted connection: with nothing
// to read the final
// completion is -ECANCELED; with data racing the cancel, whatever the
// receive reported first is kept (a final -ENOBUFS included: io_uring's
// provided buffers ran out) and no byte is lost or duplicated (the rest is
// still in the socket). A cancel of an unknown token is an error
// wrapping ENOENT on epoll and nothing at all on io_uring.
func TestCancel(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		a, b := enginePair(t, e, "127.0.0.1")

		require.NoError(t, e.Recv(b, make([]byte, 64), 1))
		require.NoError(t, e.RecvMultishot(b, 2))
		quiet(t, e, 20*time.Millisecond)
		require.NoError(t, e.Cancel(1))
		require.NoError(t, e.Cancel(2))
		cs := reap(t, e, 4, finals(1, 2))
		require.Len(t, cs, 2, "completions: %s", describe(cs))
		assert.Equal(t, -int32(unix.ECANCELED), finalOf(t, cs, 1).Res)
		assert.Equal(t, -int32(unix.ECANCELED), finalOf(t, cs, 2).Res)
		assert.Zero(t, e.InFlight())

		// Data racing the cancel: each round writes a chunk, arms a
		// receive, gives it a moment or none, and cancels it.
		var sent, got bytes.Buffer
		for round := range 40 {
			ud := uint64(100 + round)
			chunk := pattern(100+37*round, uint32(round+1))
			sent.Write(chunk)
			n, err := unix.Write(a, chunk)
			require.NoError(t, err)
			require.Equal(t, len(chunk), n)
			buf := make([]byte, 64)
			if round%2 == 0 {
				require.NoError(t, e.RecvMultishot(b, ud))
			} else {
				require.NoError(t, e.Recv(b, buf, ud))
			}
			if round%4 >= 2 {
				dst := make([]completion, 8)
				n, err := e.Wait(0, dst)
				require.NoError(t, err)
				for _, c := range dst[:n] {
					require.Equal(t, ud, c.UserData)
					if c.Res > 0 {
						got.Write(c.Buf)
					}
					require.True(t, c.More || c.Res > 0 || c.Res == -int32(unix.ENOBUFS), "round %d: %s", round, describe(dst[:n]))
					if !c.More {
						ud = 0 // finished before the cancel
					}
				}
			}
			if ud == 0 {
				continue
			}
			require.NoError(t, e.Cancel(ud))
			cs := reap(t, e, 8, finals(ud))
			fin := finalOf(t, cs, ud)
			require.NotZero(t, fin.Res, "round %d: end of stream on an open connection", round)
			if fin.Res < 0 && fin.Res != -int32(unix.ENOBUFS) {
				require.Equal(t, -int32(unix.ECANCELED), fin.Res, "round %d: %v", round, fin.Err())
			}
			got.Write(dataOf(cs, ud))
		}
		require.LessOrEqual(t, got.Len(), sent.Len())
		got.Write(recvN(t, e, b, sent.Len()-got.Len(), 65536, 99))
		requireBytes(t, sent.Bytes(), got.Bytes(), "bytes around cancelled receives")

		err := e.Cancel(12345)
		if _, isEpoll := e.(*epollEng); isEpoll {
			assert.ErrorIs(t, err, unix.ENOENT, "epoll: cancel of an unknown token")
		} else {
			assert.NoError(t, err, "io_uring: cancel of an unknown token")
		}
		quiet(t, e, 20*time.Millisecond)
		assert.Zero(t, e.InFlight())
	})
}

// TestCancelFD cancels every operation on one fd (a multishot receive and a
// send blocked on a full buffer) with -ECANCELED, and leaves the operations
// of other fds alone: on AF_UNIX socket pairs, then on accepted TCP
// connections (direct descriptors on the direct rows).
func TestCancelFD(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		a, _ := unixPair(t)
		c, d := unixPair(t)
		checkCancelFD(t, e, a, c, d)

		_, a = enginePair(t, e, "127.0.0.1")
		c, d = enginePair(t, e, "127.0.0.1")
		checkCancelFD(t, e, a, c, d)
	})
}

// TestCancelFDAccept cancels a multishot accept by its listener with
// CancelFD, after it has accepted a connection: its final completion is
// -ECANCELED, and a connection made afterwards is left in the listener's
// queue.
func TestCancelFDAccept(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		ln, sa := listenTCP(t, "127.0.0.1", 16)
		require.NoError(t, e.AcceptMultishot(ln, 1))
		dialTCP(t, sa)
		cs := reap(t, e, 4, func(cs []completion) bool { return len(cs) > 0 })
		for _, c := range cs {
			if c.UserData == 1 && c.Res >= 0 {
				closeAccepted(t, e, int(c.Res))
			}
		}
		require.Len(t, cs, 1, "completions: %s", describe(cs))
		require.True(t, cs[0].More, "the accept ended: %v", cs[0].Err())
		requireAcceptedKind(t, e, int(cs[0].Res))

		require.NoError(t, e.CancelFD(ln))
		cs = reap(t, e, 4, finals(1))
		require.Len(t, cs, 1, "completions after the CancelFD: %s", describe(cs))
		assert.Equal(t, -int32(unix.ECANCELED), cs[0].Res, "CancelFD of the listener: %v", cs[0].Err())
		dialTCP(t, sa)
		quiet(t, e, 20*time.Millisecond)
		require.True(t, pollFD(ln, unix.POLLIN, deadline), "the connection made after the cancel must wait in the queue")
		assert.Zero(t, e.InFlight())
	})
}

// checkCancelFD is TestCancelFD on the stream socket a, whose peer never
// reads, and the connected pair c (the test's) and d (the engine's).
func checkCancelFD(t *testing.T, e eng, a, c, d int) {
	t.Helper()
	require.NoError(t, e.SetSockOptInt(a, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096))
	sendUntilBlocked(t, e, a, 2)
	require.NoError(t, e.RecvMultishot(a, 1))
	buf := make([]byte, 16)
	require.NoError(t, e.Recv(d, buf, 3))
	quiet(t, e, 20*time.Millisecond)
	require.Equal(t, 3, e.InFlight())

	// Neither engine indexes sends: a Cancel of the send's token finds
	// nothing (ENOENT on epoll, no error on io_uring) and leaves it in flight.
	if err := e.Cancel(2); err != nil {
		require.ErrorIs(t, err, unix.ENOENT)
	}
	quiet(t, e, 20*time.Millisecond)
	require.Equal(t, 3, e.InFlight(), "the send after a Cancel of its token")

	require.NoError(t, e.CancelFD(a))
	t.Logf("waiting for the final completions of the receive (1) and the send (2) that CancelFD cancels")
	cs := reap(t, e, 4, finals(1, 2))
	assert.Equal(t, -int32(unix.ECANCELED), finalOf(t, cs, 1).Res, "multishot receive")
	assert.Equal(t, -int32(unix.ECANCELED), finalOf(t, cs, 2).Res, "send")
	assert.Empty(t, of(cs, 3), "the other fd's receive")
	assert.Equal(t, 1, e.InFlight())

	// The other fd's receive still works.
	msg := pattern(16, 2)
	_, err := unix.Write(c, msg)
	require.NoError(t, err)
	r := finalOf(t, reap(t, e, 4, finals(3)), 3)
	require.Equal(t, int32(16), r.Res)
	requireBytes(t, msg, buf, "receive on the other fd")
	assert.Zero(t, e.InFlight())
}

// sendUntilBlocked sends on fd, whose peer never reads, until a send (token
// ud) finds the send buffer full: it returns with that send in flight.
// Sends that complete (short, or -EAGAIN) are followed by the next.
func sendUntilBlocked(t testing.TB, e eng, fd int, ud uint64) {
	t.Helper()
	chunk := pattern(64<<10, 3)
	dst := make([]completion, 4)
	for range 1000 { // 64 MB: far more than any socket buffer
		require.NoError(t, e.Send(fd, [][]byte{chunk}, ud))
		done := false
		for end := time.Now().Add(200 * time.Millisecond); !done && time.Now().Before(end); {
			n, err := e.Wait(20*time.Millisecond, dst)
			require.NoError(t, err)
			for _, c := range dst[:n] {
				require.Equal(t, ud, c.UserData, "completions while filling the send buffer: %s", describe(dst[:n]))
				if c.final() {
					require.True(t, c.Res > 0 || c.Res == -int32(unix.EAGAIN), "send while filling the buffer: %v", c.Err())
					done = true
				}
			}
		}
		if !done {
			return
		}
	}
	t.Fatal("the send buffer never filled")
}

// TestCloseFD closes an fd through the engine: Res 0, and the fd is really
// closed. A descriptor that is not open gives -EBADF. An accepted
// connection (a direct descriptor on the direct rows) closed so is closed
// for its peer too, which reads end of stream, and a second close of it
// gives -EBADF on the direct rows (a process fd's number may be reused).
func TestCloseFD(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		o := own(t, fd)
		require.NoError(t, e.CloseFD(fd, 1))
		o.closed = true // the engine's now
		c := finalOf(t, reap(t, e, 4, finals(1)), 1)
		require.Equal(t, int32(0), c.Res, "close: %v", c.Err())
		_, err = unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		assert.ErrorIs(t, err, unix.EBADF, "fd %d is still open after CloseFD", fd)

		const notOpen = 1 << 20
		_, err = unix.FcntlInt(notOpen, unix.F_GETFD, 0)
		require.ErrorIs(t, err, unix.EBADF)
		require.NoError(t, e.CloseFD(notOpen, 2))
		c = finalOf(t, reap(t, e, 4, finals(2)), 2)
		assert.Equal(t, -int32(unix.EBADF), c.Res, "close of an fd that is not open: %v", c.Err())

		client, server := enginePairOwned(t, e, "127.0.0.1")
		require.NoError(t, e.CloseFD(server.fd, 3))
		server.closed = true
		c = finalOf(t, reap(t, e, 4, finals(3)), 3)
		require.Equal(t, int32(0), c.Res, "close of an accepted connection: %v", c.Err())
		got, err := readN(client.fd, 1, 16, nil)
		require.NoError(t, err, "the peer of a closed connection")
		assert.Empty(t, got, "the peer of a closed connection reads end of stream")
		if engine.IsDirect(server.fd) {
			require.NoError(t, e.CloseFD(server.fd, 4))
			c = finalOf(t, reap(t, e, 4, finals(4)), 4)
			assert.Equal(t, -int32(unix.EBADF), c.Res, "a second close of a direct descriptor: %v", c.Err())
		}
		assert.Zero(t, e.InFlight())
	})
}

// TestShutdownThenClose shuts down an accepted connection, closes it with
// CloseFD at once and arms an accept that takes the descriptor the close
// frees (on the direct rows the same slot), all before the next Wait, 20
// times over: the connection accepted next is untouched — its peer reads
// no end of stream, and it sends and receives. On io_uring a shutdown of a
// direct descriptor left as IORING_OP_SHUTDOWN runs on a kernel worker,
// which looks the slot up only when it runs, after the close and the
// accept: it shut the new connection down instead (a proxy saw its next
// send to the backend fail with EPIPE).
func TestShutdownThenClose(t *testing.T) {
	const nextUD = 0xACCE_0000_0002
	forEachEngine(t, func(t *testing.T, e eng) {
		ln, sa := listenTCP(t, "127.0.0.1", 16)
		for round := range 20 {
			client, server := enginePairOwned(t, e, "127.0.0.1")
			next := own(t, dialTCP(t, sa)) // waits in ln's backlog
			require.True(t, pollFD(next.fd, unix.POLLOUT, deadline), "round %d: connect timed out", round)

			require.NoError(t, e.Shutdown(server.fd, unix.SHUT_WR))
			require.NoError(t, e.CloseFD(server.fd, closeUD))
			server.closed = true
			require.NoError(t, e.AcceptMultishot(ln, nextUD))
			cs := reap(t, e, 8, func(cs []completion) bool {
				return finals(closeUD)(cs) && len(of(cs, nextUD)) > 0
			})
			require.Equal(t, int32(0), finalOf(t, cs, closeUD).Res, "round %d: CloseFD: %v", round, finalOf(t, cs, closeUD).Err())
			acc := of(cs, nextUD)
			require.Len(t, acc, 1, "round %d: completions: %s", round, describe(cs))
			require.GreaterOrEqual(t, acc[0].Res, int32(0), "round %d: accept: %v", round, acc[0].Err())
			accepted := closeAccepted(t, e, int(acc[0].Res))
			require.NoError(t, e.Cancel(nextUD))
			reap(t, e, 4, finals(nextUD))

			got, err := readN(client.fd, 1, 16, nil)
			require.NoError(t, err, "round %d: the peer of the shut-down connection", round)
			require.Empty(t, got, "round %d: the peer of the shut-down connection reads end of stream", round)

			// The next connection: nothing to read (an end of stream
			// would be), and a message each way.
			require.False(t, pollFD(next.fd, unix.POLLIN, 20*time.Millisecond),
				"round %d: the connection accepted after the close (%#x, the closed one was %#x) was shut down", round, accepted.fd, server.fd)
			msg := pattern(100, uint32(round))
			sendAll(t, e, accepted.fd, [][]byte{msg}, 5)
			back, err := readN(next.fd, len(msg), 256, nil)
			require.NoError(t, err)
			requireBytes(t, msg, back, "bytes the next connection sent")
			_, err = unix.Write(next.fd, msg)
			require.NoError(t, err)
			requireBytes(t, msg, recvN(t, e, accepted.fd, len(msg), 256, 6), "bytes the next connection received")
			closeDirect(t, e, accepted, closeUD)
			require.NoError(t, client.close())
			require.NoError(t, next.close())
		}
		assert.Zero(t, e.InFlight())
	})
}
