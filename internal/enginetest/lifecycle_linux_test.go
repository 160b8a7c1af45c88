package enginetest

import (
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/internal/leakcheck"
	"github.com/ringmachine/ringmachine/uring/engine"
)

// watchdogUD is the token of a watchdog's receive.
const watchdogUD = 0xD06_D06

// watchdog bounds Waits that nothing else bounds (timeout -1, or a timeout
// under test): it arms a receive on a socket pair and writes to the pair
// after d, so a Wait that should have returned by itself returns with the
// watchdog's completion, and the test fails instead of hanging.
type watchdog struct {
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	fired bool
}

func armWatchdog(t testing.TB, e eng, d time.Duration) *watchdog {
	t.Helper()
	a, b := unixPair(t)
	require.NoError(t, e.Recv(b, make([]byte, 1), watchdogUD))
	w := &watchdog{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		select {
		case <-w.stop:
		case <-time.After(d):
			unix.Write(a, []byte{1})
		}
	}()
	t.Cleanup(w.halt)
	return w
}

// halt stops the watchdog's goroutine and waits for it.
func (w *watchdog) halt() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// wait is e.Wait, failing the test if it returned because the watchdog
// fired.
func (w *watchdog) wait(t testing.TB, e eng, timeout time.Duration, dst []completion) []completion {
	t.Helper()
	n, err := e.Wait(timeout, dst)
	require.NoError(t, err)
	for _, c := range dst[:n] {
		if c.UserData == watchdogUD {
			w.fired = true
			t.Fatalf("Wait(%v) returned only when the watchdog fired", timeout)
		}
	}
	return dst[:n]
}

// disarm stops the watchdog and ends its receive.
func (w *watchdog) disarm(t testing.TB, e eng) {
	t.Helper()
	w.halt()
	if !w.fired {
		require.NoError(t, e.Cancel(watchdogUD))
		reap(t, e, 4, finals(watchdogUD))
	}
}

// TestWake checks that Wake, from another goroutine, ends a Wait(-1): one
// made before the Wait is not lost, one made during it unblocks it, and
// many concurrent ones are safe.
func TestWake(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		w := armWatchdog(t, e, 10*time.Second)
		dst := make([]completion, 4)

		require.NoError(t, e.Wake())
		assert.Empty(t, w.wait(t, e, -1, dst), "a wake-up produces no completion")

		woke := background(t, func(stop <-chan struct{}) error {
			select {
			case <-stop:
				return errStopped
			case <-time.After(20 * time.Millisecond):
			}
			return e.Wake()
		})
		assert.Empty(t, w.wait(t, e, -1, dst))
		result(t, woke)
		assert.Empty(t, w.wait(t, e, 0, dst))

		var wakers []<-chan error
		for range 4 {
			wakers = append(wakers, background(t, func(stop <-chan struct{}) error {
				for range 200 {
					if err := e.Wake(); err != nil {
						return err
					}
				}
				return nil
			}))
		}
		for _, ch := range wakers {
			for done := false; !done; {
				select {
				case err := <-ch:
					require.NoError(t, err)
					done = true
				default:
					assert.Empty(t, w.wait(t, e, 10*time.Millisecond, dst))
				}
			}
		}
		w.wait(t, e, 0, dst)
		w.disarm(t, e)
		assert.Zero(t, e.InFlight())
	})
}

// TestWaitTimeout checks that a Wait with nothing to report returns after
// its timeout with no completion, never before it (no upper bound: machines
// are noisy), and that a zero timeout polls.
func TestWaitTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		w := armWatchdog(t, e, 10*time.Second)
		dst := make([]completion, 4)
		for _, d := range []time.Duration{50 * time.Millisecond, 1500 * time.Microsecond, time.Microsecond} {
			start := time.Now()
			cs := w.wait(t, e, d, dst)
			took := time.Since(start)
			assert.Empty(t, cs)
			assert.GreaterOrEqual(t, took, d, "Wait(%v) returned early", d)
		}
		assert.Empty(t, w.wait(t, e, 0, dst))
		w.disarm(t, e)
		assert.Zero(t, e.InFlight())
	})
}

