package epoll_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	epoll "github.com/ringmachine/ringmachine/fallback_epoll"
)

// TestShortReadThenFIN: data and the peer's FIN arrive before the read. The
// short read must not be taken as "queue empty" (no edge is left to come),
// or the end of stream would never be reported.
func TestShortReadThenFIN(t *testing.T) {
	for name, pair := range map[string]func(testing.TB) (int, int){
		"tcp":  func(t testing.TB) (int, int) { return tcpPair(t, "127.0.0.1") },
		"unix": unixPair,
	} {
		t.Run(name, func(t *testing.T) {
			p := newPoller(t, epoll.Options{})
			a, b := pair(t)
			require.NoError(t, p.RecvMultishot(a, 1))
			// First Wait: EAGAIN registers the fd.
			n, err := p.Wait(0, make([]epoll.Completion, 4))
			require.NoError(t, err)
			require.Zero(t, n)
			// A short message then FIN, both queued before the next read.
			_, err = unix.Write(b, []byte("reply"))
			require.NoError(t, err)
			require.NoError(t, unix.Shutdown(b, unix.SHUT_WR))
			time.Sleep(10 * time.Millisecond)
			cs := reap(t, p, 4, finals(1))
			assert.Equal(t, "reply", string(received(cs, 1)))
			assert.Zero(t, final(t, cs, 1).Res, "end of stream reported")
		})
	}
}

// TestShortReadSavesSyscall: a message shorter than the buffer is delivered
// without the read that would return EAGAIN, and a later message still
// arrives.
func TestShortReadSavesSyscall(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	a, b := tcpPair(t, "127.0.0.1")
	require.NoError(t, p.RecvMultishot(a, 1))
	_, err := p.Wait(0, make([]epoll.Completion, 4))
	require.NoError(t, err)
	dst := make([]epoll.Completion, 4)
	for _, msg := range []string{"one", "two", "three"} {
		_, err = unix.Write(b, []byte(msg))
		require.NoError(t, err)
		pollFD(t, a, unix.POLLIN) // the data is there before Wait (poll(2) is not counted)
		before := p.Syscalls()
		n, err := p.Wait(time.Second, dst)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		assert.Equal(t, msg, string(dst[0].Buf))
		// epoll_wait and one read: no read that returns EAGAIN.
		assert.Equal(t, uint64(2), p.Syscalls()-before, "system calls for one short message")
	}
	require.NoError(t, p.Cancel(1))
	reap(t, p, 4, finals(1))
}
