package engine

import (
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/uring"
)

// startChild starts sh -c script with a pidfd, returned; the child is not
// waited for by os.
func startChild(t *testing.T, script string) int {
	t.Helper()
	pidfd := -1
	p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", script}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{PidFD: &pidfd},
	})
	require.NoError(t, err)
	require.NoError(t, p.Release())
	t.Cleanup(func() { unix.Close(pidfd) })
	return pidfd
}

// TestWaitid reaps children through the ring, reads their status from the
// siginfo, and cancels a wait for a child that has not exited (then reaps
// it with waitid(2), so no zombie is left).
func TestWaitid(t *testing.T) {
	e := open(t, Options{})
	info := new(unix.Siginfo)
	var pin runtime.Pinner
	pin.Pin(info)
	defer pin.Unpin()

	pidfd := startChild(t, "exit 5")
	require.NoError(t, e.Waitid(pidfd, info, 1))
	c, _ := waitFor(t, e, 1)
	require.Equal(t, int32(0), c.Res)
	assert.Equal(t, int32(1), info.Code, "CLD_EXITED")
	pid, st := uring.WaitidStatus(info)
	assert.Positive(t, pid)
	assert.Equal(t, 5, st)

	pidfd = startChild(t, "sleep 10")
	require.NoError(t, e.Waitid(pidfd, info, 2))
	require.NoError(t, e.Cancel(2))
	c, _ = waitFor(t, e, 2)
	assert.Equal(t, -int32(unix.ECANCELED), c.Res)
	require.NoError(t, unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0))
	require.NoError(t, unix.Waitid(unix.P_PIDFD, pidfd, info, unix.WEXITED, nil))
	assert.Equal(t, int32(2), info.Code, "CLD_KILLED")

	assert.ErrorIs(t, e.Waitid(-1, info, 3), unix.EBADF)
}
