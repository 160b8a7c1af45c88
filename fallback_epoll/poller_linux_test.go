package epoll_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	epoll "github.com/ringmachine/ringmachine/fallback_epoll"
	"github.com/ringmachine/ringmachine/internal/leakcheck"
	"github.com/ringmachine/ringmachine/internal/sigtest"
)

func TestCompletion(t *testing.T) {
	ok := epoll.Completion{Res: 5, Flags: epoll.FlagMore}
	assert.NoError(t, ok.Err())
	assert.True(t, ok.More())
	bad := epoll.Completion{Res: -int32(unix.ECONNREFUSED)}
	assert.ErrorIs(t, bad.Err(), unix.ECONNREFUSED)
	assert.False(t, bad.More())
	assert.Equal(t, uint32(1<<1), epoll.FlagMore, "must match IORING_CQE_F_MORE")
}

func TestNewOptions(t *testing.T) {
	_, err := epoll.New(epoll.Options{MaxEvents: -1})
	require.ErrorIs(t, err, unix.EINVAL)
	p := newPoller(t, epoll.Options{})
	_, err = p.Wait(0, nil)
	require.ErrorIs(t, err, unix.EINVAL)
}

func TestSubmitErrors(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	a, _ := unixPair(t)
	require.ErrorIs(t, p.RecvMultishot(-1, 1), unix.EBADF)
	require.NoError(t, p.RecvMultishot(a, 1))
	require.ErrorIs(t, p.Recv(a, make([]byte, 1), 1), unix.EEXIST)
	require.ErrorIs(t, p.Cancel(99), unix.ENOENT)
	// Tokens from MsgTokens up are refused everywhere, as on io_uring; the
	// one below is an ordinary token.
	require.ErrorIs(t, p.Recv(a, make([]byte, 1), epoll.MsgTokens), unix.EINVAL)
	require.ErrorIs(t, p.CloseFD(a, ^uint64(0)), unix.EINVAL)
	require.ErrorIs(t, p.Cancel(epoll.MsgTokens), unix.EINVAL)
	require.NoError(t, p.Send(a, [][]byte{{1}}, epoll.MsgTokens-1))
	_, err := p.CancelFD(12345)
	require.ErrorIs(t, err, unix.ENOENT)
	require.NoError(t, p.Cancel(1))
	reap(t, p, 4, finals(1, epoll.MsgTokens-1))
	assert.Zero(t, p.InFlight())
}

func TestClosed(t *testing.T) {
	leakcheck.Check(t)
	p, err := epoll.New(epoll.Options{})
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.ErrorIs(t, p.Close(), epoll.ErrClosed)
	require.ErrorIs(t, p.Wake(), epoll.ErrClosed)
	require.ErrorIs(t, p.RecvMultishot(0, 1), epoll.ErrClosed)
	_, err = p.Wait(0, make([]epoll.Completion, 1))
	require.ErrorIs(t, err, epoll.ErrClosed)
}

func TestWakeUnblocksWait(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	dst := make([]epoll.Completion, 4)

	// A wake-up before Wait is not lost.
	require.NoError(t, p.Wake())
	n, err := p.Wait(-1, dst)
	require.NoError(t, err)
	assert.Zero(t, n)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(20 * time.Millisecond)
		assert.NoError(t, p.Wake())
	}()
	start := time.Now()
	n, err = p.Wait(-1, dst)
	wg.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Less(t, time.Since(start), 10*time.Second)

	// The wake-up was consumed: polling now finds nothing and does not block.
	n, err = p.Wait(0, dst)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestWaitTimeout(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	for _, d := range []time.Duration{50 * time.Millisecond, 1500 * time.Microsecond} {
		start := time.Now()
		n, err := p.Wait(d, make([]epoll.Completion, 4))
		require.NoError(t, err)
		assert.Zero(t, n)
		assert.GreaterOrEqual(t, time.Since(start), d, "a deadline must never fire early")
	}
}

// TestWaitSignals: signals delivered to the waiting thread every 10 ms for
// 1 s interrupt a 300 ms Wait (EINTR) over and over. It must wait out what
// is left of its time after each: not end early, and not start its whole
// timeout again (it would then last until the signals stop).
func TestWaitSignals(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := newPoller(t, epoll.Options{})
	sigtest.CheckTimedWait(t, 300*time.Millisecond, func(d time.Duration) (int, error) {
		return p.Wait(d, make([]epoll.Completion, 4))
	})
}

