package enginetest

import (
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/uring/engine"
)

// uringEng adapts *engine.Engine to eng. It remembers the thread the engine
// was created on and panics when a method other than Wake is called from
// another one: that is a bug of the test (the ring is SINGLE_ISSUER), and
// the engine's own answer (EEXIST from io_uring_enter) would be misleading.
//
// With a table of direct descriptors (Options.DirectFiles), its
// AcceptMultishot is the engine's AcceptMultishotDirect: the tests written
// for accepted process fds run unchanged on direct ones.
type uringEng struct {
	e      *engine.Engine
	opts   engine.Options
	direct bool // the engine has a table of direct descriptors
	tid    int
	dst    []engine.Completion
}

var _ connectTimeouter = (*uringEng)(nil)

// openURing opens an io_uring engine with the default options, skipping
// when io_uring is unavailable unless RINGMACHINE_REQUIRE_URING=1 (the
// convention of internal/testutil).
func openURing(t *testing.T) eng { return openURingWith(t, engine.Options{}) }

func openURingWith(t *testing.T, opts engine.Options) eng {
	e, err := engine.New(opts)
	if err != nil && os.Getenv("RINGMACHINE_REQUIRE_URING") != "1" {
		t.Skipf("io_uring engine unavailable: %v", err)
	}
	require.NoError(t, err)
	u := &uringEng{e: e, opts: opts, tid: unix.Gettid(), direct: e.DirectFiles() > 0}
	if opts.DirectFiles > 0 && !u.direct {
		// The engine leaves the table out when the kernel lacks what direct
		// descriptors need; the row has nothing to test then.
		err := e.Close()
		if os.Getenv("RINGMACHINE_REQUIRE_URING") != "1" {
			t.Skipf("no table of direct descriptors on this kernel (Close: %v)", err)
		}
		t.Fatalf("RINGMACHINE_REQUIRE_URING=1 and no table of direct descriptors (Close: %v)", err)
	}
	return u
}

// reopen opens another engine with u's options changed by tune, closed at
// the end of the test like the row's own. Call it on the test's goroutine.
func (u *uringEng) reopen(t *testing.T, tune func(*engine.Options)) *uringEng {
	opts := u.opts
	tune(&opts)
	v := openURingWith(t, opts).(*uringEng)
	closeAtEnd(t, v)
	return v
}

// sameThread panics unless called on the thread that created the engine.
func (u *uringEng) sameThread(method string) {
	if tid := unix.Gettid(); tid != u.tid {
		panic(fmt.Sprintf("enginetest: uring %s called on thread %d, engine created on thread %d", method, tid, u.tid))
	}
}

func (u *uringEng) errClosed() error { return engine.ErrClosed }

func (u *uringEng) directFiles() int { u.sameThread("DirectFiles"); return u.e.DirectFiles() }

func (u *uringEng) Close() error { u.sameThread("Close"); return u.e.Close() }

// Wake is the one method safe from any goroutine.
func (u *uringEng) Wake() error { return u.e.Wake() }

func (u *uringEng) InFlight() int { u.sameThread("InFlight"); return u.e.InFlight() }

func (u *uringEng) AcceptMultishot(fd int, ud uint64) error {
	u.sameThread("AcceptMultishot")
	if u.direct {
		return u.e.AcceptMultishotDirect(fd, ud)
	}
	return u.e.AcceptMultishot(fd, ud)
}

func (u *uringEng) RecvMultishot(fd int, ud uint64) error {
	u.sameThread("RecvMultishot")
	return u.e.RecvMultishot(fd, ud)
}

func (u *uringEng) Recv(fd int, buf []byte, ud uint64) error {
	u.sameThread("Recv")
	return u.e.Recv(fd, buf, ud)
}

func (u *uringEng) RecvFrom(fd int, buf []byte, ud uint64) error {
	u.sameThread("RecvFrom")
	return u.e.RecvFrom(fd, buf, ud)
}

func (u *uringEng) Send(fd int, bufs [][]byte, ud uint64) error {
	u.sameThread("Send")
	return u.e.Send(fd, bufs, ud)
}

func (u *uringEng) Read(fd int, buf []byte, ud uint64) error {
	u.sameThread("Read")
	return u.e.Read(fd, buf, ud)
}

func (u *uringEng) Write(fd int, bufs [][]byte, ud uint64) error {
	u.sameThread("Write")
	return u.e.Write(fd, bufs, ud)
}

func (u *uringEng) Release(fd int) (int, error) {
	u.sameThread("Release")
	return u.e.Release(fd)
}

func (u *uringEng) SendTo(fd int, b []byte, to unix.Sockaddr, ud uint64) error {
	u.sameThread("SendTo")
	return u.e.SendTo(fd, b, to, ud)
}

func (u *uringEng) Connect(fd int, sa unix.Sockaddr, ud uint64) error {
	u.sameThread("Connect")
	return u.e.Connect(fd, sa, ud)
}

func (u *uringEng) ConnectTimeout(fd int, sa unix.Sockaddr, timeout time.Duration, ud uint64) error {
	u.sameThread("ConnectTimeout")
	return u.e.ConnectTimeout(fd, sa, timeout, ud)
}

