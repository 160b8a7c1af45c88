package enginetest

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	epoll "github.com/ringmachine/ringmachine/fallback_epoll"
	"github.com/ringmachine/ringmachine/internal/leakcheck"
	"github.com/ringmachine/ringmachine/uring/engine"
)

// completion is one engine completion, the same for both engines.
type completion struct {
	UserData uint64
	Res      int32
	Flags    uint32 // the engine's own flags, untouched
	More     bool   // FlagMore: not the operation's final completion
	Buf      []byte
	From     unix.Sockaddr
}

// final reports whether c is its operation's last completion.
func (c completion) final() bool { return !c.More }

// Err returns nil when c.Res >= 0 and unix.Errno(-c.Res) otherwise, for
// failure messages.
func (c completion) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return unix.Errno(-c.Res)
}

// eng is the method set the two engines share. Every method but Wake is
// called from the goroutine (locked to its thread) that opened the engine.
type eng interface {
	Close() error
	Wake() error
	InFlight() int
	AcceptMultishot(fd int, ud uint64) error
	RecvMultishot(fd int, ud uint64) error
	Recv(fd int, buf []byte, ud uint64) error
	RecvFrom(fd int, buf []byte, ud uint64) error
	Send(fd int, bufs [][]byte, ud uint64) error
	// Read and Write are Recv and Send for descriptors that are not
	// sockets (pipes, FIFOs); Release hands fd back without closing it.
	Read(fd int, buf []byte, ud uint64) error
	Write(fd int, bufs [][]byte, ud uint64) error
	Release(fd int) (int, error)
	SendTo(fd int, b []byte, to unix.Sockaddr, ud uint64) error
	Connect(fd int, sa unix.Sockaddr, ud uint64) error
	Splice(outFD, inFD int, offset int64, n int, ud uint64) error
	SpliceIn(fd, pipeW, n int, ud uint64) error
	SpliceOut(fd, pipeR, n int, ud uint64) error
	Poll(fd int, mask uint32, ud uint64) error
	Cancel(ud uint64) error
	CancelFD(fd int) error
	CloseFD(fd int, ud uint64) error
	// Shutdown, Addrs and SetSockOptInt are the system calls a test makes
	// on an accepted connection, which on the direct rows is no process fd
	// (engine.IsDirect): the epoll wrapper makes them itself, the io_uring
	// one through the engine's methods of the same names (which make them
	// too for a process fd).
	Shutdown(fd, how int) error
	Addrs(fd int) (local, peer unix.Sockaddr, err error)
	SetSockOptInt(fd, level, name, v int) error
	// Wait is the engine's Wait with its completions converted; a Buf is
	// valid until the next Wait, as with the engines.
	Wait(timeout time.Duration, dst []completion) (int, error)

	// errClosed is the engine's sentinel for calls after Close.
	errClosed() error
	// directFiles is the size of the engine's table of direct descriptors:
	// positive on the rows whose AcceptMultishot accepts into it, 0 on the
	// others.
	directFiles() int
}

// connectTimeouter is implemented by engines that bound a connect in the
// kernel (io_uring: a linked timeout).
type connectTimeouter interface {
	ConnectTimeout(fd int, sa unix.Sockaddr, timeout time.Duration, ud uint64) error
	UpdateConnectTimeout(ud uint64, d time.Duration) error
}