// TestInFlight checks that InFlight counts every operation from submission
// until Wait has returned its final completion: not a multishot's other
// completions, not a cancel before its completion is reaped, and not
// finals still waiting for room in dst.
func TestInFlight(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		a, b := unixPair(t)
		c, d := unixPair(t)
		require.Zero(t, e.InFlight())
		require.NoError(t, e.RecvMultishot(b, 1))
		require.Equal(t, 1, e.InFlight())
		buf := make([]byte, 8)
		require.NoError(t, e.Recv(d, buf, 2))
		require.Equal(t, 2, e.InFlight())

		_, err := unix.Write(a, []byte("x"))
		require.NoError(t, err)
		cs := reap(t, e, 4, func(cs []completion) bool { return len(of(cs, 1)) > 0 })
		require.True(t, cs[0].More, "completions: %s", describe(cs))
		require.Equal(t, 2, e.InFlight(), "a multishot completion with FlagMore ends nothing")

		_, err = unix.Write(c, []byte("y"))
		require.NoError(t, err)
		reap(t, e, 4, finals(2))
		require.Equal(t, 1, e.InFlight())

		require.NoError(t, e.Cancel(1))
		require.Equal(t, 1, e.InFlight(), "a cancelled operation counts until its final completion is reaped")
		reap(t, e, 4, finals(1))
		require.Zero(t, e.InFlight())

		// Three receives that complete at once (their data waits), reaped
		// one Wait at a time: the finals left for later Waits still count.
		var pairs [3][2]int
		for i := range pairs {
			pairs[i][0], pairs[i][1] = unixPair(t)
			_, err := unix.Write(pairs[i][0], []byte{byte(i)})
			require.NoError(t, err)
		}
		for i := range pairs {
			require.NoError(t, e.Recv(pairs[i][1], make([]byte, 8), uint64(10+i)))
		}
		require.Equal(t, 3, e.InFlight())
		dst := make([]completion, 1)
		end := time.Now().Add(deadline)
		for reaped := 0; reaped < 3; {
			require.True(t, time.Now().Before(end), "timed out")
			n, err := e.Wait(50*time.Millisecond, dst)
			require.NoError(t, err)
			if n == 1 {
				require.True(t, dst[0].final())
				reaped++
			}
			require.Equal(t, 3-reaped, e.InFlight())
		}
	})
}

// TestCloseInFlight closes an engine with operations of every kind in
// flight, a connection the multishot accept may have taken already, and
// data under the multishot receive: Close returns, leaves no descriptor
// behind (the engine's own, or one accepted for a completion nobody
// reaped), and afterwards every method fails with the engine's ErrClosed.
func TestCloseInFlight(t *testing.T) {
	forEachRow(t, func(t *testing.T, open func() eng) {
		ln, lnAddr := listenTCP(t, "127.0.0.1", 16)
		a, b := unixPair(t)
		c, _ := unixPair(t)
		s, _ := unixPair(t)
		u, uAddr := boundSocket(t, "127.0.0.1", unix.SOCK_DGRAM)
		hole := blackhole(t, "127.0.0.1")
		holeFD := newSocket(t, hole, unix.SOCK_STREAM)
		client := newSocket(t, lnAddr, unix.SOCK_STREAM)
		path := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(path, pattern(1<<20, 3), 0o600))
		file, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		closeLater(t, file)
		for _, fd := range []int{c, s} { // full send buffers: their peers never read
			require.NoError(t, unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096))
			for {
				if _, err := unix.Write(fd, make([]byte, 4096)); err == unix.EAGAIN {
					break
				}
			}
		}
		before := leakcheck.Take()
		nBefore := fdCount(t)

		e := open()
		require.NoError(t, e.AcceptMultishot(ln, 1))
		require.NoError(t, e.RecvMultishot(b, 2))
		require.NoError(t, e.Recv(a, make([]byte, 64), 3))
		require.NoError(t, e.RecvFrom(u, make([]byte, 64), 4))
		require.NoError(t, e.Send(c, [][]byte{pattern(100000, 5)}, 5))
		require.NoError(t, e.Connect(holeFD, hole, 6))
		require.NoError(t, e.Splice(s, file, 0, 1<<20, 7))
		quiet(t, e, 20*time.Millisecond)
		require.Equal(t, 7, e.InFlight())

		// A connection for the accept and data for the receive, neither
		// reaped.
		if err := unix.Connect(client, lnAddr); err != unix.EINPROGRESS {
			require.NoError(t, err)
		}
		require.True(t, pollFD(client, unix.POLLOUT, deadline))
		_, err = unix.Write(a, pattern(5000, 6))
		require.NoError(t, err)
		time.Sleep(20 * time.Millisecond)

		stop := mustReturnWithin(30*time.Second, "Close with operations in flight")
		err = e.Close()
		stop()
		require.NoError(t, err)
		assert.Equal(t, nBefore, fdCount(t), "open descriptors before the engine was opened and after it was closed")
		assert.Empty(t, before.Leaks(500*time.Millisecond))
		assert.Zero(t, e.InFlight(), "after Close")

		closed := e.errClosed()
		dst := make([]completion, 4)
		_, err = e.Wait(0, dst)
		assert.ErrorIs(t, err, closed, "Wait")
		assert.ErrorIs(t, e.Wake(), closed, "Wake")
		assert.ErrorIs(t, e.AcceptMultishot(ln, 11), closed, "AcceptMultishot")
		assert.ErrorIs(t, e.RecvMultishot(b, 12), closed, "RecvMultishot")
		assert.ErrorIs(t, e.Recv(a, make([]byte, 1), 13), closed, "Recv")
		assert.ErrorIs(t, e.RecvFrom(u, make([]byte, 1), 14), closed, "RecvFrom")
		assert.ErrorIs(t, e.Send(a, [][]byte{{1}}, 15), closed, "Send")
		assert.ErrorIs(t, e.SendTo(u, []byte{1}, uAddr, 16), closed, "SendTo")
		assert.ErrorIs(t, e.Connect(holeFD, hole, 17), closed, "Connect")
		assert.ErrorIs(t, e.Splice(s, file, 0, 1, 18), closed, "Splice")
		assert.ErrorIs(t, e.Cancel(2), closed, "Cancel")
		assert.ErrorIs(t, e.CancelFD(b), closed, "CancelFD")
		assert.ErrorIs(t, e.CloseFD(b, 19), closed, "CloseFD")
		if ct, ok := e.(connectTimeouter); ok {
			assert.ErrorIs(t, ct.ConnectTimeout(holeFD, hole, time.Second, 20), closed, "ConnectTimeout")
			assert.ErrorIs(t, ct.UpdateConnectTimeout(6, time.Second), closed, "UpdateConnectTimeout")
		}
		assert.ErrorIs(t, e.Close(), closed, "a second Close")
		_, err = unix.FcntlInt(uintptr(b), unix.F_GETFD, 0)
		assert.NoError(t, err, "CloseFD after Close must not close the fd")
	})
}

