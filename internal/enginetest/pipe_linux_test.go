package enginetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// newPipe returns a non-blocking pipe of at least size bytes, closed at the
// end of the test.
func newPipe(t testing.TB, size int) (r, w int) {
	t.Helper()
	var fds [2]int
	require.NoError(t, unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	closeLater(t, fds[0], fds[1])
	_, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, size)
	require.NoError(t, err)
	return fds[0], fds[1]
}

// TestSplicePipe moves a stream through a pipe without user memory: 3 MB
// the peer writes are spliced from the engine's socket into a pipe
// (SpliceIn, submitted before the bytes arrive, so it waits for them) and
// read back, then spliced from a pipe to the socket (SpliceOut, resubmitted
// after short completions) and read by the peer; every byte is checked.
// SpliceIn reports the peer's EOF as 0, and a SpliceIn waiting on a quiet
// socket ends -ECANCELED on Cancel.
func TestSplicePipe(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		const size, pipeSize = 3 << 20, 256 << 10
		b, a := enginePair(t, e, "127.0.0.1")
		pr, pw := newPipe(t, pipeSize)
		ud := uint64(0)

		// A quiet socket: the SpliceIn waits until cancelled.
		ud++
		require.NoError(t, e.SpliceIn(a, pw, pipeSize, ud))
		require.NoError(t, e.Cancel(ud))
		assert.Equal(t, -int32(unix.ECANCELED), finalOf(t, reap(t, e, 4, finals(ud)), ud).Res)

		// In: peer -> socket -> pipe -> the test.
		in := pattern(size, 61)
		w := background(t, func(stop <-chan struct{}) error {
			return writeChunks(b, in, []int{1, 4096, 70001, 65536}, stop)
		})
		var got []byte
		buf := make([]byte, pipeSize)
		for len(got) < size {
			ud++
			require.NoError(t, e.SpliceIn(a, pw, pipeSize, ud))
			c := finalOf(t, reap(t, e, 4, finals(ud)), ud)
			require.Greater(t, c.Res, int32(0), "splice in: %v", c.Err())
			for left := int(c.Res); left > 0; {
				n, err := unix.Read(pr, buf[:left])
				require.NoError(t, err)
				got = append(got, buf[:n]...)
				left -= n
			}
		}
		result(t, w)
		requireBytes(t, in, got, "spliced in")

		// Out: the test -> pipe -> socket -> peer, short completions
		// resubmitted.
		out := pattern(size, 62)
		var read []byte
		r := background(t, func(stop <-chan struct{}) (err error) {
			read, err = readN(b, size, 65536, stop)
			return err
		})
		for sent := 0; sent < size; {
			n, err := unix.Write(pw, out[sent:min(size, sent+pipeSize)])
			require.NoError(t, err)
			for left := n; left > 0; {
				ud++
				require.NoError(t, e.SpliceOut(a, pr, left, ud))
				c := finalOf(t, reap(t, e, 4, finals(ud)), ud)
				require.Greater(t, c.Res, int32(0), "splice out: %v", c.Err())
				left -= int(c.Res)
			}
			sent += n
		}
		result(t, r)
		requireBytes(t, out, read, "spliced out")

		// The peer's EOF.
		require.NoError(t, unix.Shutdown(b, unix.SHUT_WR))
		ud++
		require.NoError(t, e.SpliceIn(a, pw, pipeSize, ud))
		assert.Equal(t, int32(0), finalOf(t, reap(t, e, 4, finals(ud)), ud).Res, "EOF")

		// Bad arguments.
		assert.Error(t, e.SpliceIn(a, -1, 1, ud+1))
		assert.Error(t, e.SpliceOut(a, pr, 0, ud+1))
	})
}