func TestAcceptMultishot(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	ln, sa := listenTCP(t, "127.0.0.1")
	require.NoError(t, p.AcceptMultishot(ln, 7))
	for range 3 {
		dialTCP(t, sa)
	}
	var accepted []int
	cs := reap(t, p, 2, func(cs []epoll.Completion) bool { return len(cs) == 3 })
	for _, c := range cs {
		require.Equal(t, uint64(7), c.UserData)
		require.NoError(t, c.Err())
		assert.True(t, c.More())
		accepted = append(accepted, int(c.Res))
	}
	closeLater(t, accepted...)
	for _, fd := range accepted {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		require.NoError(t, err)
		assert.NotZero(t, fl&unix.O_NONBLOCK, "accepted fd is non-blocking")
		fdfl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		require.NoError(t, err)
		assert.NotZero(t, fdfl&unix.FD_CLOEXEC, "accepted fd is close-on-exec")
	}
	assert.Equal(t, 1, p.InFlight())
	require.NoError(t, p.Cancel(7))
	c := final(t, reap(t, p, 2, finals(7)), 7)
	assert.ErrorIs(t, c.Err(), unix.ECANCELED)
	assert.Zero(t, p.InFlight())
}

func TestAcceptFatalError(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	fd, _ := socket(t, "127.0.0.1", unix.SOCK_STREAM) // not listening: accept fails with EINVAL
	require.NoError(t, p.AcceptMultishot(fd, 1))
	c := final(t, reap(t, p, 2, finals(1)), 1)
	assert.ErrorIs(t, c.Err(), unix.EINVAL)
	assert.Zero(t, p.InFlight())
}

func TestConnect(t *testing.T) {
	t.Run("success", func(t *testing.T) {
		p := newPoller(t, epoll.Options{})
		ln, sa := listenTCP(t, "127.0.0.1")
		_ = ln
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		closeLater(t, fd)
		require.NoError(t, p.Connect(fd, sa, 1))
		c := final(t, reap(t, p, 2, finals(1)), 1)
		assert.NoError(t, c.Err())
		assert.Zero(t, c.Res)
		assert.Zero(t, p.InFlight())
	})
	t.Run("refused", func(t *testing.T) {
		p := newPoller(t, epoll.Options{})
		// A port that was just bound and released is (almost surely) closed.
		sa0, _ := sockaddr(t, "127.0.0.1", 0)
		tmp, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		require.NoError(t, unix.Bind(tmp, sa0))
		sa, err := unix.Getsockname(tmp)
		require.NoError(t, err)
		require.NoError(t, unix.Close(tmp))

		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		closeLater(t, fd)
		require.NoError(t, p.Connect(fd, sa, 2))
		c := final(t, reap(t, p, 2, finals(2)), 2)
		assert.ErrorIs(t, c.Err(), unix.ECONNREFUSED)
		assert.True(t, errors.Is(c.Err(), unix.ECONNREFUSED))
		assert.Zero(t, p.InFlight())
	})
	t.Run("nil address", func(t *testing.T) {
		p := newPoller(t, epoll.Options{})
		assert.ErrorIs(t, p.Connect(3, nil, 1), unix.EINVAL)
	})
}

