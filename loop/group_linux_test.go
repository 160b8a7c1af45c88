package loop_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
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

// runGroup runs g with fn in the background and returns Run's result, or
// fails the test when it does not return within limit.
func runGroup(t *testing.T, g *loop.Group, limit time.Duration, fn func(l *loop.Loop)) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- g.Run(fn) }()
	select {
	case err := <-done:
		for _, l := range g.Loops() {
			assert.False(t, l.Running())
			assert.Zero(t, l.InFlightOps(), "loop %d", l.Index())
			assert.Zero(t, l.ConnectionCount(), "loop %d", l.Index())
		}
		return err
	case <-time.After(limit):
		g.Stop()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("group Run did not return within %v", limit)
		return nil
	}
}

// echoClients dials n connections to addr, checks an echo round trip on
// each, and returns them open (closed at the end of the test in any case,
// so a failed round trip leaks nothing).
func echoClients(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	cs := make([]net.Conn, 0, n)
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		cs = append(cs, c)
		msg := fmt.Appendf(nil, "hello %d\n", i)
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = c.Write(msg)
		require.NoError(t, err)
		got := make([]byte, len(msg))
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		require.Equal(t, msg, got)
	}
	return cs
}

// TestGroupServerSpreads: a group server on 2 loops, in both accept modes,
// serves connections on both loops, each handler on the loop that made it.
func TestGroupServerSpreads(t *testing.T) {
	for _, mode := range []loop.AcceptMode{loop.AcceptReusePort, loop.AcceptHandoff} {
		t.Run(mode.String(), func(t *testing.T) {
			testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
				testutil.CheckLeaks(t)
				g, err := loop.NewGroup(2, loop.Options{Backend: b, Accept: mode})
				require.NoError(t, err)
				var perLoop [2]atomic.Int64
				var wrongLoop atomic.Int64
				srv, err := g.StartServer("127.0.0.1:0", func(l *loop.Loop) conn.Handler {
					perLoop[l.Index()].Add(1)
					return &hazardFunc{recv: func(c *conn.Conn, data []byte) {
						_ = c.SendData(data)
					}, post: func(*conn.Conn) {
						if !l.Running() {
							wrongLoop.Add(1)
						}
					}}
				})
				require.NoError(t, err)
				addr := srv.Addr().String()
				errc := make(chan error, 1)
				go func() {
					errc <- runGroup(t, g, 30*time.Second, func(l *loop.Loop) {})
				}()
				const n = 64
				cs := echoClients(t, addr, n)
				for _, c := range cs {
					c.Close()
				}
				g.Stop()
				require.NoError(t, <-errc)
				assert.Equal(t, int64(n), perLoop[0].Load()+perLoop[1].Load())
				assert.Positive(t, perLoop[0].Load(), "loop 0 served connections")
				assert.Positive(t, perLoop[1].Load(), "loop 1 served connections")
				assert.Zero(t, wrongLoop.Load())
				if mode == loop.AcceptHandoff {
					assert.InDelta(t, n/2, perLoop[0].Load(), 1, "round robin")
				}
			})
		})
	}
}

// TestGroupUnixServer: a unix-domain group server hands connections off.
func TestGroupUnixServer(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		g, err := loop.NewGroup(2, loop.Options{Backend: b})
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "g.sock")
		var perLoop [2]atomic.Int64
		_, err = g.StartServer("unix:"+path, func(l *loop.Loop) conn.Handler {
			perLoop[l.Index()].Add(1)
			return &hazardFunc{recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
		})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- runGroup(t, g, 30*time.Second, func(*loop.Loop) {}) }()
		for range 8 {
			c, err := net.Dial("unix", path)
			require.NoError(t, err)
			_, err = c.Write([]byte("x"))
			require.NoError(t, err)
			_, err = io.ReadFull(c, make([]byte, 1))
			require.NoError(t, err)
			c.Close()
		}
		g.Stop()
		require.NoError(t, <-errc)
		assert.Equal(t, int64(4), perLoop[0].Load())
		assert.Equal(t, int64(4), perLoop[1].Load())
		_, err = net.Dial("unix", path)
		assert.Error(t, err, "socket file removed")
	})
}

// TestGroupPerLoopTimersAndThreads: every loop runs its own timers on its
// own OS thread.
func TestGroupPerLoopTimersAndThreads(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		g, err := loop.NewGroup(3, loop.Options{Backend: b})
		require.NoError(t, err)
		var mu sync.Mutex
		tids := map[int]int{}
		fired := map[int]int{}
		err = runGroup(t, g, 20*time.Second, func(l *loop.Loop) {
			tid := unix.Gettid()
			n := 0
			var p *loop.PeriodicTimer
			p, err := l.AddPeriodicTimer(time.Millisecond, func() {
				assert.Equal(t, tid, unix.Gettid(), "timer on its loop's thread")
				if n++; n == 3 {
					p.Cancel()
					mu.Lock()
					tids[l.Index()] = tid
					fired[l.Index()] = n
					done := len(fired) == g.Len()
					mu.Unlock()
					if done {
						g.Stop()
					}
				}
			})
			assert.NoError(t, err)
		})
		require.NoError(t, err)
		require.Len(t, tids, 3)
		assert.Equal(t, map[int]int{0: 3, 1: 3, 2: 3}, fired)
		seen := map[int]bool{}
		for _, tid := range tids {
			assert.False(t, seen[tid], "each loop has its own thread")
			seen[tid] = true
		}
	})
}

