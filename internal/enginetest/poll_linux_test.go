package enginetest

import (
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestPoll: a poll for POLLIN waits until the peer writes; one for POLLOUT
// on a socket with room completes at once; one on a pidfd completes once
// its process has exited; one on a quiet socket ends -ECANCELED on Cancel;
// a mask without POLLIN or POLLOUT is refused.
func TestPoll(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		b, a := enginePair(t, e, "127.0.0.1")

		require.NoError(t, e.Poll(a, unix.POLLOUT, 1))
		c := finalOf(t, reap(t, e, 4, finals(1)), 1)
		assert.NotZero(t, c.Res&unix.POLLOUT, "writable: %#x", c.Res)

		require.NoError(t, e.Poll(a, unix.POLLIN, 2))
		_, err := unix.Write(b, []byte("x"))
		require.NoError(t, err)
		c = finalOf(t, reap(t, e, 4, finals(2)), 2)
		assert.NotZero(t, c.Res&unix.POLLIN, "readable: %#x", c.Res)

		// Level: the byte is still there, so a new poll completes at once.
		require.NoError(t, e.Poll(a, unix.POLLIN, 3))
		assert.NotZero(t, finalOf(t, reap(t, e, 4, finals(3)), 3).Res&unix.POLLIN)

		// A quiet direction, cancelled.
		buf := make([]byte, 1)
		_, err = unix.Read(b, buf) // nothing to read: b has sent, not received
		assert.ErrorIs(t, err, unix.EAGAIN)
		require.NoError(t, e.Poll(b, unix.POLLIN, 4))
		require.NoError(t, e.Cancel(4))
		assert.Equal(t, -int32(unix.ECANCELED), finalOf(t, reap(t, e, 4, finals(4)), 4).Res)

		// A process's exit.
		cmd := exec.Command("sleep", "0.05")
		require.NoError(t, cmd.Start())
		pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
		require.NoError(t, err)
		closeLater(t, pidfd)
		require.NoError(t, e.Poll(pidfd, unix.POLLIN, 5))
		c = finalOf(t, reap(t, e, 4, finals(5)), 5)
		assert.NotZero(t, c.Res&unix.POLLIN, "exited: %#x", c.Res)
		require.NoError(t, cmd.Wait())

		assert.Error(t, e.Poll(a, unix.POLLPRI, 6), "neither POLLIN nor POLLOUT")
	})
}