// TestRecvMultishotStream sends 1 MB with Send continuations on one end and
// receives it with a RecvMultishot on the other, in one Poller, with a small
// dst so the stream spans many Waits.
func TestRecvMultishotStream(t *testing.T) {
	p := newPoller(t, epoll.Options{RecvBufferSize: 4096, RecvBuffers: 4})
	a, b := tcpPair(t, "127.0.0.1")
	want := pattern(1 << 20)
	const sendUD, recvUD = 1, 2
	require.NoError(t, p.RecvMultishot(b, recvUD))
	require.NoError(t, p.Send(a, [][]byte{want[:1000], want[1000:]}, sendUD))

	var got []byte
	sent := 0
	dst := make([]epoll.Completion, 3)
	waits := 0
	for len(got) < len(want) {
		require.Less(t, waits, 100000)
		waits++
		n, err := p.Wait(time.Second, dst)
		require.NoError(t, err)
		for _, c := range dst[:n] {
			require.NoError(t, c.Err())
			switch c.UserData {
			case sendUD:
				sent += int(c.Res)
				if sent < len(want) {
					require.NoError(t, p.Send(a, [][]byte{want[sent:]}, sendUD))
				}
			case recvUD:
				require.True(t, c.More())
				require.LessOrEqual(t, len(c.Buf), 4096)
				got = append(got, c.Buf...)
			}
		}
	}
	assert.Equal(t, len(want), sent)
	require.True(t, bytes.Equal(want, got), "stream corrupted or reordered")
	assert.Greater(t, waits, 10)

	// End of stream: a final completion with Res 0.
	require.NoError(t, unix.Shutdown(a, unix.SHUT_WR))
	c := final(t, reap(t, p, 3, finals(recvUD)), recvUD)
	assert.Zero(t, c.Res)
	assert.NoError(t, c.Err())
	assert.Zero(t, p.InFlight())
}

func TestRecvPeerReset(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	ln, sa := listenTCP(t, "127.0.0.1")
	a, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, unix.Connect(a, sa)) // blocking: done when this returns
	pollFD(t, ln, unix.POLLIN)
	b, _, err := unix.Accept4(ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	require.NoError(t, err)
	closeLater(t, b)
	require.NoError(t, p.RecvMultishot(b, 1))
	n, err := p.Wait(0, make([]epoll.Completion, 1))
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoError(t, unix.SetsockoptLinger(a, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}))
	require.NoError(t, unix.Close(a)) // RST
	c := final(t, reap(t, p, 2, finals(1)), 1)
	assert.ErrorIs(t, c.Err(), unix.ECONNRESET)
	assert.Zero(t, p.InFlight())
}

