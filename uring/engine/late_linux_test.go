package engine

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// failSQE makes the next calls of sqe fail for the duration of the test:
// the call numbered fail (1 for the next one) returns an error, as when the
// SQ is full and its submission fails; the others go on.
func failSQE(t *testing.T, fail int) {
	t.Helper()
	calls := 0
	testHookSQE = func() error {
		calls++
		if calls == fail {
			return fmt.Errorf("engine test: no SQE: %w", unix.EBUSY)
		}
		return nil
	}
	t.Cleanup(func() { testHookSQE = nil })
}

// socketPair returns a non-blocking AF_UNIX stream pair and a close for
// either end; the ends the test has not closed are closed at its end (never
// twice: a number closed once may belong to another descriptor by then).
func socketPair(t *testing.T) (ours, peer int, closeEnd func(fd int)) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	open := map[int]bool{fds[0]: true, fds[1]: true}
	closeEnd = func(fd int) {
		require.True(t, open[fd], "fd %d is not an open end of the pair", fd)
		delete(open, fd)
		require.NoError(t, unix.Close(fd))
	}
	t.Cleanup(func() {
		for fd := range open {
			unix.Close(fd)
		}
	})
	return fds[0], fds[1], closeEnd
}

// TestWatchArmedLate: when a receive's hang-up watch cannot get an SQE, the
// receive is cancelled at the next Wait (a receive without a watch could be
// stranded by its peer's hang-up), so the caller arms a new one, which arms
// the watch, and reads every byte, then the EOF.
func TestWatchArmedLate(t *testing.T) {
	e := open(t, Options{})
	ours, peer, closeEnd := socketPair(t)

	failSQE(t, 2) // the receive's SQE, then its watch's
	require.NoError(t, e.RecvMultishot(ours, 1))
	testHookSQE = nil
	require.Equal(t, []uint64{1}, e.late, "the receive's cancel is queued for the next Wait")
	w, _ := e.watchOf(ours, false)
	require.False(t, w != nil && w.on, "no watch armed")

	fin, _ := waitFor(t, e, 1)
	require.Equal(t, -int32(unix.ECANCELED), fin.Res, "the receive without a watch is cancelled: %v", fin.Err())
	require.Empty(t, e.late)
	assert.Equal(t, 1, e.stats.FreshRecvCancels)

	require.NoError(t, e.RecvMultishot(ours, 2))
	w, _ = e.watchOf(ours, false)
	require.True(t, w != nil && w.on, "the new receive arms the watch")
	msg := []byte("every byte, then the EOF")
	_, err := unix.Write(peer, msg)
	require.NoError(t, err)
	closeEnd(peer)
	var got []byte
	for {
		fin, seen := waitFor(t, e, 2)
		for _, c := range seen {
			if c.UserData == 2 && c.Res > 0 {
				got = append(got, c.Buf...)
			}
		}
		if fin.Res != -int32(unix.ECANCELED) && fin.Res != -int32(unix.ENOBUFS) {
			require.Zero(t, fin.Res, "the receive ends with EOF: %v", fin.Err())
			break
		}
		require.NoError(t, e.RecvMultishot(ours, 2)) // the watch saw the close first
	}
	require.Equal(t, string(msg), string(got))
}

// TestUnwatchLate: when the cancel of a released fd's hang-up watch cannot
// get an SQE, the next Wait cancels it, so the watch's poll does not hold
// the socket open after the owner closes it (the peer sees the EOF).
func TestUnwatchLate(t *testing.T) {
	e := open(t, Options{})
	ours, peer, closeEnd := socketPair(t)
	require.NoError(t, e.RecvMultishot(ours, 1))
	_, err := unix.Write(peer, []byte("before"))
	require.NoError(t, err)
	seen := waitUntil(t, e, func(cs []Completion) bool { return len(cs) > 0 })
	require.Equal(t, "before", string(seen[0].Buf))

	failSQE(t, 1)
	fd, err := e.Release(ours)
	testHookSQE = nil
	require.NoError(t, err)
	require.Equal(t, ours, fd)
	require.Len(t, e.lateWatch, 1, "the watch's cancel is queued for the next Wait")
	require.NoError(t, e.Cancel(1))
	fin, _ := waitFor(t, e, 1)
	require.Equal(t, -int32(unix.ECANCELED), fin.Res, "the cancel ends the receive: %v", fin.Err())
	require.Empty(t, e.lateWatch)
	assert.Zero(t, e.InFlight())
	deadline := time.Now().Add(2 * time.Second)
	for e.sqes > 0 && time.Now().Before(deadline) {
		_, err := e.Wait(10*time.Millisecond, make([]Completion, 4))
		require.NoError(t, err)
	}
	require.Zero(t, e.sqes, "the watch's poll ended")

	closeEnd(ours)
	fds := []unix.PollFd{{Fd: int32(peer), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 2000)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the peer sees no EOF after the owner's close")
	k, err := unix.Read(peer, make([]byte, 8))
	require.NoError(t, err)
	assert.Zero(t, k, "EOF")
}

// TestFinalNopLate: when the NOP that carries a parked direct accept's final
// completion cannot get an SQE, the next Wait submits it, so the cancelled
// accept still ends with -ECANCELED.
func TestFinalNopLate(t *testing.T) {
	e := open(t, Options{DirectFiles: 1})
	udp, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	slot, err := e.RegisterDirect(udp) // the table's one slot
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, e.AcceptMultishotDirect(dupFD(t, ln.(*net.TCPListener)), 1))
	seen := waitUntil(t, e, func(cs []Completion) bool { return len(cs) > 0 })
	require.Equal(t, -int32(unix.ENFILE), seen[0].Res, "the accept finds the table full: %v", seen[0].Err())
	require.True(t, seen[0].More(), "and waits for a slot")

	failSQE(t, 1)
	require.NoError(t, e.Cancel(1))
	testHookSQE = nil
	require.Len(t, e.lateFinals, 1, "the final NOP is queued for the next Wait")
	fin, _ := waitFor(t, e, 1)
	require.Equal(t, -int32(unix.ECANCELED), fin.Res, "the cancelled accept ends: %v", fin.Err())
	require.Empty(t, e.lateFinals)
	assert.Zero(t, e.InFlight())
	require.NoError(t, e.CloseFD(slot, 2))
	fin, _ = waitFor(t, e, 2)
	assert.Zero(t, fin.Res, fin.Err())
}

// waitUntil waits until done holds for the completions seen (their Buf
// copied), failing the test after 10 s.
func waitUntil(t *testing.T, e *Engine, done func([]Completion) bool) []Completion {
	t.Helper()
	var seen []Completion
	cs := make([]Completion, 16)
	deadline := time.Now().Add(10 * time.Second)
	for !done(seen) {
		require.True(t, time.Now().Before(deadline), "timed out; seen %d completions", len(seen))
		n, err := e.Wait(100*time.Millisecond, cs)
		require.NoError(t, err)
		for _, c := range cs[:n] {
			c.Buf = append([]byte(nil), c.Buf...)
			seen = append(seen, c)
		}
	}
	return seen
}
