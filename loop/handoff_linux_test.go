package loop_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
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

// handoffModes are the two ways an io_uring hand-off travels: a direct
// descriptor moved between the rings' tables (IORING_MSG_SEND_FD), and a
// process fd named in a message (IORING_MSG_DATA).
var handoffModes = []struct {
	name       string
	processFDs bool
}{{"direct", false}, {"process-fds", true}}

// skipDirectInFDSuite skips a test of direct descriptors in the suite run
// on process fds (RINGMACHINE_TEST_PROCESS_FDS=1), where there are none.
func skipDirectInFDSuite(t *testing.T, processFDs bool) {
	t.Helper()
	if !processFDs && loop.ProcessFDSuite() {
		t.Skip("the suite runs on process fds (RINGMACHINE_TEST_PROCESS_FDS=1)")
	}
}

// startHandoffGroup starts a 2-loop io_uring echo group in AcceptHandoff
// mode (on process fds if asked) and returns once both loops run; perLoop
// counts the connections each loop serves. fn runs on each loop first. The
// returned func stops the group and returns Run's result.
func startHandoffGroup(t *testing.T, processFDs bool, perLoop *[2]atomic.Int64, fn func(l *loop.Loop)) (g *loop.Group, addr string, stop func() error) {
	t.Helper()
	g, err := loop.NewGroup(2, loop.Options{Backend: loop.URing, Accept: loop.AcceptHandoff, URing: loop.URingOptions{ProcessFDs: processFDs}})
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
	for _, m := range handoffModes {
		t.Run(m.name, func(t *testing.T) {
			skipDirectInFDSuite(t, m.processFDs)
			testGroupHandoffMsgRing(t, m.processFDs)
		})
	}
}