// engines is the table every behaviour runs over: each engine with its
// defaults, then tuned to take its rare paths on every call. epoll-tiny's
// receive arena holds two 1000-byte reads, so multishot receives are carried
// over from Wait to Wait. uring-tiny has two 1000-byte provided buffers (a
// stream runs out of them: -ENOBUFS, re-armed), polls before its first
// receive attempt (which widens the kernel race the engine works around,
// see its RecvMultishot), sends every send zero-copy (AF_UNIX sockets refuse
// it: the engine falls back), enters the kernel once per operation and
// splices to and from pipes with IORING_OP_SPLICE (SpliceWorker).
// uring-direct and uring-direct-tiny are uring and uring-tiny with a table
// of 64 direct descriptors: their AcceptMultishot is the engine's
// AcceptMultishotDirect, so the accepted side of every stream test is a
// direct descriptor, which no system call can name.
var engines = []struct {
	name string
	open func(t *testing.T) eng
}{
	{"epoll", openEpoll},
	{"uring", openURing},
	{"epoll-tiny", func(t *testing.T) eng {
		return openEpollWith(t, epoll.Options{RecvBufferSize: 1000, RecvBuffers: 2})
	}},
	{"uring-tiny", func(t *testing.T) eng { return openURingWith(t, uringTiny) }},
	{"uring-direct", func(t *testing.T) eng {
		return openURingWith(t, engine.Options{DirectFiles: directFiles})
	}},
	{"uring-direct-tiny", func(t *testing.T) eng {
		opts := uringTiny
		opts.DirectFiles = directFiles
		return openURingWith(t, opts)
	}},
}

// uringTiny is the tuning of the uring-tiny rows.
var uringTiny = engine.Options{
	RecvBufferSize: 1000, RecvBuffers: 2, RecvPollFirst: true, SendZC: 1, SubmitPerOp: true,
	SpliceWorker: true,
}

// directFiles is the table size of the direct rows: more than any test
// holds connections at once.
const directFiles = 64

// forEachEngine runs body as a subtest per engine, with the engine open.
// The engine is closed at the end unless the body closed it; by then every
// operation must have had its final completion.
func forEachEngine(t *testing.T, body func(t *testing.T, e eng)) {
	t.Helper()
	forEachRow(t, func(t *testing.T, open func() eng) { body(t, open()) })
}

// forEachRow runs body as a subtest per engine; body opens the engine (as
// often as it needs) with open. The subtest's goroutine is locked to its OS
// thread before the first open and unlocked after the last engine is closed
// (cleanups run on it, last registered first), as the io_uring engine's
// SINGLE_ISSUER ring requires. The leak check is registered first, so it
// runs after every other cleanup.
func forEachRow(t *testing.T, body func(t *testing.T, open func() eng)) {
	t.Helper()
	for _, row := range engines {
		t.Run(row.name, func(t *testing.T) {
			leakcheck.Check(t)
			runtime.LockOSThread()
			t.Cleanup(runtime.UnlockOSThread)
			body(t, func() eng {
				e := row.open(t)
				closeAtEnd(t, e)
				return e
			})
		})
	}
}

// closeAtEnd closes e at the end of the test unless the test closed it;
// by then every operation must have had its final completion.
func closeAtEnd(t *testing.T, e eng) {
	t.Cleanup(func() {
		if n := e.InFlight(); n != 0 && !t.Failed() {
			t.Errorf("%d operations still in flight at the end of the test", n)
		}
		if err := e.Close(); err != nil && !errors.Is(err, e.errClosed()) {
			t.Errorf("Close: %v", err)
		}
	})
}

// epollEng adapts *epoll.Poller to eng.
type epollEng struct {
	p   *epoll.Poller
	dst []epoll.Completion
}

func openEpoll(t *testing.T) eng { return openEpollWith(t, epoll.Options{}) }

func openEpollWith(t *testing.T, opts epoll.Options) eng {
	p, err := epoll.New(opts)
	require.NoError(t, err)
	return &epollEng{p: p}
}

func (e *epollEng) errClosed() error { return epoll.ErrClosed }
func (e *epollEng) directFiles() int { return 0 }
func (e *epollEng) Close() error     { return e.p.Close() }
func (e *epollEng) Wake() error      { return e.p.Wake() }
func (e *epollEng) InFlight() int    { return e.p.InFlight() }

