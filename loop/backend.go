package loop

import (
	"runtime"
	"time"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

// backend is the contract between the loop and an I/O backend (io_uring or
// epoll). It is completion based: the loop asks for operations tagged with a
// token and later receives their completions from poll. Both implementations
// live in this package as thin adapters (backend_uring_linux.go,
// backend_epoll_linux.go) over the leaf packages uring and epoll, each with a
// compile-time assertion that it satisfies this interface.
//
// Every method except wake is called only from the loop goroutine.
type backend interface {
	// kind reports which backend this is.
	kind() Backend

	// poll submits queued operations and waits at most timeout for at least
	// one completion or a wake-up (timeout 0: do not block; negative: no
	// limit). It calls dispatch once per completion, in the order the backend
	// reports them; the completion and its buffer are valid only during the
	// call.
	poll(timeout time.Duration, dispatch func(*completion)) error

	// wake makes a poll blocked on another goroutine return. Safe for
	// concurrent use. The loop dedupes calls (see Loop.wakeup).
	wake() error

	// inFlight reports the operations submitted whose final completion has
	// not been dispatched yet (the backend's own wake-up read included only
	// while it is armed). Zero after close.
	inFlight() int

	// acceptMultishot accepts connections on the listening socket fd: one
	// completion per connection (res = the new fd, non-blocking and
	// close-on-exec) with flagMore, until a final completion.
	acceptMultishot(fd int, tok uint64) error

	// recvMultishot reads from the stream socket fd: completions with
	// res = n > 0 and buf = the bytes (valid only during dispatch) and
	// flagMore; a final completion at EOF (res 0), on error, on cancel, or
	// with -ENOBUFS when the receive buffers ran out (re-arm it then).
	recvMultishot(fd int, tok uint64) error

	// recvFrom receives one datagram into buf: res = n, buf = buf[:n], from
	// = the sender. buf belongs to the backend until the completion.
	recvFrom(fd int, buf []byte, tok uint64) error

	// send writes bufs (at most IOV_MAX slices) to fd in one sendmsg; res =
	// the bytes written, possibly short, or -EAGAIN when nothing was written
	// and the loop is to send again (io_uring can end a send so; see
	// errRetry). Any completion of a socket operation may be -EAGAIN with the
	// same meaning. m must hold every
	// buffer and the kernel-visible structures until the completion, after
	// which the loop calls m.release.
	send(fd int, bufs [][]byte, m *opMem, tok uint64) error

	// sendTo sends b as one datagram to to; m as for send.
	sendTo(fd int, b []byte, to unix.Sockaddr, m *opMem, tok uint64) error

	// connect connects the non-blocking socket fd to sa; res = 0 or -errno.
	// m holds the encoded address until the completion. When timeout > 0 the
	// backend may bound the attempt itself (io_uring: a linked timeout); it
	// reports whether it did, and such a connect that runs out of time
	// completes with res = -ETIME (never otherwise produced by a connect).
	// When it did not, the loop times the connect out with a timer.
	connect(fd int, sa unix.Sockaddr, m *opMem, timeout time.Duration, tok uint64) (bounded bool, err error)

	// updateConnectTimeout moves the expiry of the bound of a connect that
	// connect reported bounded to d from now (d <= 0: now). An error means
	// the bound is unchanged; the loop then falls back to its timer.
	updateConnectTimeout(tok uint64, d time.Duration) error

	// sendFile sends up to n bytes of the file inFD at offset to the socket
	// outFD (sendfile(2) semantics); res = bytes sent, possibly short, 0 at
	// the end of the file.
	sendFile(outFD, inFD int, offset int64, n int, tok uint64) error

	// cancel ends the operation submitted with tok: it completes (with
	// -ECANCELED unless it finished first). A miss is not an error.
	cancel(tok uint64) error

	// cancelFD cancels every operation in flight on fd.
	cancelFD(fd int) error

	// closeFD closes fd, which must have no operation in flight; the
	// completion (res 0 or -errno) tells when it is done.
	closeFD(fd int, tok uint64) error

	// close cancels every operation still in flight, reaps their
	// completions without dispatching them, and releases the backend's
	// resources (ring or epoll fd, eventfd, buffers).
	close() error
}

// completion is one finished operation, as both backends report it.
type completion struct {
	tok   uint64 // the token the operation was submitted with
	res   int32  // >= 0: result; < 0: -errno
	flags uint32 // flagMore when a multishot operation goes on
	buf   []byte // received bytes, valid only during dispatch
	from  unix.Sockaddr
}

// opMem is the memory one operation hands the kernel (iovecs, msghdr,
// sockaddr) plus the buffers it points to. It lives in the record of the
// connection that owns the operation, so it stays reachable until the
// operation's final completion; Go memory whose address goes into an SQE is
// pinned with pin from submission until release (STYLE §5).
type opMem struct {
	bufs   [][]byte
	iov    []unix.Iovec
	msg    unix.Msghdr
	sa     uring.Sockaddr
	pin    runtime.Pinner
	pinned bool

	// Zero-copy sends (Options.URingSendZC). noZC is set by the loop for a
	// socket that must not use them; zc by the backend when the send went
	// out zero-copy; res keeps its result until the notification, the
	// operation's final completion.
	noZC bool
	zc   bool
	res  int32
}

// release ends the kernel's use of m: called by the loop after the final
// completion of the operation m was submitted with.
func (m *opMem) release() {
	if m.pinned {
		m.pin.Unpin()
		m.pinned = false
	}
	clear(m.bufs)
	m.bufs = m.bufs[:0]
	clear(m.iov)
	m.iov = m.iov[:0]
	m.msg = unix.Msghdr{}
	m.noZC, m.zc, m.res = false, false, 0
}

// flagMore marks a completion after which the same multishot operation will
// complete again. Must match uring.CQEFMore and epoll.FlagMore.
const flagMore = 1 << 1

// flagNotif marks the notification of a zero-copy send: the kernel no longer
// reads its buffers. Must match uring.CQEFlagNotif; epoll never sets it.
const flagNotif = 1 << 3

// testHookRingEntries, when set by a test, replaces the io_uring submission
// queue size (ringEntries), to force SQ-full and CQ-overflow conditions.
var testHookRingEntries int

// testHookOpenURing, when set by a test, replaces opening the io_uring
// backend, so fallback rules can be exercised on a kernel that has io_uring.
var testHookOpenURing func() (backend, error)

// testHookWrapBackend, when set by a test, wraps the backend Run opens
// (either kind), so faults can be injected between the loop and the engine.
var testHookWrapBackend func(backend) backend

// backendConfig is what the backends take from Options.
type backendConfig struct {
	recvBufferSize int
	recvBuffers    int
	recvBuffersMax int // io_uring: the most buffers the ring grows to
	ringEntries    int // io_uring: SQ size (0: ringEntries)
	setup          SetupMode
	sendZC         int  // io_uring: smallest send to go out zero-copy (0: none)
	submitPerOp    bool // io_uring: one io_uring_enter per SQE
}

// singleShotReceiver is implemented by backends that can receive into a
// buffer of the loop's (Options.URingRecv = RecvSingleShot); the loop uses
// it instead of recvMultishot when asked to.
type singleShotReceiver interface {
	// recv reads once from the stream socket fd into m.bufs[0]: res = n,
	// buf = the bytes (0 at EOF). m holds the buffer until the completion,
	// after which the loop calls m.release.
	recv(fd int, m *opMem, tok uint64) error
}