// TestSendPartialSlowReader sends 8 MB to a reader that starts late and reads
// slowly: the first Send completes partially and the rest follows in
// continuations.
func TestSendPartialSlowReader(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	a, b := tcpPair(t, "127.0.0.1")
	want := pattern(8 << 20)
	require.NoError(t, unix.SetNonblock(b, false))

	sum := make(chan [32]byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		h := sha256.New()
		buf := make([]byte, 16<<10)
		total := 0
		for total < len(want) {
			n, err := unix.Read(b, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n == 0 {
				break
			}
			h.Write(buf[:n])
			total += n
			if total%(1<<20) < len(buf) {
				time.Sleep(time.Millisecond)
			}
		}
		var s [32]byte
		copy(s[:], h.Sum(nil))
		sum <- s
	}()

	sent, sends, partial := 0, 0, 0
	require.NoError(t, p.Send(a, [][]byte{want}, 9))
	for sent < len(want) {
		c := final(t, reap(t, p, 1, finals(9)), 9)
		require.NoError(t, c.Err())
		require.Positive(t, c.Res)
		sends++
		if int(c.Res) < len(want)-sent {
			partial++
		}
		sent += int(c.Res)
		if sent < len(want) {
			require.NoError(t, p.Send(a, [][]byte{want[sent:]}, 9))
		}
	}
	assert.Equal(t, sha256.Sum256(want), <-sum)
	assert.Positive(t, partial, "8 MB cannot fit in the socket buffers")
	assert.Greater(t, sends, 1)
	assert.Zero(t, p.InFlight())
}

func TestCancel(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	a, _ := unixPair(t)
	ln, _ := listenTCP(t, "127.0.0.1")
	require.NoError(t, p.RecvMultishot(a, 1))
	require.NoError(t, p.AcceptMultishot(ln, 2))
	require.NoError(t, p.Recv(a, make([]byte, 10), 3))
	n, err := p.Wait(0, make([]epoll.Completion, 4)) // all meet EAGAIN and register
	require.NoError(t, err)
	require.Zero(t, n)
	assert.Equal(t, 3, p.InFlight())
	for _, ud := range []uint64{1, 2, 3} {
		require.NoError(t, p.Cancel(ud))
		require.ErrorIs(t, p.Cancel(ud), unix.ENOENT, "a cancelled op is no longer cancellable")
	}
	assert.Equal(t, 3, p.InFlight(), "final completions not yet delivered")
	cs := reap(t, p, 4, finals(1, 2, 3))
	require.Len(t, cs, 3)
	for _, c := range cs {
		assert.ErrorIs(t, c.Err(), unix.ECANCELED)
		assert.False(t, c.More())
	}
	assert.Zero(t, p.InFlight())
}

// TestSendCancel: a send waiting for room counts in InFlight, is not found
// by its token (sends are not indexed, as on the io_uring engine), and ends
// with -ECANCELED by CancelFD, after which nothing is in flight.
func TestSendCancel(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	a, _ := unixPair(t)
	big := make([]byte, 8<<20)
	require.NoError(t, p.Send(a, [][]byte{big}, 1))
	c := final(t, reap(t, p, 4, finals(1)), 1)
	require.Positive(t, c.Res)
	require.Less(t, int(c.Res), len(big), "8 MB cannot fit in the socket buffers")
	require.NoError(t, p.Send(a, [][]byte{big}, 2))
	n, err := p.Wait(0, make([]epoll.Completion, 4)) // meets EAGAIN: waits for room
	require.NoError(t, err)
	require.Zero(t, n)
	assert.Equal(t, 1, p.InFlight(), "the waiting send")
	require.ErrorIs(t, p.Cancel(2), unix.ENOENT, "a send is not found by its token")
	k, err := p.CancelFD(a)
	require.NoError(t, err)
	assert.Equal(t, 1, k)
	c = final(t, reap(t, p, 4, finals(2)), 2)
	assert.ErrorIs(t, c.Err(), unix.ECANCELED)
	assert.Zero(t, p.InFlight())
}

func TestCancelFD(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	a, b := unixPair(t)
	require.NoError(t, p.RecvMultishot(a, 10))
	require.NoError(t, p.Recv(a, make([]byte, 8), 11))
	require.NoError(t, p.RecvMultishot(b, 20))
	n, err := p.CancelFD(a)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	cs := reap(t, p, 8, finals(10, 11))
	require.Len(t, cs, 2)
	assert.Equal(t, uint64(10), cs[0].UserData, "submission order")
	assert.Equal(t, uint64(11), cs[1].UserData)
	for _, c := range cs {
		assert.ErrorIs(t, c.Err(), unix.ECANCELED)
	}
	assert.Equal(t, 1, p.InFlight())
	_, err = p.CancelFD(a)
	require.ErrorIs(t, err, unix.ENOENT)
	n, err = p.CancelFD(b)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	reap(t, p, 8, finals(20))
	assert.Zero(t, p.InFlight())
}

func TestCloseFD(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	a := fds[0]
	closeLater(t, fds[1]) // a is closed by CloseFD
	require.NoError(t, p.RecvMultishot(a, 1))
	_, err = p.Wait(0, make([]epoll.Completion, 1))
	require.NoError(t, err)

	require.ErrorIs(t, p.CloseFD(a, 2), unix.EBUSY)
	_, err = unix.FcntlInt(uintptr(a), unix.F_GETFD, 0)
	require.NoError(t, err, "a refused CloseFD leaves the fd open")

	require.NoError(t, p.Cancel(1))
	reap(t, p, 4, finals(1))
	require.NoError(t, p.CloseFD(a, 2))
	c := final(t, reap(t, p, 4, finals(2)), 2)
	assert.NoError(t, c.Err())
	_, err = unix.FcntlInt(uintptr(a), unix.F_GETFD, 0)
	assert.ErrorIs(t, err, unix.EBADF, "CloseFD closed the fd")
	assert.Zero(t, p.InFlight())
}

func TestSplice(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	want := pattern(1 << 20)
	path := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.WriteFile(path, want, 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	a, b := tcpPair(t, "127.0.0.1")
	const spliceUD, recvUD = 1, 2
	require.NoError(t, p.RecvMultishot(b, recvUD))
	require.NoError(t, p.Splice(a, int(f.Fd()), 0, len(want), spliceUD))

	var got []byte
	off := 0
	dst := make([]epoll.Completion, 8)
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < len(want) {
		require.True(t, time.Now().Before(deadline))
		n, err := p.Wait(time.Second, dst)
		require.NoError(t, err)
		for _, c := range dst[:n] {
			require.NoError(t, c.Err())
			switch c.UserData {
			case spliceUD:
				require.Positive(t, c.Res)
				off += int(c.Res)
				if off < len(want) {
					require.NoError(t, p.Splice(a, int(f.Fd()), int64(off), len(want)-off, spliceUD))
				}
			case recvUD:
				got = append(got, c.Buf...)
			}
		}
	}
	assert.Equal(t, len(want), off)
	assert.Equal(t, sha256.Sum256(want), sha256.Sum256(got))
	_, err = p.CancelFD(b)
	require.NoError(t, err)
	reap(t, p, 8, finals(recvUD))
	assert.Zero(t, p.InFlight())
}

func TestDatagram(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			p := newPoller(t, epoll.Options{})
			a, aAddr := socket(t, ip, unix.SOCK_DGRAM)
			b, bAddr := socket(t, ip, unix.SOCK_DGRAM)
			buf := make([]byte, 64)
			require.NoError(t, p.RecvFrom(b, buf, 1))
			n, err := p.Wait(0, make([]epoll.Completion, 2)) // nothing yet
			require.NoError(t, err)
			require.Zero(t, n)
			require.NoError(t, p.SendTo(a, []byte("hello"), bAddr, 2))
			cs := reap(t, p, 2, finals(1, 2))
			s := final(t, cs, 2)
			assert.Equal(t, int32(5), s.Res)
			r := final(t, cs, 1)
			require.Equal(t, int32(5), r.Res)
			assert.Equal(t, "hello", string(r.Buf))
			require.NotNil(t, r.From)
			assert.Equal(t, port(aAddr), port(r.From))
			assert.IsType(t, aAddr, r.From)

			// Recv (one-shot) takes one datagram too.
			require.NoError(t, p.SendTo(a, []byte("again"), bAddr, 3))
			require.NoError(t, p.Recv(b, buf, 4))
			r = final(t, reap(t, p, 2, finals(3, 4)), 4)
			assert.Equal(t, "again", string(r.Buf))
			assert.Zero(t, p.InFlight())
		})
	}
}