// TestGroupPost: work crosses loops with Post and Each and runs on the
// target loop's thread.
func TestGroupPost(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		g, err := loop.NewGroup(2, loop.Options{Backend: b})
		require.NoError(t, err)
		var tids [2]atomic.Int64
		var eachSeen atomic.Int64
		var trace []string
		err = runGroup(t, g, 20*time.Second, func(l *loop.Loop) {
			tids[l.Index()].Store(int64(unix.Gettid()))
			if l.Index() != 0 {
				return
			}
			l0, l1 := l, g.Loop(1)
			_, _ = l0.AddTimer(5*time.Millisecond, func() {
				require.NoError(t, l0.Post(l1, func() {
					assert.Equal(t, tids[1].Load(), int64(unix.Gettid()))
					_ = l1.Post(l0, func() {
						trace = append(trace, "back on 0")
						_ = g.Each(func(l *loop.Loop) {
							assert.Equal(t, tids[l.Index()].Load(), int64(unix.Gettid()))
							if eachSeen.Add(1) == 2 {
								g.Stop()
							}
						})
					})
				}))
			})
		})
		require.NoError(t, err)
		assert.Equal(t, []string{"back on 0"}, trace)
		assert.Equal(t, int64(2), eachSeen.Load())
		assert.ErrorIs(t, g.Each(nil), loop.ErrNilFunc)
	})
}

// TestGroupStopWithOpenConnections: Stop on the group flushes queued output,
// unbinds every connection with nil on its loop, and leaks nothing.
func TestGroupStopWithOpenConnections(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		g, err := loop.NewGroup(2, loop.Options{Backend: b})
		require.NoError(t, err)
		var unbinds atomic.Int64
		var badReason atomic.Value
		big := bytes.Repeat([]byte("z"), 256<<10)
		srv, err := g.StartServer("127.0.0.1:0", func(l *loop.Loop) conn.Handler {
			return &hazardFunc{
				recv: func(c *conn.Conn, data []byte) { _ = c.SendData(big) },
				unbind: func(c *conn.Conn, reason error) {
					unbinds.Add(1)
					if reason != nil {
						badReason.Store(reason)
					}
				},
			}
		})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- runGroup(t, g, 30*time.Second, func(*loop.Loop) {}) }()
		const n = 16
		cs := make([]net.Conn, n)
		for i := range cs {
			c, err := net.Dial("tcp", srv.Addr().String())
			require.NoError(t, err)
			defer c.Close()
			cs[i] = c
			_, err = c.Write([]byte("go"))
			require.NoError(t, err)
			_, err = io.ReadFull(c, make([]byte, 1)) // the reply has started
			require.NoError(t, err)
		}
		g.Stop()
		// Each client gets the whole reply (graceful), then EOF.
		for _, c := range cs {
			require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
			got, err := io.ReadAll(c)
			require.NoError(t, err)
			assert.Equal(t, len(big)-1, len(got))
		}
		require.NoError(t, <-errc)
		assert.Equal(t, int64(n), unbinds.Load())
		assert.Nil(t, badReason.Load())
		_, err = net.DialTimeout("tcp", srv.Addr().String(), time.Second)
		assert.Error(t, err, "listeners closed")
	})
}

// TestGroupPanic: a panic on one loop without ErrorHandler stops that loop
// and then the group, and Run returns it; with a handler the loop goes on.
func TestGroupPanic(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		g, err := loop.NewGroup(2, loop.Options{Backend: b})
		require.NoError(t, err)
		err = runGroup(t, g, 20*time.Second, func(l *loop.Loop) {
			if l.Index() == 1 {
				_, _ = l.AddTimer(time.Millisecond, func() { panic("boom") })
			}
		})
		var pe *loop.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "boom", pe.Value)
		assert.Contains(t, err.Error(), "loop 1")

		var handled atomic.Int64
		g, err = loop.NewGroup(2, loop.Options{Backend: b, ErrorHandler: func(error) { handled.Add(1) }})
		require.NoError(t, err)
		err = runGroup(t, g, 20*time.Second, func(l *loop.Loop) {
			if l.Index() == 1 {
				_, _ = l.AddTimer(time.Millisecond, func() { panic("boom") })
				_, _ = l.AddTimer(20*time.Millisecond, g.Stop)
			}
		})
		require.NoError(t, err)
		assert.Equal(t, int64(1), handled.Load())
	})
}

// TestGroupRunAgain: a group runs again after it stopped, and a server
// started before Run is served once the loops run.
func TestGroupRunAgain(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		g, err := loop.NewGroup(0, loop.Options{Backend: b})
		require.NoError(t, err)
		require.GreaterOrEqual(t, g.Len(), 1)
		for range 2 {
			srv, err := g.StartServer("127.0.0.1:0", func(*loop.Loop) conn.Handler {
				return &hazardFunc{recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
			})
			require.NoError(t, err)
			errc := make(chan error, 1)
			go func() { errc <- runGroup(t, g, 20*time.Second, func(*loop.Loop) {}) }()
			for _, c := range echoClients(t, srv.Addr().String(), 4) {
				c.Close()
			}
			srv.Stop()
			g.Stop()
			require.NoError(t, <-errc)
		}
		// A server started and never run is cleaned up by the next Run.
		_, err = g.StartServer("127.0.0.1:0", func(*loop.Loop) conn.Handler { return &hazardFunc{} })
		require.NoError(t, err)
		require.NoError(t, runGroup(t, g, 20*time.Second, func(l *loop.Loop) { l.Stop() }))
		assert.ErrorIs(t, g.Run(nil), loop.ErrNilFunc)
	})
}

// TestRaiseFileLimit: the soft limit reaches the hard one.
func TestRaiseFileLimit(t *testing.T) {
	var lim unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &lim))
	got, err := loop.RaiseFileLimit(0)
	require.NoError(t, err)
	assert.Equal(t, lim.Max, got)
	got, err = loop.RaiseFileLimit(1)
	require.NoError(t, err)
	assert.Equal(t, lim.Max, got, "never lowers")
}