func (u *uringEng) UpdateConnectTimeout(ud uint64, d time.Duration) error {
	u.sameThread("UpdateConnectTimeout")
	return u.e.UpdateConnectTimeout(ud, d)
}

func (u *uringEng) Splice(outFD, inFD int, offset int64, n int, ud uint64) error {
	u.sameThread("Splice")
	return u.e.Splice(outFD, inFD, offset, n, ud)
}

func (u *uringEng) SpliceIn(fd, pipeW, n int, ud uint64) error {
	u.sameThread("SpliceIn")
	return u.e.SpliceIn(fd, pipeW, n, ud)
}

func (u *uringEng) SpliceOut(fd, pipeR, n int, ud uint64) error {
	u.sameThread("SpliceOut")
	return u.e.SpliceOut(fd, pipeR, n, ud)
}

func (u *uringEng) Poll(fd int, mask uint32, ud uint64) error {
	u.sameThread("Poll")
	return u.e.Poll(fd, mask, ud)
}

func (u *uringEng) Cancel(ud uint64) error { u.sameThread("Cancel"); return u.e.Cancel(ud) }

func (u *uringEng) CancelFD(fd int) error { u.sameThread("CancelFD"); return u.e.CancelFD(fd) }

func (u *uringEng) CloseFD(fd int, ud uint64) error {
	u.sameThread("CloseFD")
	return u.e.CloseFD(fd, ud)
}

func (u *uringEng) Shutdown(fd, how int) error {
	u.sameThread("Shutdown")
	return u.e.Shutdown(fd, how)
}

func (u *uringEng) Addrs(fd int) (local, peer unix.Sockaddr, err error) {
	u.sameThread("Addrs")
	return u.e.Addrs(fd)
}

func (u *uringEng) SetSockOptInt(fd, level, name, v int) error {
	u.sameThread("SetSockOptInt")
	return u.e.SetSockOptInt(fd, level, name, v)
}

func (u *uringEng) Wait(timeout time.Duration, dst []completion) (int, error) {
	u.sameThread("Wait")
	if cap(u.dst) < len(dst) {
		u.dst = make([]engine.Completion, len(dst))
	}
	native := u.dst[:len(dst)]
	n, err := u.e.Wait(timeout, native)
	for i, c := range native[:n] {
		dst[i] = completion{UserData: c.UserData, Res: c.Res, Flags: c.Flags, More: c.More(), Buf: c.Buf, From: c.From}
		native[i] = engine.Completion{}
	}
	return n, err
}

// msgRing and ringFD are io_uring's alone; see TestMsgRing.
func (u *uringEng) msgRing(ringFD int, res uint32, data, ud uint64) error {
	u.sameThread("MsgRing")
	return u.e.MsgRing(ringFD, res, data, ud)
}

func (u *uringEng) ringFD() int { u.sameThread("RingFD"); return u.e.RingFD() }

// TestMsgRing posts a completion on another engine's ring (io_uring only):
// the target reports {UserData: data, Res: res} once, counted by neither
// engine's InFlight, the sender its own completion Res 0; data outside
// [MsgTokens, Reserved) and reserved tokens are refused with EINVAL.
func TestMsgRing(t *testing.T) {
	forEachRow(t, func(t *testing.T, open func() eng) {
		from, ok := open().(*uringEng)
		if !ok {
			t.Skip("MsgRing is io_uring's alone: an epoll engine has no ring to post to")
		}
		to := open().(*uringEng)
		target := to.ringFD()
		if target < 0 {
			t.Skip("no IORING_OP_MSG_RING (Linux 5.18)")
		}
		const data = engine.MsgTokens + 5
		require.NoError(t, from.msgRing(target, 42, data, 1))
		c := finalOf(t, reap(t, from, 4, finals(1)), 1)
		require.Equal(t, int32(0), c.Res, "sender's completion: %v", c.Err())
		cs := reap(t, to, 4, finals(data))
		require.Len(t, cs, 1, "completions on the target: %s", describe(cs))
		assert.Equal(t, int32(42), cs[0].Res)
		assert.False(t, cs[0].More)
		assert.Zero(t, from.InFlight())
		assert.Zero(t, to.InFlight(), "a message is not an operation of the target")

		// To itself.
		require.NoError(t, from.msgRing(from.ringFD(), 7, engine.MsgTokens, 2))
		cs = reap(t, from, 4, finals(2, engine.MsgTokens))
		assert.Equal(t, int32(0), finalOf(t, cs, 2).Res)
		assert.Equal(t, int32(7), finalOf(t, cs, engine.MsgTokens).Res)

		for _, bad := range []uint64{engine.MsgTokens - 1, 0, engine.Reserved, math.MaxUint64} {
			assert.ErrorIs(t, from.msgRing(target, 1, bad, 3), unix.EINVAL, "data %#x", bad)
		}
		assert.ErrorIs(t, from.msgRing(target, 1, data, engine.MsgTokens), unix.EINVAL, "a reserved token")
		quiet(t, from, 20*time.Millisecond)
		quiet(t, to, 20*time.Millisecond)
		assert.Zero(t, from.InFlight())
	})
}