func TestTCPOverIPv6(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	ln, sa := listenTCP(t, "::1")
	require.NoError(t, p.AcceptMultishot(ln, 1))
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	closeLater(t, fd)
	require.NoError(t, p.Connect(fd, sa, 2))
	cs := reap(t, p, 4, func(cs []epoll.Completion) bool {
		return finals(2)(cs) && len(cs) >= 2
	})
	require.NoError(t, final(t, cs, 2).Err())
	var server int
	for _, c := range cs {
		if c.UserData == 1 {
			require.NoError(t, c.Err())
			server = int(c.Res)
		}
	}
	closeLater(t, server)
	require.NoError(t, p.Send(fd, [][]byte{[]byte("v6")}, 3))
	require.NoError(t, p.RecvMultishot(server, 4))
	cs = reap(t, p, 4, func(cs []epoll.Completion) bool { return len(received(cs, 4)) == 2 })
	assert.Equal(t, "v6", string(received(cs, 4)))
	_, err = p.CancelFD(server)
	require.NoError(t, err)
	require.NoError(t, p.Cancel(1))
	reap(t, p, 4, finals(1, 4))
	assert.Zero(t, p.InFlight())
}

func TestUnixSocketPair(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	a, b := unixPair(t)
	buf := make([]byte, 32)
	require.NoError(t, p.Recv(b, buf, 1))
	require.NoError(t, p.Send(a, [][]byte{[]byte("hello, "), nil, []byte("world")}, 2))
	cs := reap(t, p, 4, finals(1, 2))
	assert.Equal(t, int32(12), final(t, cs, 2).Res)
	r := final(t, cs, 1)
	assert.Equal(t, "hello, world", string(r.Buf))
	assert.Nil(t, r.From)
	assert.Zero(t, p.InFlight())
}