func (e *epollEng) AcceptMultishot(fd int, ud uint64) error { return e.p.AcceptMultishot(fd, ud) }
func (e *epollEng) RecvMultishot(fd int, ud uint64) error   { return e.p.RecvMultishot(fd, ud) }
func (e *epollEng) Recv(fd int, buf []byte, ud uint64) error {
	return e.p.Recv(fd, buf, ud)
}
func (e *epollEng) RecvFrom(fd int, buf []byte, ud uint64) error {
	return e.p.RecvFrom(fd, buf, ud)
}
func (e *epollEng) Send(fd int, bufs [][]byte, ud uint64) error  { return e.p.Send(fd, bufs, ud) }
func (e *epollEng) Read(fd int, buf []byte, ud uint64) error     { return e.p.Read(fd, buf, ud) }
func (e *epollEng) Write(fd int, bufs [][]byte, ud uint64) error { return e.p.Write(fd, bufs, ud) }

// Release has nothing to install: the epoll engine takes process fds only.
func (e *epollEng) Release(fd int) (int, error) {
	e.p.Release(fd)
	return fd, nil
}
func (e *epollEng) SendTo(fd int, b []byte, to unix.Sockaddr, ud uint64) error {
	return e.p.SendTo(fd, b, to, ud)
}
func (e *epollEng) Connect(fd int, sa unix.Sockaddr, ud uint64) error {
	return e.p.Connect(fd, sa, ud)
}
func (e *epollEng) Splice(outFD, inFD int, offset int64, n int, ud uint64) error {
	return e.p.Splice(outFD, inFD, offset, n, ud)
}
func (e *epollEng) SpliceIn(fd, pipeW, n int, ud uint64) error { return e.p.SpliceIn(fd, pipeW, n, ud) }
func (e *epollEng) SpliceOut(fd, pipeR, n int, ud uint64) error {
	return e.p.SpliceOut(fd, pipeR, n, ud)
}
func (e *epollEng) Poll(fd int, mask uint32, ud uint64) error { return e.p.Poll(fd, mask, ud) }
func (e *epollEng) Cancel(ud uint64) error                    { return e.p.Cancel(ud) }

// CancelFD drops the count: io_uring's CancelFD has none to give.
func (e *epollEng) CancelFD(fd int) error {
	_, err := e.p.CancelFD(fd)
	return err
}
func (e *epollEng) CloseFD(fd int, ud uint64) error { return e.p.CloseFD(fd, ud) }

// Shutdown is shutdown(2), ENOTCONN (a peer gone already) ignored as the
// io_uring engine's Shutdown does.
func (e *epollEng) Shutdown(fd, how int) error {
	if err := unix.Shutdown(fd, how); err != nil && err != unix.ENOTCONN {
		return err
	}
	return nil
}

func (e *epollEng) Addrs(fd int) (local, peer unix.Sockaddr, err error) {
	if local, err = unix.Getsockname(fd); err != nil {
		return nil, nil, err
	}
	if peer, err = unix.Getpeername(fd); err != nil {
		return local, nil, err
	}
	return local, peer, nil
}

func (e *epollEng) SetSockOptInt(fd, level, name, v int) error {
	return unix.SetsockoptInt(fd, level, name, v)
}

func (e *epollEng) Wait(timeout time.Duration, dst []completion) (int, error) {
	if cap(e.dst) < len(dst) {
		e.dst = make([]epoll.Completion, len(dst))
	}
	native := e.dst[:len(dst)]
	n, err := e.p.Wait(timeout, native)
	for i, c := range native[:n] {
		dst[i] = completion{UserData: c.UserData, Res: c.Res, Flags: c.Flags, More: c.More(), Buf: c.Buf, From: c.From}
		native[i] = epoll.Completion{}
	}
	return n, err
}

// TestFlagMoreMatches checks that both engines mark non-final completions
// with the same bit, IORING_CQE_F_MORE, which the loop relies on.
func TestFlagMoreMatches(t *testing.T) {
	assert.Equal(t, uint32(1<<1), epoll.FlagMore)
	assert.Equal(t, uint32(1<<1), uint32(engine.FlagMore))
	assert.Equal(t, epoll.MsgTokens, engine.MsgTokens, "the reserved token ranges must match")
}
