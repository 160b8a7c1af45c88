package loop_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// withDeadline runs fn and fails the test if it has not returned in 10 s.
func withDeadline(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("did not return in 10 s")
		return nil
	}
}

// TestRunContextSetupError: a setup error returned by fn (a server that
// cannot bind) stops the loop cleanly and comes back from RunContext, naming
// the address, with its errno.
func TestRunContextSetupError(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer taken.Close()
		l, err := loop.New(loop.Options{Backend: b})
		require.NoError(t, err)
		ticked := false
		err = withDeadline(t, func() error {
			return l.RunContext(context.Background(), func(l *loop.Loop) error {
				_ = l.NextTick(func() { ticked = true })
				_, err := l.StartServer(taken.Addr().String(), func() conn.Handler { return &conn.Base{} })
				return err
			})
		})
		require.Error(t, err)
		assert.ErrorIs(t, err, syscall.EADDRINUSE)
		assert.Contains(t, err.Error(), taken.Addr().String(), "the error names the address")
		assert.False(t, ticked, "nothing runs after the setup failed")
		assert.False(t, l.Running())
	})
}

// TestRunContextCancel: ending the context stops the loop gracefully (a
// connection is unbound with nil) and RunContext returns nil; a context
// already done stops the loop as soon as it runs.
func TestRunContextCancel(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		unbound := make(chan error, 1)
		posted := make(chan struct{}, 1)
		addr := make(chan string, 1)
		l, err := loop.New(loop.Options{Backend: b})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() {
			errc <- l.RunContext(ctx, func(l *loop.Loop) error {
				srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
					return &hazardFunc{
						post:   func(*conn.Conn) { posted <- struct{}{} },
						unbind: func(_ *conn.Conn, reason error) { unbound <- reason },
					}
				})
				if err != nil {
					return err
				}
				addr <- srv.Addr().String()
				return nil
			})
		}()
		c, err := net.DialTimeout("tcp", <-addr, 5*time.Second)
		require.NoError(t, err)
		defer c.Close()
		select {
		case <-posted:
		case <-time.After(5 * time.Second):
			t.Fatal("the connection was not accepted")
		}
		cancel()
		select {
		case err := <-errc:
			require.NoError(t, err, "a context that ends is a clean stop")
		case <-time.After(10 * time.Second):
			t.Fatal("the loop did not stop when its context ended")
		}
		assert.NoError(t, <-unbound)

		done, cancelDone := context.WithCancel(context.Background())
		cancelDone()
		ran := false
		require.NoError(t, withDeadline(t, func() error {
			return l.RunContext(done, func(*loop.Loop) error { ran = true; return nil })
		}))
		assert.True(t, ran)
		//lint:ignore SA1012 a nil context on purpose: RunContext refuses it
		assert.ErrorIs(t, l.RunContext(nil, func(*loop.Loop) error { return nil }), loop.ErrNilFunc)
		assert.ErrorIs(t, l.RunContext(context.Background(), nil), loop.ErrNilFunc)
	})
}

// TestGroupRunContext: a setup error on one loop stops the whole group and
// comes back with the loop's index; ending the context stops the group.
func TestGroupRunContext(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		g, err := loop.NewGroup(2, loop.Options{Backend: b})
		require.NoError(t, err)
		boom := errors.New("boom")
		err = withDeadline(t, func() error {
			return g.RunContext(context.Background(), func(l *loop.Loop) error {
				if l.Index() == 1 {
					return boom
				}
				return nil
			})
		})
		assert.ErrorIs(t, err, boom)
		assert.True(t, strings.HasPrefix(err.Error(), "loop 1: "), err.Error())

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		require.NoError(t, withDeadline(t, func() error {
			return g.RunContext(ctx, func(*loop.Loop) error { return nil })
		}))
	})
}

// TestGroupStopBeforeEveryLoopRuns: a group stopped by its first loop
// before the others have started still stops all of them (Stop used to
// find a loop not running yet and do nothing, leaving Run waiting for it).
func TestGroupStopBeforeEveryLoopRuns(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		for range 30 {
			g, err := loop.NewGroup(4, loop.Options{Backend: b})
			require.NoError(t, err)
			require.NoError(t, withDeadline(t, func() error {
				return g.Run(func(l *loop.Loop) {
					if l.Index() == 0 {
						g.Stop()
					}
				})
			}))
		}
	})
}