// TestMoreCompletionsThanDst covers both ways completions can outnumber dst:
// ready I/O is left in the kernel for the next Wait, and completions produced
// between Waits (cancellations) are kept in order.
func TestMoreCompletionsThanDst(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	const pairs = 10
	for i := range pairs {
		a, b := unixPair(t)
		_, err := unix.Write(a, []byte{byte(i)})
		require.NoError(t, err)
		require.NoError(t, p.Recv(b, make([]byte, 4), uint64(100+i)))
	}
	dst := make([]epoll.Completion, 3)
	var got []uint64
	for waits := 0; len(got) < pairs; waits++ {
		require.Less(t, waits, 100)
		n, err := p.Wait(time.Second, dst)
		require.NoError(t, err)
		require.LessOrEqual(t, n, len(dst))
		for _, c := range dst[:n] {
			require.Equal(t, int32(1), c.Res)
			require.Equal(t, byte(c.UserData-100), c.Buf[0])
			got = append(got, c.UserData)
		}
	}
	assert.ElementsMatch(t, []uint64{100, 101, 102, 103, 104, 105, 106, 107, 108, 109}, got)

	a, _ := unixPair(t)
	for i := range 5 {
		require.NoError(t, p.Recv(a, make([]byte, 1), uint64(i)))
	}
	n, err := p.CancelFD(a)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	var order []uint64
	for _, want := range []int{2, 2, 1} {
		n, err := p.Wait(time.Second, dst[:2])
		require.NoError(t, err)
		require.Equal(t, want, n)
		for _, c := range dst[:n] {
			order = append(order, c.UserData)
		}
	}
	assert.Equal(t, []uint64{0, 1, 2, 3, 4}, order)
	assert.Zero(t, p.InFlight())
}

// TestMultishotFairness checks that a socket with a lot of data does not
// starve another one within one Wait.
func TestMultishotFairness(t *testing.T) {
	p := newPoller(t, epoll.Options{RecvBufferSize: 1024, RecvBuffers: 64})
	busyA, busyB := unixPair(t)
	quietA, quietB := unixPair(t)
	_, err := unix.Write(busyA, pattern(60<<10))
	require.NoError(t, err)
	_, err = unix.Write(quietA, []byte("hi"))
	require.NoError(t, err)
	require.NoError(t, p.RecvMultishot(busyB, 1))
	require.NoError(t, p.RecvMultishot(quietB, 2))
	dst := make([]epoll.Completion, 256)
	n, err := p.Wait(time.Second, dst)
	require.NoError(t, err)
	busy := 0
	quiet := false
	for _, c := range dst[:n] {
		switch c.UserData {
		case 1:
			busy++
		case 2:
			quiet = true
		}
	}
	assert.True(t, quiet, "the quiet socket was served in the first Wait")
	assert.LessOrEqual(t, busy, epoll.MultishotBudget)
	// Bounded arena: 64 reads of 1 KiB at most per Wait, the rest follows.
	cs := reap(t, p, 256, func(cs []epoll.Completion) bool { return len(received(cs, 1)) == 60<<10-busy*1024 })
	_ = cs
	_, err = p.CancelFD(busyB)
	require.NoError(t, err)
	_, err = p.CancelFD(quietB)
	require.NoError(t, err)
	reap(t, p, 8, finals(1, 2))
	assert.Zero(t, p.InFlight())
}

func TestEINTRRetried(t *testing.T) {
	p := newPoller(t, epoll.Options{})
	a, b := unixPair(t)
	counts := epoll.InjectEINTR(t, 2) // every other attempt is "interrupted"
	require.NoError(t, p.RecvMultishot(b, 1))
	require.NoError(t, p.Send(a, [][]byte{[]byte("ping")}, 2))
	cs := reap(t, p, 4, func(cs []epoll.Completion) bool { return finals(2)(cs) && len(received(cs, 1)) == 4 })
	assert.Equal(t, "ping", string(received(cs, 1)))
	require.NoError(t, p.Wake())
	n, err := p.Wait(-1, make([]epoll.Completion, 1))
	require.NoError(t, err)
	assert.Zero(t, n)
	attempts, failed := counts()
	assert.Greater(t, attempts, 4, "the injection ran on the Wait path")
	assert.Equal(t, attempts/2, failed, "every other attempt failed with EINTR, and was retried")
	require.NoError(t, p.Cancel(1))
	reap(t, p, 4, finals(1))
	assert.Zero(t, p.InFlight())
}

func TestRegularFileCannotWait(t *testing.T) {
	// A regular file never returns EAGAIN, so Recv completes at once.
	p := newPoller(t, epoll.Options{})
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, []byte("abc"), 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, p.Recv(int(f.Fd()), make([]byte, 8), 1))
	c := final(t, reap(t, p, 2, finals(1)), 1)
	assert.Equal(t, "abc", string(c.Buf))
}
