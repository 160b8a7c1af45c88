package enginetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestCancel cancels armed receives: with nothing to read the final
// completion is -ECANCELED; with data racing the cancel, whatever the
// receive reported first is kept (a final -ENOBUFS included: io_uring's
// provided buffers ran out) and no byte is lost or duplicated (the rest is
// still in the socket). A cancel of an unknown token is an error
// wrapping ENOENT on epoll and nothing at all on io_uring.
func TestCancel(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		a, b := tcpPair(t, "127.0.0.1")

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
		rest, err := readN(b, sent.Len()-got.Len(), 65536, nil)
		require.NoError(t, err)
		got.Write(rest)
		requireBytes(t, sent.Bytes(), got.Bytes(), "bytes around cancelled receives")

		err = e.Cancel(12345)
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
// of other fds alone.
func TestCancelFD(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		a, _ := unixPair(t)
		c, d := unixPair(t)
		// Fill a's send buffer: its peer never reads.
		require.NoError(t, unix.SetsockoptInt(a, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096))
		fill := make([]byte, 4096)
		for {
			_, err := unix.Write(a, fill)
			if err == unix.EAGAIN {
				break
			}
			require.NoError(t, err)
		}
		require.NoError(t, e.RecvMultishot(a, 1))
		require.NoError(t, e.Send(a, [][]byte{pattern(1000, 1)}, 2))
		buf := make([]byte, 16)
		require.NoError(t, e.Recv(d, buf, 3))
		quiet(t, e, 20*time.Millisecond)
		require.Equal(t, 3, e.InFlight())

		require.NoError(t, e.CancelFD(a))
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
	})
}

// TestCloseFD closes an fd through the engine: Res 0, and the fd is really
// closed. A descriptor that is not open gives -EBADF.
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
		assert.Zero(t, e.InFlight())
	})
}
