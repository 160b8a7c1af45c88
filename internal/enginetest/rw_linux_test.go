package enginetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestReadWritePipe streams through pipes, which RECV and SEND refuse
// (ENOTSOCK): 3 MB the test writes into a non-blocking pipe in odd chunks
// are read back with Read (submitted before the bytes arrive, so it
// waits for them), and 3 MB are written with Write, in several buffers at
// once (WRITEV) and one (WRITE), resubmitting the rest after short
// completions, and read by the test; every byte is checked. Read reports
// the writer's close as 0 and ends -ECANCELED on Cancel; Write to a pipe
// whose reader is gone fails with -EPIPE (the process is not killed by the
// SIGPIPE the kernel raises).
func TestReadWritePipe(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		const size, pipeSize = 3 << 20, 64 << 10
		pr, pw := newPipe(t, pipeSize)
		ud := uint64(0)

		// A quiet pipe: the Read waits until cancelled.
		ud++
		buf := make([]byte, 32<<10)
		require.NoError(t, e.Read(pr, buf, ud))
		require.NoError(t, e.Cancel(ud))
		assert.Equal(t, -int32(unix.ECANCELED), finalOf(t, reap(t, e, 4, finals(ud)), ud).Res)

		// In: the test -> pipe -> Read.
		in := pattern(size, 71)
		w := background(t, func(stop <-chan struct{}) error {
			return writeChunks(pw, in, []int{1, 4096, 70001, 65536, 333}, stop)
		})
		var got []byte
		for len(got) < size {
			ud++
			require.NoError(t, e.Read(pr, buf, ud))
			c := finalOf(t, reap(t, e, 4, finals(ud)), ud)
			require.Greater(t, c.Res, int32(0), "read: %v", c.Err())
			require.Len(t, c.Buf, int(c.Res))
			got = append(got, c.Buf...)
		}
		result(t, w)
		requireBytes(t, in, got, "read from the pipe")

		// Out: Write -> pipe -> the test.
		out := pattern(size, 72)
		var read []byte
		r := background(t, func(stop <-chan struct{}) (err error) {
			read, err = readN(pr, size, 50000, stop)
			return err
		})
		for sent, i := 0, 0; sent < size; i++ {
			var bufs [][]byte
			if i%2 == 0 {
				// Several buffers, an empty one among them.
				end := min(size, sent+100000)
				mid := sent + (end-sent)/3
				bufs = [][]byte{out[sent:mid], nil, out[mid:end]}
			} else {
				bufs = [][]byte{out[sent:min(size, sent+77777)]}
			}
			ud++
			require.NoError(t, e.Write(pw, bufs, ud))
			c := finalOf(t, reap(t, e, 4, finals(ud)), ud)
			if c.Res == -int32(unix.EAGAIN) {
				continue // nothing written: again
			}
			require.Greater(t, c.Res, int32(0), "write: %v", c.Err())
			sent += int(c.Res)
		}
		result(t, r)
		requireBytes(t, out, read, "written to the pipe")

		// The writer's close: EOF.
		rd, wr := rawPipe(t)
		defer unix.Close(rd)
		ud++
		require.NoError(t, e.Read(rd, buf, ud))
		_, err := unix.Write(wr, []byte("last"))
		require.NoError(t, err)
		c := finalOf(t, reap(t, e, 4, finals(ud)), ud)
		require.Equal(t, "last", string(c.Buf))
		require.NoError(t, unix.Close(wr))
		ud++
		require.NoError(t, e.Read(rd, buf, ud))
		assert.Equal(t, int32(0), finalOf(t, reap(t, e, 4, finals(ud)), ud).Res, "EOF")

		// The reader's close: EPIPE.
		rd2, wr2 := rawPipe(t)
		defer unix.Close(wr2)
		require.NoError(t, unix.Close(rd2))
		ud++
		require.NoError(t, e.Write(wr2, [][]byte{[]byte("nobody reads")}, ud))
		assert.Equal(t, -int32(unix.EPIPE), finalOf(t, reap(t, e, 4, finals(ud)), ud).Res)

		// Bad arguments.
		assert.Error(t, e.Read(pr, nil, ud+1))
		assert.Error(t, e.Read(-1, buf, ud+1))
		assert.Error(t, e.Write(-1, [][]byte{buf}, ud+1))
	})
}

