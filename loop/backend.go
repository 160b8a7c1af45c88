package loop

import (
	"time"

	"github.com/ringmachine/ringmachine/uring/engine"
	"golang.org/x/sys/unix"
)

// backend is the contract between the loop and an I/O engine: the io_uring
// engine (package engine, under uring/) or the epoll engine (package epoll,
// fallback_epoll/). Both engines have the same completion-style method set
// and pass one engine-level conformance table (internal/enginetest); the
// loop reaches each through a thin adapter (backend_uring_linux.go,
// backend_epoll_linux.go) that only maps names and completions.
//
// Every method except wake is called only from the loop goroutine. Tokens
// are laid out in token.go.
type backend interface {
	// kind reports which backend this is.
	kind() Backend

	// poll submits queued operations and waits at most timeout for at least
	// one completion or a wake-up (timeout 0: do not block; negative: no
	// limit). It calls dispatch once per completion, in the order the engine
	// reports them; the completion and its buffer are valid only during the
	// call.
	poll(timeout time.Duration, dispatch func(*completion)) error

	// wake makes a poll blocked on another goroutine return. Safe for
	// concurrent use. The loop dedupes calls (see Loop.wakeup).
	wake() error

	// inFlight reports the operations submitted whose final completion has
	// not been dispatched yet. Zero after close.
	inFlight() int

	// acceptMultishot accepts connections on the listening socket fd: one
	// completion per connection (res = the new fd, non-blocking and
	// close-on-exec) with more set, until a final completion.
	acceptMultishot(fd int, tok uint64) error

	// acceptDirect is acceptMultishot whose connections are io_uring
	// direct descriptors (unless URingOptions.ProcessFDs): fds no system call takes,
	// which the methods below (setNoDelay, shutdownWrite, addrs, closeFD)
	// handle. errors.ErrUnsupported when the engine has none.
	acceptDirect(fd int, tok uint64) error

	// socketDirect creates a non-blocking stream socket of domain as an
	// io_uring direct descriptor: res = its fd. errors.ErrUnsupported when
	// the engine has no table, unix.ENFILE when it is full; the loop makes
	// a process fd then.
	socketDirect(domain int, tok uint64) error

	// setNoDelay sets TCP_NODELAY on fd (best effort: no error for a direct
	// descriptor, whose socket command reports nothing).
	setNoDelay(fd int) error

	// shutdownWrite shuts fd down for writing (ENOTCONN is no error).
	shutdownWrite(fd int) error

	// addrs returns fd's local and peer addresses.
	addrs(fd int) (local, peer unix.Sockaddr, err error)

	// control calls fn with a process fd for the socket fd (fd itself, or,
	// for a direct descriptor, one installed for the call and closed after
	// it), for socket options and bind(2).
	control(fd int, fn func(fd int) error) error

	// recvMultishot reads from the stream socket fd: completions with
	// res = n > 0, buf = the bytes (valid only during dispatch) and more
	// set; a final completion at EOF (res 0), on error, on cancel, or with
	// -ENOBUFS when the receive buffers ran out (re-arm it then).
	recvMultishot(fd int, tok uint64) error

	// recv reads once from the stream socket fd into buf: res = n, buf =
	// buf[:n] (0 at EOF). buf belongs to the engine until the completion.
	recv(fd int, buf []byte, tok uint64) error

	// recvFrom receives one datagram into buf: res = n, buf = buf[:n], from
	// = the sender. buf belongs to the engine until the completion.
	recvFrom(fd int, buf []byte, tok uint64) error

	// send writes bufs (at most IOV_MAX slices) to fd in one operation; res
	// = the bytes written, possibly short, or -EAGAIN when nothing was
	// written and the loop is to send again (io_uring can end a send so;
	// see errRetry). Any completion of a socket operation may be -EAGAIN
	// with the same meaning. The engine copies bufs itself; the byte slices
	// stay untouched until the completion.
	send(fd int, bufs [][]byte, tok uint64) error

	// sendTo sends b as one datagram to to; b as for send.
	sendTo(fd int, b []byte, to unix.Sockaddr, tok uint64) error

	// connect connects the non-blocking socket fd to sa; res = 0 or -errno.
	// When timeout > 0 the engine may bound the attempt itself (io_uring: a
	// linked timeout); it reports whether it did, and such a connect that
	// runs out of time completes with res = -ETIME (never otherwise produced
	// by a connect). When it did not, the loop times the connect out with a
	// timer.
	connect(fd int, sa unix.Sockaddr, timeout time.Duration, tok uint64) (bounded bool, err error)

	// updateConnectTimeout moves the expiry of the bound of a connect that
	// connect reported bounded to d from now (d <= 0: now). An error means
	// the bound is unchanged; the loop then falls back to its timer.
	updateConnectTimeout(tok uint64, d time.Duration) error

	// sendFile sends up to n bytes of the file inFD at offset to the socket
	// outFD (sendfile(2) semantics); res = bytes sent, possibly short, 0 at
	// the end of the file.
	sendFile(outFD, inFD int, offset int64, n int, tok uint64) error

	// spliceIn moves up to n bytes the stream socket fd has received into
	// the pipe pipeW, which has room for them, once some have arrived: res
	// = the bytes moved, 0 at the peer's EOF.
	spliceIn(fd, pipeW, n int, tok uint64) error

	// spliceOut moves up to n bytes from the pipe pipeR, which holds at
	// least n, to the stream socket fd once it has room: res = the bytes
	// moved, possibly fewer than n.
	spliceOut(fd, pipeR, n int, tok uint64) error

	// pollFD waits, once, until fd is ready for mask (unix.POLLIN or
	// unix.POLLOUT): res = the ready events (a poll(2) revents mask).
	pollFD(fd int, mask uint32, tok uint64) error

	// waitid waits for the exit of the child of pidfd and reaps it, filling
	// *info (the caller pins it); errors.ErrUnsupported where the backend
	// cannot (epoll; io_uring before Linux 6.7): poll the pidfd instead.
	waitid(pidfd int, info *siginfo, tok uint64) error

	// read reads once from fd, a pipe or FIFO (any descriptor read(2)
	// takes), into buf: res = n, buf = buf[:n] (0 at EOF: no writer left).
	// buf belongs to the engine until the completion; cancel ends it.
	read(fd int, buf []byte, tok uint64) error

	// write writes bufs (at most IOV_MAX slices) to fd, a pipe or FIFO, in
	// one operation: as send, but with write(2) semantics (-EPIPE once no
	// reader is left). cancelFD, not cancel, ends it.
	write(fd int, bufs [][]byte, tok uint64) error

	// release ends the engine's hold on fd without closing it and returns
	// a process fd the caller owns: fd itself, or, for an io_uring direct
	// descriptor, one installed for it (close-on-exec), the direct
	// descriptor being left for closeFD. Operations in flight on fd go on
	// until they complete or are cancelled.
	release(fd int) (int, error)

	// cancel ends the operation submitted with tok (a receive or a
	// connect): it completes (with -ECANCELED unless it finished first). A
	// miss is not an error.
	cancel(tok uint64) error

	// cancelFD cancels every operation in flight on fd.
	cancelFD(fd int) error

	// closeFD closes fd, which must have no operation in flight; the
	// completion (res 0 or -errno) tells when it is done.
	closeFD(fd int, tok uint64) error

	// close cancels every operation still in flight, reaps their
	// completions without dispatching them, and releases the engine's
	// resources (ring or epoll fd, eventfd, buffers).
	close() error
}