// TestReservedTokens checks that tokens from MsgTokens (0xFE<<56) up, which
// the io_uring engine keeps for ring messages and its own operations, are
// refused by every method that takes one, with an error wrapping EINVAL,
// and that the refused calls disturb nothing: no completion, the fd given
// to CloseFD still open, an operation in flight (whose io_uring row a
// reserved token could name) untouched, Wake still working. The token just
// below the range is an ordinary one and comes back unchanged.
func TestReservedTokens(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		ln, _ := listenTCP(t, "127.0.0.1", 16)
		a, b := unixPair(t)
		u, uAddr := boundSocket(t, "127.0.0.1", unix.SOCK_DGRAM)
		refused := refusedAddr(t, "127.0.0.1")
		conn := newSocket(t, refused, unix.SOCK_STREAM)
		path := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(path, []byte("data"), 0o600))
		file, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		closeLater(t, file)

		// The witness: the first operation of the engine, so the first
		// row of the io_uring engine's table.
		const witness = 77
		wbuf := make([]byte, 16)
		require.NoError(t, e.Recv(b, wbuf, witness))

		buf := make([]byte, 16)
		for _, tok := range []uint64{
			engine.MsgTokens, engine.MsgTokens + 1, engine.Reserved,
			engine.Reserved | 1<<48, engine.Reserved | 1<<48 | 1<<32, engine.Reserved | 2<<48,
			math.MaxUint64,
		} {
			for _, c := range []struct {
				name string
				err  error
			}{
				{"AcceptMultishot", e.AcceptMultishot(ln, tok)},
				{"RecvMultishot", e.RecvMultishot(b, tok)},
				{"Recv", e.Recv(b, buf, tok)},
				{"RecvFrom", e.RecvFrom(u, buf, tok)},
				{"Send", e.Send(a, [][]byte{{1}}, tok)},
				{"SendTo", e.SendTo(u, []byte{1}, uAddr, tok)},
				{"Connect", e.Connect(conn, refused, tok)},
				{"Splice", e.Splice(a, file, 0, 4, tok)},
				{"CloseFD", e.CloseFD(a, tok)},
				{"Cancel", e.Cancel(tok)},
			} {
				assert.ErrorIs(t, c.err, unix.EINVAL, "%s with token %#x", c.name, tok)
			}
			if ct, ok := e.(connectTimeouter); ok {
				assert.ErrorIs(t, ct.ConnectTimeout(conn, refused, time.Second, tok), unix.EINVAL, "ConnectTimeout with token %#x", tok)
				assert.ErrorIs(t, ct.UpdateConnectTimeout(tok, time.Second), unix.EINVAL, "UpdateConnectTimeout with token %#x", tok)
			}
		}
		quiet(t, e, 20*time.Millisecond)
		require.Equal(t, 1, e.InFlight(), "only the witness is in flight")
		_, err = unix.FcntlInt(uintptr(a), unix.F_GETFD, 0)
		require.NoError(t, err, "a refused CloseFD closed the fd")
		_, err = unix.Write(a, []byte("ok"))
		require.NoError(t, err)
		cs := reap(t, e, 4, finals(witness))
		c := finalOf(t, cs, witness)
		require.Equal(t, int32(2), c.Res, "the witness receive: %v", c.Err())
		requireBytes(t, []byte("ok"), c.Buf, "the witness receive (a refused Send sent something?)")

		w := armWatchdog(t, e, 10*time.Second)
		require.NoError(t, e.Wake())
		assert.Empty(t, w.wait(t, e, -1, make([]completion, 4)), "Wake after the refused calls")
		w.disarm(t, e)

		const last = engine.MsgTokens - 1
		require.NoError(t, e.Recv(b, buf, last))
		require.NoError(t, e.Cancel(last))
		cs = reap(t, e, 4, finals(last))
		require.Len(t, cs, 1)
		assert.Equal(t, last, cs[0].UserData, "the token must come back unchanged")
		assert.Equal(t, -int32(unix.ECANCELED), cs[0].Res)
		assert.Zero(t, e.InFlight())
	})
}
