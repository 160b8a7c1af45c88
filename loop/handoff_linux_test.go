package loop_test

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// startHandoffGroup starts a 2-loop io_uring echo group in AcceptHandoff
// mode and returns once both loops run; perLoop counts the connections each
// loop serves. fn runs on each loop first. The returned func stops the
// group and returns Run's result.
func startHandoffGroup(t *testing.T, perLoop *[2]atomic.Int64, fn func(l *loop.Loop)) (g *loop.Group, addr string, stop func() error) {
	t.Helper()
	g, err := loop.NewGroup(2, loop.Options{Backend: loop.URing, Accept: loop.AcceptHandoff})
	require.NoError(t, err)
	srv, err := g.StartServer("127.0.0.1:0", func(l *loop.Loop) conn.Handler {
		perLoop[l.Index()].Add(1)
		return &hazardFunc{recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
	})
	require.NoError(t, err)
	errc := make(chan error, 1)
	var ready atomic.Int64
	go func() {
		errc <- runGroup(t, g, 30*time.Second, func(l *loop.Loop) {
			fn(l)
			ready.Add(1)
		})
	}()
	// Both loops run (their rings take messages) before any client
	// connects: a hand-off to a loop not running yet waits in its queue.
	require.Eventually(t, func() bool { return ready.Load() == 2 }, 10*time.Second, time.Millisecond)
	var once atomic.Bool
	var res error
	return g, srv.Addr().String(), func() error {
		if once.CompareAndSwap(false, true) {
			g.Stop()
			res = <-errc
		}
		return res
	}
}

// TestGroupHandoffMsgRing: on io_uring, hand-offs travel over
// IORING_OP_MSG_RING, and the message wakes a target loop blocked in
// io_uring_enter with nothing else to do (no timers, no wake-up).
func TestGroupHandoffMsgRing(t *testing.T) {
	testutil.RequireURing(t)
	testutil.CheckLeaks(t)
	var perLoop [2]atomic.Int64
	g, addr, stop := startHandoffGroup(t, &perLoop, func(*loop.Loop) {})
	const n = 8
	for i := range n {
		// Let both loops go back to sleep: loop 1 then sleeps without a
		// deadline, and only the MSG_RING CQE can wake it.
		time.Sleep(20 * time.Millisecond)
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
		_, err = c.Write([]byte{byte(i)})
		require.NoError(t, err)
		got := make([]byte, 1)
		_, err = io.ReadFull(c, got)
		require.NoError(t, err, "connection %d echoed (its loop was woken)", i)
		assert.Equal(t, byte(i), got[0])
		c.Close()
	}
	require.NoError(t, stop())
	assert.Equal(t, int64(n/2), perLoop[0].Load())
	assert.Equal(t, int64(n/2), perLoop[1].Load())
	via, fb := g.Loop(1).HandoffStats()
	assert.Equal(t, uint64(n/2), via, "loop 1 adopted its connections from MSG_RING CQEs")
	assert.Zero(t, fb)
}

// TestGroupHandoffMsgRingFallback: a MSG_RING that fails (here: sent to a
// descriptor that is not a ring, or to none) hands its connection over
// through the target's queue instead; nothing is lost or leaked.
func TestGroupHandoffMsgRingFallback(t *testing.T) {
	testutil.RequireURing(t)
	notRing, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(notRing)
	for name, bad := range map[string]int{"EBADF": -1, "EBADFD": notRing} {
		t.Run(name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			defer loop.SetTestHookBeforeMsgRing(func(*loop.Loop, int) int { return bad })()
			var perLoop [2]atomic.Int64
			g, addr, stop := startHandoffGroup(t, &perLoop, func(*loop.Loop) {})
			const n = 16
			for _, c := range echoClients(t, addr, n) {
				c.Close()
			}
			require.NoError(t, stop())
			assert.Equal(t, int64(n/2), perLoop[1].Load())
			via, fb := g.Loop(1).HandoffStats()
			assert.Zero(t, via)
			assert.Equal(t, uint64(n/2), fb, "every failed MSG_RING fell back")
		})
	}
}

// TestGroupHandoffShutdownRaces: fds on their way over MSG_RING to a
// target that stops are closed, never leaked: one whose message reaches a
// ring that is shutting down, and one whose message is sent after the
// target's ring is gone.
func TestGroupHandoffShutdownRaces(t *testing.T) {
	testutil.RequireURing(t)

	t.Run("delivered-while-stopping", func(t *testing.T) {
		testutil.CheckLeaks(t)
		inHook, release := make(chan struct{}), make(chan struct{})
		var perLoop [2]atomic.Int64
		g, addr, stop := startHandoffGroup(t, &perLoop, func(l *loop.Loop) {
			if l.Index() == 1 {
				_ = l.AddShutdownHook(func() { close(inHook); <-release })
			}
		})
		for _, c := range echoClients(t, addr, 2) { // both loops run
			c.Close()
		}
		g.Loop(1).Stop()
		<-inHook // loop 1 is stopping, its ring still open
		var cs []net.Conn
		for range 4 {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			require.NoError(t, err)
			cs = append(cs, c)
		}
		time.Sleep(100 * time.Millisecond) // loop 0 accepts and sends
		close(release)
		require.NoError(t, stop())
		for _, c := range cs {
			require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, err := c.Read(make([]byte, 1))
			assert.Error(t, err, "closed by the server, not left hanging")
			c.Close()
		}
		via, _ := g.Loop(1).HandoffStats()
		assert.Equal(t, uint64(1), via, "only the connection before the stop was adopted")
	})

	t.Run("target-ring-closed", func(t *testing.T) {
		testutil.CheckLeaks(t)
		var stopped atomic.Bool
		defer loop.SetTestHookBeforeMsgRing(func(target *loop.Loop, fd int) int {
			if stopped.CompareAndSwap(false, true) {
				// The hand-off is registered; the target's ring closes
				// before the message is even prepared.
				target.Stop()
				for target.Running() {
					time.Sleep(time.Millisecond)
				}
			}
			return fd
		})()
		var perLoop [2]atomic.Int64
		g, addr, stop := startHandoffGroup(t, &perLoop, func(*loop.Loop) {})
		var cs []net.Conn
		for range 2 {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			require.NoError(t, err)
			cs = append(cs, c)
		}
		// The second connection is loop 1's; its hand-off stops loop 1,
		// and with it the group.
		require.Eventually(t, stopped.Load, 10*time.Second, time.Millisecond)
		require.NoError(t, stop())
		for _, c := range cs {
			require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, err := c.Read(make([]byte, 1))
			assert.Error(t, err, "closed by the server, not left hanging")
			c.Close()
		}
		assert.Zero(t, perLoop[1].Load())
		via, _ := g.Loop(1).HandoffStats()
		assert.Zero(t, via)
	})
}