// completion is one finished operation, as both engines report it: the
// io_uring engine's own record, which the epoll engine's has the same fields
// as, in the same order and with the same types (and FlagMore the same
// value, asserted in backend_epoll_linux.go). So each backend hands dispatch
// a pointer to the engine's record (a conversion for epoll) rather than a
// copy: the copy, a write-barriered store of two pointers per completion,
// was about a tenth of the loop's user time per request (bench/README.md,
// "Per-request costs"). Should the two drift apart, the conversion stops
// compiling. Buf is valid only during dispatch.
type completion = engine.Completion

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
	ringEntries    int // io_uring: SQ size (0: the engine's default)
	setup          URingSetupMode
	sendZC         int           // io_uring: smallest send to go out zero-copy (0: none)
	submitPerOp    bool          // io_uring: one io_uring_enter per SQE
	directFiles    int           // io_uring: slots of the direct descriptor table (0: none)
	minWait        time.Duration // io_uring: a wait's minimum (0: none)
	recvBundle     bool          // io_uring: multishot receives take bundles of buffers
	minWaitBatch   int           // io_uring: completions a minimum wait gathers
	spliceWorker   bool          // io_uring: proxies splice on io-wq workers
}

// testHookProcessFDs, set by the tests' TestMain from
// RINGMACHINE_TEST_PROCESS_FDS=1, runs every loop as if
// URingOptions.ProcessFDs were set, so the whole suite runs on process fds
// on io_uring too.
var testHookProcessFDs bool

// testHookNoFixedSendBuffers, when set by a test or benchmark, opens
// engines with Options.NoFixedSendBuffers: zero-copy sends from the send
// slabs map their pages per send instead of naming a fixed buffer.
var testHookNoFixedSendBuffers bool

// testHookRecvBundle, set by the tests' TestMain from
// RINGMACHINE_TEST_RECV_BUNDLE=1, runs every io_uring loop whose
// URingOptions.Recv is RecvMultishot as if it were RecvMultishotBundle, so
// the hazard suite runs on receive bundles too.
var testHookRecvBundle bool

// directFiles is the size asked of the io_uring engine's table of direct
// descriptors: as large as the engine allows (it caps it at RLIMIT_NOFILE),
// 0 with URingOptions.ProcessFDs.
func directFiles(on bool) int {
	switch {
	case !on:
		return 0
	case testHookDirectFiles > 0:
		return testHookDirectFiles
	}
	return 1 << 20
}

// testHookDirectFiles, when set by a test, sizes the direct descriptor table
// (to fill it).
var testHookDirectFiles int