func testGroupHandoffMsgRing(t *testing.T, processFDs bool) {
	testutil.CheckLeaks(t)
	var perLoop [2]atomic.Int64
	g, addr, stop := startHandoffGroup(t, processFDs, &perLoop, func(*loop.Loop) {})
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
// descriptor that is not a ring, or to none) hands a process fd over
// through the target's queue instead, and leaves a direct descriptor with
// the acceptor, which serves it; nothing is lost or leaked.
func TestGroupHandoffMsgRingFallback(t *testing.T) {
	testutil.RequireURing(t)
	notRing, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(notRing)
	for _, m := range handoffModes {
		for name, bad := range map[string]int{"EBADF": -1, "EBADFD": notRing} {
			t.Run(m.name+"/"+name, func(t *testing.T) {
				skipDirectInFDSuite(t, m.processFDs)
				testutil.CheckLeaks(t)
				defer loop.SetTestHookBeforeMsgRing(func(*loop.Loop, int) int { return bad })()
				var perLoop [2]atomic.Int64
				g, addr, stop := startHandoffGroup(t, m.processFDs, &perLoop, func(*loop.Loop) {})
				const n = 16
				for _, c := range echoClients(t, addr, n) {
					c.Close()
				}
				require.NoError(t, stop())
				if m.processFDs {
					assert.Equal(t, int64(n/2), perLoop[1].Load())
				} else {
					assert.Equal(t, int64(n), perLoop[0].Load(), "the acceptor kept what it could not move")
				}
				via, fb := g.Loop(1).HandoffStats()
				assert.Zero(t, via)
				assert.Equal(t, uint64(n/2), fb, "every failed MSG_RING fell back")
			})
		}
	}
}

// TestGroupHandoffShutdownRaces: fds on their way over MSG_RING to a
// target that stops are closed, never leaked: one whose message reaches a
// ring that is shutting down, and one whose message is sent after the
// target's ring is gone.
func TestGroupHandoffShutdownRaces(t *testing.T) {
	testutil.RequireURing(t)
	for _, m := range handoffModes {
		t.Run(m.name, func(t *testing.T) {
			skipDirectInFDSuite(t, m.processFDs)
			testGroupHandoffShutdownRaces(t, m.processFDs)
		})
	}
}

func testGroupHandoffShutdownRaces(t *testing.T, processFDs bool) {

	t.Run("delivered-while-stopping", func(t *testing.T) {
		testutil.CheckLeaks(t)
		inHook, release := make(chan struct{}), make(chan struct{})
		var perLoop [2]atomic.Int64
		g, addr, stop := startHandoffGroup(t, processFDs, &perLoop, func(l *loop.Loop) {
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
		g, addr, stop := startHandoffGroup(t, processFDs, &perLoop, func(*loop.Loop) {})
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

// TestGroupHandoffDirectKeepsPromises: a direct descriptor moved into a
// loop's table takes a slot the loop promised beforehand, never one its
// own direct accepts counted free. Loop 1 of a hand-off group has a table
// of 4 slots and a server of its own: one connection moves in from loop 0,
// three more are accepted by loop 1's server, and the fifth connection to
// that server waits in the listen queue (no reset) until a slot frees.
// Were the moved descriptor unaccounted for, loop 1's server would have
// four accepts in flight for three free slots, and the last would take its
// connection off the queue, find no slot and reset it.
func TestGroupHandoffDirectKeepsPromises(t *testing.T) {
	testutil.RequireURing(t)
	skipDirectInFDSuite(t, false)
	testutil.CheckLeaks(t)
	defer loop.SetTestDirectFiles(4)()
	var perLoop [2]atomic.Int64
	own := make(chan string, 1)
	g, addr, stop := startHandoffGroup(t, false, &perLoop, func(l *loop.Loop) {
		if l.Index() != 1 {
			return
		}
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
			return &hazardFunc{recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
		})
		if err != nil {
			l.Stop()
			own <- ""
			return
		}
		own <- srv.Addr().String()
	})
	defer stop()
	ownAddr := <-own
	require.NotEmpty(t, ownAddr, "loop 1's own server")

	moved := echoClients(t, addr, 2) // the second one moves to loop 1
	defer closeAll(moved)
	require.Eventually(t, func() bool { via, _ := g.Loop(1).HandoffStats(); return via == 1 },
		5*time.Second, time.Millisecond, "one connection moved into loop 1's table")
	served := echoClients(t, ownAddr, 3) // loop 1's three other slots
	defer closeAll(served)

	waiting, err := net.DialTimeout("tcp", ownAddr, 5*time.Second)
	require.NoError(t, err)
	defer waiting.Close()
	_, err = waiting.Write([]byte("queued"))
	require.NoError(t, err)
	require.NoError(t, waiting.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = waiting.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "the fifth connection waits for a slot; it is not reset")

	served[0].Close() // frees a slot of loop 1's table
	require.NoError(t, waiting.SetReadDeadline(time.Now().Add(10*time.Second)))
	got := make([]byte, len("queued"))
	_, err = io.ReadFull(waiting, got)
	require.NoError(t, err)
	assert.Equal(t, "queued", string(got))
	for i, c := range moved {
		// Both still echo: the moved one on loop 1.
		msg := []byte{'m', byte('0' + i)}
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		_, err := c.Write(msg)
		require.NoError(t, err)
		back := make([]byte, len(msg))
		_, err = io.ReadFull(c, back)
		require.NoError(t, err)
		assert.Equal(t, msg, back)
	}
	require.NoError(t, stop())
	assert.Equal(t, int64(1), perLoop[1].Load())
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// TestGroupHandoffDirectCloses: a server closing a connection that moved
// between loops as a direct descriptor ends it for the peer (EOF after
// every byte), which takes the acceptor closing its own copy once the move
// is done; a copy left behind would keep the socket open and the peer
// waiting.
func TestGroupHandoffDirectCloses(t *testing.T) {
	testutil.RequireURing(t)
	testutil.CheckLeaks(t)
	g, err := loop.NewGroup(2, loop.Options{Backend: loop.URing, Accept: loop.AcceptHandoff})
	require.NoError(t, err)
	srv, err := g.StartServer("127.0.0.1:0", func(l *loop.Loop) conn.Handler {
		return &hazardFunc{post: func(c *conn.Conn) {
			_ = c.SendData(fmt.Appendf(nil, "bye from loop %d", l.Index()))
			c.CloseAfterWriting()
		}}
	})
	require.NoError(t, err)
	errc := make(chan error, 1)
	// No wait for the loops to run: the server accepts once both do, so
	// the first connection moves too.
	go func() { errc <- runGroup(t, g, 30*time.Second, func(*loop.Loop) {}) }()
	perLoop := map[string]int{}
	for range 8 {
		c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		got, err := io.ReadAll(c)
		c.Close()
		require.NoError(t, err, "EOF, not a peer left waiting")
		perLoop[string(got)]++
	}
	g.Stop()
	require.NoError(t, <-errc)
	assert.Equal(t, map[string]int{"bye from loop 0": 4, "bye from loop 1": 4}, perLoop)
	via, fb := g.Loop(1).HandoffStats()
	assert.Equal(t, uint64(4), via)
	assert.Zero(t, fb)
}

// TestGroupHandoffDirectSpreadsBurst: 400 clients connecting at once to a
// 2-loop hand-off group on direct descriptors are spread 200 and 200, all
// echoed. Each move spends a slot its target promised, and the target
// renews its promise only when it runs: a credit smaller than a burst's
// share (it was 64) left the acceptor serving three connections in four.
func TestGroupHandoffDirectSpreadsBurst(t *testing.T) {
	testutil.RequireURing(t)
	testutil.CheckLeaks(t)
	var perLoop [2]atomic.Int64
	g, addr, stop := startHandoffGroup(t, false, &perLoop, func(*loop.Loop) {})
	defer stop()
	const n = 400
	err := inParallel(n, func(i int) error {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		msg := fmt.Appendf(nil, "burst %d", i)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write(msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			return fmt.Errorf("client %d: got %q, %v", i, got, err)
		}
		return nil
	})
	assert.NoError(t, err)
	require.NoError(t, stop())
	assert.Equal(t, int64(n/2), perLoop[0].Load())
	assert.Equal(t, int64(n/2), perLoop[1].Load())
	via, fb := g.Loop(1).HandoffStats()
	assert.Equal(t, uint64(n/2), via)
	assert.Zero(t, fb)
}