// TestReleasePipe: Release hands a descriptor back open, with no operation
// of the engine left on it: a pipe read end the engine read from is still
// readable by the test afterwards, and its bytes are all there.
func TestReleasePipe(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		pr, pw := newPipe(t, 64<<10)
		buf := make([]byte, 100)
		_, err := unix.Write(pw, []byte("first"))
		require.NoError(t, err)
		require.NoError(t, e.Read(pr, buf, 1))
		require.Equal(t, "first", string(finalOf(t, reap(t, e, 4, finals(1)), 1).Buf))
		fd, err := e.Release(pr)
		require.NoError(t, err)
		require.Equal(t, pr, fd, "a process fd is its own")
		_, err = unix.Write(pw, []byte("second"))
		require.NoError(t, err)
		n, err := unix.Read(fd, buf)
		require.NoError(t, err)
		assert.Equal(t, "second", string(buf[:n]))
	})
}

// rawPipe returns a non-blocking pipe the test closes itself.
func rawPipe(t *testing.T) (r, w int) {
	t.Helper()
	var fds [2]int
	require.NoError(t, unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	return fds[0], fds[1]
}

// TestReleaseAccepted: Release of an accepted connection (a direct
// descriptor on the direct rows) returns a process fd the test owns: a
// non-blocking, close-on-exec descriptor of the same socket, which reads
// what the peer sent after the engine's last receive and writes back, and
// which stays open after the engine closes the direct descriptor with
// CloseFD (freeing its slot).
func TestReleaseAccepted(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		client, server := enginePairOwned(t, e, "127.0.0.1")
		buf := make([]byte, 100)
		_, err := unix.Write(client.fd, []byte("to the engine"))
		require.NoError(t, err)
		require.NoError(t, e.Recv(server.fd, buf, 1))
		require.Equal(t, "to the engine", string(finalOf(t, reap(t, e, 4, finals(1)), 1).Buf))

		fd, err := e.Release(server.fd)
		require.NoError(t, err)
		if fd != server.fd {
			// An installed process fd: the direct descriptor is closed
			// through the engine, the process fd by the test.
			defer unix.Close(fd)
			require.NoError(t, e.CloseFD(server.fd, 2))
			assert.Equal(t, int32(0), finalOf(t, reap(t, e, 4, finals(2)), 2).Res)
			server.closed = true
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		require.NoError(t, err)
		assert.NotZero(t, flags&unix.FD_CLOEXEC, "close-on-exec")
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		require.NoError(t, err)
		assert.NotZero(t, fl&unix.O_NONBLOCK, "non-blocking")

		_, err = unix.Write(client.fd, []byte("to the new owner"))
		require.NoError(t, err)
		got, err := readN(fd, len("to the new owner"), 100, nil)
		require.NoError(t, err)
		assert.Equal(t, "to the new owner", string(got))
		_, err = unix.Write(fd, []byte("back"))
		require.NoError(t, err)
		got, err = readN(client.fd, 4, 100, nil)
		require.NoError(t, err)
		assert.Equal(t, "back", string(got))
	})
}

// TestReleaseUnderMultishot: Release of a socket whose multishot receive
// ran (as a Detach does: release, then cancel the receive) leaves the
// engine holding nothing of it, its hang-up watch included: once the new
// owner closes it, the peer reads the EOF. (A watch left armed would keep
// the socket open in the ring: the peer would wait for ever.)
func TestReleaseUnderMultishot(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		ours, peer := own(t, fds[0]), fds[1]
		closeLater(t, peer)
		require.NoError(t, e.RecvMultishot(ours.fd, 1))
		_, err = unix.Write(peer, []byte("before"))
		require.NoError(t, err)
		cs := reap(t, e, 4, func(cs []completion) bool { return len(dataOf(cs, 1)) == len("before") })
		require.Equal(t, "before", string(dataOf(cs, 1)))

		fd, err := e.Release(ours.fd)
		require.NoError(t, err)
		require.Equal(t, ours.fd, fd, "a process fd is released as itself")
		require.NoError(t, e.Cancel(1))
		fin := finalOf(t, reap(t, e, 4, finals(1)), 1)
		require.Equal(t, -int32(unix.ECANCELED), fin.Res, "the cancel ends the receive: %v", fin.Err())
		quiet(t, e, 10*time.Millisecond)
		assert.Zero(t, e.InFlight())

		require.NoError(t, ours.close())
		require.True(t, pollFD(peer, unix.POLLIN, 2*time.Second), "the peer sees no EOF after the owner's close")
		n, err := unix.Read(peer, make([]byte, 8))
		require.NoError(t, err)
		assert.Zero(t, n, "EOF")
	})
}
