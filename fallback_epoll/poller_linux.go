package epoll

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// multishotBudget is how many completions one multishot operation may
// produce per Wait before it is carried over to the next one, so that one
// busy socket cannot starve the others (libuv and the Go runtime bound their
// per-fd work the same way).
const multishotBudget = 8

// maxFreeOps bounds the free list of recycled op records.
const maxFreeOps = 1024

// maxIOV is IOV_MAX on Linux: writev(2) rejects more iovecs with EINVAL, so a
// Send with more buffers writes the first maxIOV (a partial send).
const maxIOV = 1024

// maxRW is the most bytes one read/write/sendfile moves on Linux
// (MAX_RW_COUNT); it also keeps Res within int32.
const maxRW = math.MaxInt32 &^ 4095

// epollInterest is the fixed interest set of every registered fd; see the
// package documentation for why it is edge-triggered and never modified.
const epollInterest = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

// opKind is the kind of a queued operation.
type opKind uint8

const (
	kindAccept opKind = iota
	kindRecvMultishot
	kindRecv
	kindRecvFrom
	kindSpliceIn
	kindPollIn
	// Kinds from kindSend on wait for writability.
	kindSend
	kindSendTo
	kindConnect
	kindSplice
	kindSpliceOut
	kindPollOut
	kindWrite
)

// writes reports whether the operation waits for EPOLLOUT (else EPOLLIN).
func (k opKind) writes() bool { return k >= kindSend }

// multishot reports whether the operation produces several completions.
func (k opKind) multishot() bool { return k == kindAccept || k == kindRecvMultishot }

// indexed reports whether the operation is in Poller.ops, where Cancel finds
// it by its token. Sends are not, as on the io_uring engine: a reply is
// submitted and completed once per request, and its three map operations
// (the duplicate check, the insert, the delete) stood out in an echo
// server's profile. CancelFD still ends them.
func (k opKind) indexed() bool { return k != kindSend && k != kindSendTo }

// op is one queued operation. It owns everything its system call uses until
// its final completion.
type op struct {
	kind     opKind
	fd       int
	userData uint64
	seq      uint64 // submission order, for CancelFD

	buf  []byte        // Recv, RecvFrom, SendTo
	bufs [][]byte      // Send
	sa   unix.Sockaddr // SendTo, Connect
	inFD int           // Splice; SpliceIn, SpliceOut: the pipe
	off  int64         // Splice; < 0: the file position
	n    int           // Splice, SpliceIn, SpliceOut; Poll: the events

	connecting bool // connect(2) is in progress; wait for EPOLLOUT, then SO_ERROR
	queued     bool // in Poller.runq or Poller.later
	ended      bool // final completion produced; skipped if still queued

	waitSeq uint64 // the Wait in which spent was counted
	spent   int    // completions produced in that Wait (multishot budget)
}

// fdState is the per-fd record: its epoll registration, cached readiness and
// the operations waiting on it. It exists while the fd has operations.
type fdState struct {
	fd  int
	seq int32 // echoed in epoll events (EpollEvent.Pad) to drop stale ones

	registered bool // in the epoll set
	// readable and writable cache edge-triggered readiness: set by an event,
	// cleared when an operation meets EAGAIN. Meaningful only if registered.
	readable, writable bool

	// sockType caches SO_TYPE (0: not asked yet, -1: not a socket); see
	// Poller.isStream.
	sockType int
	// hup is set by an event reporting EPOLLRDHUP, EPOLLHUP or EPOLLERR.
	hup bool
	// sticky keeps the record, registration and readiness of an fd that
	// has had a SpliceIn or SpliceOut after its last operation ends, until
	// CloseFD: a proxy submits one such operation after another, and each
	// would otherwise cost an EPOLL_CTL_DEL, an EPOLL_CTL_ADD and an
	// attempt that meets EAGAIN.
	sticky bool

	readers []*op // FIFO of operations waiting for EPOLLIN
	writers []*op // FIFO of operations waiting for EPOLLOUT
}

// Poller runs completion-style operations on top of epoll. Create it with
// [New]. Call its methods only from one goroutine, except [Poller.Wake].
type Poller struct {
	epfd int
	evfd int
	opts Options

	// wakeMu keeps Close from closing the eventfd (whose number could then be
	// reused) while a Wake from another goroutine writes to it.
	wakeMu sync.RWMutex
	closed bool // written under wakeMu; read by Wake under it

	fds      fdTable
	ops      map[uint64]*op // operations Cancel can name (opKind.indexed)
	sends    int            // operations in flight that are not in ops
	nextFD   int32          // last fdState.seq handed out
	nextOp   uint64         // last op.seq handed out
	waitSeq  uint64         // number of Wait calls that ran the queue
	runq     []*op          // operations to attempt in this Wait
	later    []*op          // operations carried over to the next Wait (budget, arena)
	done     []Completion
	finals   int   // final completions in done (counted by InFlight)
	freeOps  []*op // recycled op records
	events   []unix.EpollEvent
	arena    []byte // receive memory of RecvMultishot, reset by Wait
	arenaOff int

	wakeBuf  [8]byte // eventfd increment 1, read-only after New
	drainBuf [8]byte

	// syscalls counts the system calls made from the Poller's goroutine
	// (benchmarks; Wake's, from any goroutine, are not counted).
	syscalls uint64
	stale    uint64 // events dropped for a stale fd sequence
}

// New creates a Poller: an epoll instance (epoll_create1 with EPOLL_CLOEXEC)
// and an eventfd (EFD_NONBLOCK|EFD_CLOEXEC) for [Poller.Wake]. Zero fields of
// opts take their defaults; negative ones are an error wrapping unix.EINVAL.
// System call failures are *os.SyscallError naming the call.
func New(opts Options) (*Poller, error) {
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"RecvBufferSize", &opts.RecvBufferSize, DefaultRecvBufferSize},
		{"RecvBuffers", &opts.RecvBuffers, DefaultRecvBuffers},
		{"MaxEvents", &opts.MaxEvents, DefaultMaxEvents},
	} {
		switch {
		case *f.v < 0:
			return nil, fmt.Errorf("epoll: Options.%s %d: %w", f.name, *f.v, unix.EINVAL)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	if opts.RecvBufferSize > maxRW {
		opts.RecvBufferSize = maxRW
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	// Level-triggered: an unread counter keeps being reported, so a wake-up
	// cannot be lost whatever the order of Wake and Wait.
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	p := &Poller{
		epfd:   epfd,
		evfd:   evfd,
		opts:   opts,
		ops:    make(map[uint64]*op),
		events: make([]unix.EpollEvent, opts.MaxEvents),
	}
	binary.NativeEndian.PutUint64(p.wakeBuf[:], 1)
	return p, nil
}

// Close closes the epoll fd and the eventfd. It does not close the fds of
// operations; operations still registered are dropped without a completion
// (cancel them and reap their completions first). Afterwards every method
// returns [ErrClosed]; so does a second Close.
func (p *Poller) Close() error {
	p.wakeMu.Lock()
	if p.closed {
		p.wakeMu.Unlock()
		return ErrClosed
	}
	p.closed = true
	p.wakeMu.Unlock()
	var errs []error
	if err := unix.Close(p.evfd); err != nil {
		errs = append(errs, os.NewSyscallError("close", err))
	}
	if err := unix.Close(p.epfd); err != nil {
		errs = append(errs, os.NewSyscallError("close", err))
	}
	p.fds, p.ops, p.runq, p.later, p.done, p.arena, p.freeOps = fdTable{}, nil, nil, nil, nil, nil, nil
	p.finals, p.sends = 0, 0
	return errors.Join(errs...)
}

// Wake makes a Wait blocked in epoll_wait return (possibly with no
// completion), or the next Wait return promptly. Safe for concurrent use from
// any goroutine. Each call writes the eventfd; callers that wake often should
// dedupe with a flag of their own. Returns [ErrClosed] after Close.
func (p *Poller) Wake() error {
	p.wakeMu.RLock()
	defer p.wakeMu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	var uncounted uint64
	_, err := ignoringEINTR(&uncounted, func() (int, error) { return unix.Write(p.evfd, p.wakeBuf[:]) })
	if err != nil && err != unix.EAGAIN { // EAGAIN: the counter is full, a wake-up is pending anyway
		return os.NewSyscallError("write", err)
	}
	return nil
}

// InFlight returns the number of operations whose final completion has not
// yet been returned by Wait. It is 0 when nothing is left to reap.
func (p *Poller) InFlight() int { return len(p.ops) + p.sends + p.finals }

// AcceptMultishot accepts connections on the listening socket fd. Each
// accepted connection is one completion with Res = the new fd (non-blocking
// and close-on-exec, from accept4(2)) and [FlagMore]. ECONNABORTED is
// retried. Any other error (EMFILE, say) ends the operation with a final
// completion Res = -errno, without FlagMore; the caller re-arms later.
func (p *Poller) AcceptMultishot(fd int, userData uint64) error {
	return p.submit(op{kind: kindAccept, fd: fd, userData: userData}, "accept")
}

// RecvMultishot reads from the stream socket fd until the operation ends.
// Each read is one completion with Res = n > 0, Buf = the bytes (valid until
// the next Wait call, see [Completion.Buf]) and [FlagMore]. End of stream is
// a final completion with Res = 0; an error a final completion with -errno.
func (p *Poller) RecvMultishot(fd int, userData uint64) error {
	return p.submit(op{kind: kindRecvMultishot, fd: fd, userData: userData}, "recv")
}

// Recv reads once from fd into buf (a stream read, or one datagram). The
// completion has Res = n (0 at end of stream) and Buf = buf[:n]. buf belongs
// to the Poller until that completion; do not touch it meanwhile.
func (p *Poller) Recv(fd int, buf []byte, userData uint64) error {
	return p.submit(op{kind: kindRecv, fd: fd, userData: userData, buf: buf}, "recv")
}

// RecvFrom receives one datagram from fd into buf. The completion has
// Res = n, Buf = buf[:n] and From = the sender's address. buf belongs to the
// Poller until that completion.
func (p *Poller) RecvFrom(fd int, buf []byte, userData uint64) error {
	return p.submit(op{kind: kindRecvFrom, fd: fd, userData: userData, buf: buf}, "recvfrom")
}

// Send writes bufs to fd with one sendmsg(2) (MSG_NOSIGNAL) once fd is
// writable. Its one completion has Res = bytes written, which may be fewer
// than offered (as with io_uring send): the caller submits the rest. At most
// 1024 buffers (IOV_MAX) are written per Send. The slices belong to the
// Poller until the completion. [Poller.Cancel] does not find a send by its
// token; [Poller.CancelFD] ends it.
func (p *Poller) Send(fd int, bufs [][]byte, userData uint64) error {
	return p.submit(op{kind: kindSend, fd: fd, userData: userData, bufs: bufs}, "send")
}

// Read reads once from fd (a pipe, a FIFO, any descriptor read(2) and
// epoll take) into buf with read(2) once fd is readable: Res = n, Buf =
// buf[:n], 0 at end of file (a pipe whose writers are all gone). buf
// belongs to the Poller until the completion. It is Recv for descriptors
// that are not sockets, under its own name so both engines offer it.
//
// Errors: as Recv, and one wrapping unix.EINVAL for an empty buf.
func (p *Poller) Read(fd int, buf []byte, userData uint64) error {
	if len(buf) == 0 {
		return opError("read", fd, unix.EINVAL)
	}
	return p.submit(op{kind: kindRecv, fd: fd, userData: userData, buf: buf}, "read")
}

// Write writes bufs to fd (a pipe, a FIFO, any descriptor write(2) and
// epoll take) with one writev(2) once fd is writable: Res = bytes written,
// possibly fewer than offered (submit the rest). At most 1024 buffers
// (IOV_MAX) are written per Write. A pipe whose readers are all gone fails
// with -EPIPE; the kernel also raises SIGPIPE, which the Go runtime ignores
// for descriptors other than 1 and 2 unless the program asked for it with
// signal.Notify (sockets take Send, whose MSG_NOSIGNAL spares them the
// signal). The slices belong to the Poller until the completion.
func (p *Poller) Write(fd int, bufs [][]byte, userData uint64) error {
	return p.submit(op{kind: kindWrite, fd: fd, userData: userData, bufs: bufs}, "write")
}

// Release forgets fd without closing it, for a caller that hands it on: its
// record is dropped and fd removed from the epoll set once its last
// operation ends (at once when it has none), even after a SpliceIn or
// SpliceOut, which otherwise keep them until CloseFD.
func (p *Poller) Release(fd int) {
	if p.closed {
		return
	}
	if fs := p.fds.get(fd); fs != nil {
		fs.sticky = false
		if len(fs.readers) == 0 && len(fs.writers) == 0 {
			p.dropFD(fs)
		}
	}
}

// SendTo sends b as one datagram to the address to (nil: the connected peer)
// with sendmsg(2). The completion has Res = bytes sent. b belongs to the
// Poller until the completion.
func (p *Poller) SendTo(fd int, b []byte, to unix.Sockaddr, userData uint64) error {
	return p.submit(op{kind: kindSendTo, fd: fd, userData: userData, buf: b, sa: to}, "sendto")
}

// Connect connects the non-blocking socket fd to sa: connect(2), and on
// EINPROGRESS waiting for writability and reading SO_ERROR. The completion
// has Res = 0 on success or -errno (for example -ECONNREFUSED).
func (p *Poller) Connect(fd int, sa unix.Sockaddr, userData uint64) error {
	if sa == nil {
		return opError("connect", fd, unix.EINVAL)
	}
	return p.submit(op{kind: kindConnect, fd: fd, userData: userData, sa: sa}, "connect")
}

// Splice sends up to n bytes of the file inFD, starting at offset (offset < 0:
// from inFD's file position, which advances), to the socket outFD with
// sendfile(2) once outFD is writable. The completion has Res = bytes sent,
// possibly fewer than n: the caller submits the rest. The operation waits on
// outFD (CancelFD(outFD) cancels it).
func (p *Poller) Splice(outFD, inFD int, offset int64, n int, userData uint64) error {
	if inFD < 0 || n < 0 {
		return opError("splice", inFD, unix.EINVAL)
	}
	return p.submit(op{kind: kindSplice, fd: outFD, userData: userData, inFD: inFD, off: offset, n: min(n, maxRW)}, "splice")
}

// SpliceIn moves up to n bytes that the stream socket fd has received into
// the pipe pipeW with splice(2), once fd is readable: Res = the bytes moved,
// 0 at the peer's EOF. The pipe must have room for n bytes. It waits on fd
// (CancelFD(fd) cancels it). Once fd has had a SpliceIn or SpliceOut, it
// stays in the epoll set after its last operation ends, until CloseFD: close
// it with CloseFD, not close(2).
//
// Errors: as Recv, and one wrapping unix.EINVAL for a negative pipeW or an
// n below 1.
func (p *Poller) SpliceIn(fd, pipeW, n int, userData uint64) error {
	if pipeW < 0 || n < 1 {
		return opError("splice in", fd, unix.EINVAL)
	}
	return p.submit(op{kind: kindSpliceIn, fd: fd, userData: userData, inFD: pipeW, n: min(n, maxRW)}, "splice in")
}

// SpliceOut moves up to n bytes from the pipe pipeR, which holds at least
// n, to the stream socket fd with splice(2), once fd is writable: Res = the
// bytes moved, possibly fewer than n (submit the rest). It waits on fd.
//
// Errors as SpliceIn.
func (p *Poller) SpliceOut(fd, pipeR, n int, userData uint64) error {
	if pipeR < 0 || n < 1 {
		return opError("splice out", fd, unix.EINVAL)
	}
	return p.submit(op{kind: kindSpliceOut, fd: fd, userData: userData, inFD: pipeR, n: min(n, maxRW)}, "splice out")
}

// Poll waits, once, until fd is ready for mask (unix.POLLIN or
// unix.POLLOUT, with any other poll bits): Res = the events poll(2)
// reports ready, POLLERR and POLLHUP included. It works on any fd epoll
// takes: a socket, a pipe, a pidfd (readable once its process has exited),
// an inotify or an eventfd; for one it refuses (a regular file), the
// completion is -EPERM. CancelFD(fd) cancels it.
//
// Errors: as Recv, and one wrapping unix.EINVAL for a mask with neither
// POLLIN nor POLLOUT.
func (p *Poller) Poll(fd int, mask uint32, userData uint64) error {
	var k opKind
	switch {
	case mask&unix.POLLIN != 0:
		k = kindPollIn
	case mask&unix.POLLOUT != 0:
		k = kindPollOut
	default:
		return opError("poll", fd, unix.EINVAL)
	}
	return p.submit(op{kind: k, fd: fd, userData: userData, n: int(mask)}, "poll")
}

// Cancel ends the operation submitted with userData: its final completion,
// Res = -ECANCELED, is delivered by the next Wait. Sends (Send, SendTo) are
// not found by their token, as on the io_uring engine, which keeps the send
// path free of any index: cancel them with [Poller.CancelFD]. Returns an
// error wrapping unix.ENOENT when no such operation is in flight (including
// one whose final completion is produced but not yet delivered, and a send),
// and one wrapping unix.EINVAL for a userData at or above [MsgTokens], which
// no operation can have.
func (p *Poller) Cancel(userData uint64) error {
	if p.closed {
		return ErrClosed
	}
	if userData >= MsgTokens {
		return fmt.Errorf("epoll: cancel user data %#x: reserved (>= MsgTokens): %w", userData, unix.EINVAL)
	}
	o := p.ops[userData]
	if o == nil {
		return fmt.Errorf("epoll: cancel user data %#x: %w", userData, unix.ENOENT)
	}
	p.finish(o, -int32(unix.ECANCELED))
	return nil
}

// CancelFD cancels every operation on fd, in submission order; each ends with
// a final completion Res = -ECANCELED. Returns how many were cancelled, or an
// error wrapping unix.ENOENT when fd has none (io_uring's answer).
func (p *Poller) CancelFD(fd int) (int, error) {
	if p.closed {
		return 0, ErrClosed
	}
	fs := p.fds.get(fd)
	if fs == nil {
		return 0, opError("cancel", fd, unix.ENOENT)
	}
	all := slices.Concat(fs.readers, fs.writers)
	slices.SortFunc(all, func(a, b *op) int { return cmp.Compare(a.seq, b.seq) })
	for _, o := range all {
		p.finish(o, -int32(unix.ECANCELED))
	}
	return len(all), nil
}

// CloseFD removes fd from the epoll set and closes it with close(2); the
// completion, delivered by the next Wait, has Res = 0 or -errno. While
// operations are registered on fd it refuses with an error wrapping
// unix.EBUSY and does nothing: cancel them and reap their completions first.
func (p *Poller) CloseFD(fd int, userData uint64) error {
	if err := p.checkSubmit("close", fd, userData, true); err != nil {
		return err
	}
	if fs := p.fds.get(fd); fs != nil {
		if len(fs.readers) > 0 || len(fs.writers) > 0 {
			return opError("close", fd, unix.EBUSY)
		}
		p.dropFD(fs) // a sticky record
	}
	// No EINTR retry: Linux releases the fd even when close reports EINTR.
	p.syscalls++
	res := int32(0)
	if err := unix.Close(fd); err != nil && err != unix.EINTR {
		res = errnoRes(err)
	}
	p.post(Completion{UserData: userData, Res: res})
	return nil
}

// Wait runs queued operations, waits up to timeout for readiness, performs the
// ready I/O and writes completions to dst; it returns how many it wrote.
// timeout < 0 waits until something completes or [Poller.Wake] is called;
// 0 polls without blocking; a positive timeout is rounded up to whole
// milliseconds, so Wait never returns for lack of events before it has
// elapsed. Wait does not block when completions are already pending.
//
// Completions that do not fit in dst are kept, in order, for the next Wait.
// A wake-up is consumed internally and produces no completion, so Wait may
// return 0. Buf slices from a previous Wait become invalid when Wait is
// called. An empty dst is an error wrapping unix.EINVAL; epoll_wait failures
// are *os.SyscallError.
func (p *Poller) Wait(timeout time.Duration, dst []Completion) (int, error) {
	if p.closed {
		return 0, ErrClosed
	}
	if len(dst) == 0 {
		return 0, fmt.Errorf("epoll: wait with empty dst: %w", unix.EINVAL)
	}
	// Step 1: leftovers first. The arena may back some of them, so no I/O
	// (and no arena reset) until they are all delivered.
	if len(p.done) > 0 {
		return p.deliver(dst), nil
	}
	p.waitSeq++
	p.arenaOff = 0
	if len(p.later) > 0 {
		p.runq = append(p.runq, p.later...)
		clear(p.later)
		p.later = p.later[:0]
	}
	limit := len(dst)

	// Step 2: optimistic attempts and carried-over work.
	p.runQueue(limit)

	var deadline time.Duration // since clockBase: one clock read, where time.Now takes two
	if timeout > 0 {
		deadline = time.Since(clockBase) + timeout
	}
	first := true
	for len(p.done) < limit {
		block := len(p.done) == 0 && len(p.later) == 0 && timeout != 0
		// Step 3: poll.
		n, err := ignoringEINTR(&p.syscalls, func() (int, error) {
			ms := 0
			if block {
				// The first wait is the whole timeout, without a second
				// clock read; an interrupted or repeated one, what is left.
				ms = waitMillis(timeout, deadline, first)
				first = false
			}
			return unix.EpollWait(p.epfd, p.events, ms)
		})
		if err != nil {
			return p.deliver(dst), os.NewSyscallError("epoll_wait", err)
		}
		woken := p.handleEvents(p.events[:n])
		// Step 4: ready I/O.
		p.runQueue(limit)
		if !block || woken || len(p.done) > 0 || len(p.later) > 0 {
			break
		}
		// Only readiness without completions (a spurious EAGAIN, an event
		// for a direction nobody waits on): keep waiting out the timeout.
		if timeout > 0 && time.Since(clockBase) >= deadline {
			break
		}
	}
	return p.deliver(dst), nil
}

// waitMillis converts the time left until deadline (timeout < 0: forever)
// to an epoll_wait timeout, rounding up so a deadline never fires early.
// whole: the wait starts now, so all of timeout is left.
func waitMillis(timeout, deadline time.Duration, whole bool) int {
	if timeout < 0 {
		return -1
	}
	left := timeout
	if !whole {
		left = deadline - time.Since(clockBase)
	}
	if left <= 0 {
		return 0
	}
	ms := (left + time.Millisecond - 1) / time.Millisecond
	return int(min(ms, math.MaxInt32))
}

// clockBase is the origin of Wait's deadlines.
var clockBase = time.Now()

// deliver moves up to len(dst) pending completions to dst, keeping the rest
// in order.
func (p *Poller) deliver(dst []Completion) int {
	n := copy(dst, p.done)
	for i := range n {
		if !dst[i].More() {
			p.finals--
		}
	}
	rest := copy(p.done, p.done[n:])
	clear(p.done[rest:]) // drop Buf and From references
	p.done = p.done[:rest]
	return n
}

// handleEvents records the readiness reported by epoll_wait and queues the
// operations it unblocks. It reports whether the eventfd was signalled.
func (p *Poller) handleEvents(events []unix.EpollEvent) (woken bool) {
	for i := range events {
		ev := &events[i]
		fd := int(ev.Fd)
		if fd == p.evfd {
			// Consume the wake-up so the level-triggered eventfd goes quiet.
			_, _ = ignoringEINTR(&p.syscalls, func() (int, error) { return unix.Read(p.evfd, p.drainBuf[:]) })
			woken = true
			continue
		}
		fs := p.fds.get(fd)
		if fs == nil || !fs.registered || fs.seq != ev.Pad {
			p.stale++
			continue
		}
		// Errors and hang-ups wake both directions: the system call reports them.
		if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			// The peer's FIN (or an error) is queued behind any data: a
			// short read no longer means the queue is empty.
			fs.hup = true
		}
		if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			fs.readable = true
			for _, o := range fs.readers {
				p.enqueue(o)
			}
		}
		if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			fs.writable = true
			for _, o := range fs.writers {
				p.enqueue(o)
			}
		}
	}
	return woken
}

// fdTable maps fds to their records: a slice indexed by fd for the fds
// below fdTableLow (a lookup per readiness event and several per operation,
// where a map's hashing showed in profiles), a map for any fd above.
type fdTable struct {
	low  []*fdState
	high map[int]*fdState
}

// fdTableLow bounds the slice of an fdTable: 8 MiB of pointers at most.
const fdTableLow = 1 << 20

func (t *fdTable) get(fd int) *fdState {
	if uint(fd) < uint(len(t.low)) {
		return t.low[fd]
	}
	if fd < fdTableLow {
		return nil
	}
	return t.high[fd]
}

func (t *fdTable) set(fd int, fs *fdState) {
	if fd >= fdTableLow {
		if t.high == nil {
			t.high = make(map[int]*fdState)
		}
		t.high[fd] = fs
		return
	}
	if fd >= len(t.low) {
		t.low = append(t.low, make([]*fdState, max(fd+1, 2*len(t.low), 64)-len(t.low))...)
	}
	t.low[fd] = fs
}

func (t *fdTable) del(fd int) {
	if fd >= fdTableLow {
		delete(t.high, fd)
	} else if fd < len(t.low) {
		t.low[fd] = nil
	}
}

// checkSubmit validates a submission common to all operations; one that
// Cancel can name (indexed) must not reuse the token of another in flight.
func (p *Poller) checkSubmit(name string, fd int, userData uint64, indexed bool) error {
	if p.closed {
		return ErrClosed
	}
	if userData >= MsgTokens {
		return reservedToken(name, fd, userData)
	}
	if fd < 0 || fd == p.epfd || fd == p.evfd {
		return opError(name, fd, unix.EBADF)
	}
	if indexed {
		if _, dup := p.ops[userData]; dup {
			return fmt.Errorf("epoll: %s fd %d: user data %#x already in flight: %w", name, fd, userData, unix.EEXIST)
		}
	}
	return nil
}

// submit registers o with its fd record and queues its first attempt unless
// the fd is known not to be ready (then an edge will queue it).
func (p *Poller) submit(spec op, name string) error {
	if err := p.checkSubmit(name, spec.fd, spec.userData, spec.kind.indexed()); err != nil {
		return err
	}
	var o *op
	if n := len(p.freeOps); n > 0 {
		o = p.freeOps[n-1]
		p.freeOps[n-1] = nil
		p.freeOps = p.freeOps[:n-1]
	} else {
		o = new(op)
	}
	// Send's slice of slices is copied (into the record's own, reused), so
	// the caller may reuse it at once; the byte slices stay the caller's
	// until the completion, as with the io_uring engine.
	bufs := o.bufs[:0]
	*o = spec
	if spec.bufs != nil {
		o.bufs = append(bufs, spec.bufs...)
	}
	fs := p.fds.get(o.fd)
	if fs == nil {
		p.nextFD++
		fs = &fdState{fd: o.fd, seq: p.nextFD}
		p.fds.set(o.fd, fs)
	}
	p.nextOp++
	o.seq = p.nextOp
	if o.kind.indexed() {
		p.ops[o.userData] = o
	} else {
		p.sends++
	}
	if o.kind == kindSpliceIn || o.kind == kindSpliceOut {
		fs.sticky = true
	}
	ready := fs.readable
	if o.kind.writes() {
		fs.writers = append(fs.writers, o)
		ready = fs.writable
	} else {
		fs.readers = append(fs.readers, o)
	}
	// connect(2) itself must run whatever the cached readiness says.
	if !fs.registered || ready || o.kind == kindConnect {
		p.enqueue(o)
	}
	return nil
}

// enqueue appends o to the run queue unless it is queued already.
func (p *Poller) enqueue(o *op) {
	if !o.queued && !o.ended {
		o.queued = true
		p.runq = append(p.runq, o)
	}
}

// carryOver moves o to the next Wait's run queue (budget spent or arena full).
func (p *Poller) carryOver(o *op) {
	o.queued = true
	p.later = append(p.later, o)
}

// runQueue attempts queued operations in order until the queue is empty or
// limit completions are pending; what is left stays queued for the next Wait.
// Attempts may append to the queue (a multishot op requeues itself behind the
// others after each completion).
func (p *Poller) runQueue(limit int) {
	i := 0
	for ; i < len(p.runq) && len(p.done) < limit; i++ {
		o := p.runq[i]
		p.runq[i] = nil
		o.queued = false
		if !o.ended {
			p.attempt(o)
		}
	}
	rest := copy(p.runq, p.runq[i:])
	clear(p.runq[rest:])
	p.runq = p.runq[:rest]
}

// post queues a completion for delivery.
func (p *Poller) post(c Completion) {
	if c.Flags&FlagMore == 0 {
		p.finals++
	}
	p.done = append(p.done, c)
}

// finish ends o with a final completion of result res.
func (p *Poller) finish(o *op, res int32) {
	p.finishWith(o, Completion{UserData: o.userData, Res: res})
}

// finishWith ends o with the final completion c: o leaves its fd record
// (which is dropped, and its fd removed from the epoll set, once empty).
func (p *Poller) finishWith(o *op, c Completion) {
	o.ended = true
	if o.kind.indexed() {
		delete(p.ops, o.userData)
	} else {
		p.sends--
	}
	if fs := p.fds.get(o.fd); fs != nil {
		fs.readers = removeOp(fs.readers, o)
		fs.writers = removeOp(fs.writers, o)
		if len(fs.readers) == 0 && len(fs.writers) == 0 && !fs.sticky {
			p.dropFD(fs)
		}
	}
	c.Flags &^= FlagMore
	p.post(c)
	// Recycle the record unless a queue still points at it (a cancelled op
	// waiting in runq or later, which skips it by its ended flag).
	if !o.queued && len(p.freeOps) < maxFreeOps {
		bufs := o.bufs
		clear(bufs)
		*o = op{bufs: bufs[:0]} // drop buffer references, keep the array
		p.freeOps = append(p.freeOps, o)
	}
}

// dropFD deletes an fd record without operations and unregisters the fd, so
// that a later close(2) by the caller and reuse of the number cannot leave a
// stale registration behind.
func (p *Poller) dropFD(fs *fdState) {
	p.fds.del(fs.fd)
	if fs.registered {
		fs.registered = false
		// ENOENT/EBADF: the caller closed the fd already; nothing to undo.
		_, _ = ignoringEINTR(&p.syscalls, func() (int, error) {
			return 0, unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fs.fd, nil)
		})
	}
}

// wouldBlock handles EAGAIN from o's system call: the cached readiness of
// its direction is cleared and the fd is registered if it is not yet, so the
// next edge queues o again. If the fd cannot be registered (a regular file,
// say), o ends with that error.
func (p *Poller) wouldBlock(o *op) {
	fs := p.fds.get(o.fd)
	if o.kind.writes() {
		fs.writable = false
	} else {
		fs.readable = false
	}
	if fs.registered {
		return
	}
	ev := unix.EpollEvent{Events: epollInterest, Fd: int32(fs.fd), Pad: fs.seq}
	_, err := ignoringEINTR(&p.syscalls, func() (int, error) {
		return 0, unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fs.fd, &ev)
	})
	if err != nil {
		p.finish(o, errnoRes(err))
		return
	}
	// EPOLL_CTL_ADD reports the current readiness as a first edge, so data
	// that arrived since the EAGAIN is not missed.
	fs.registered = true
}

// removeOp deletes o from list, keeping the order.
func removeOp(list []*op, o *op) []*op {
	if i := slices.Index(list, o); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	return list
}

// reservedToken is the error for a user data value at or above MsgTokens.
func reservedToken(name string, fd int, userData uint64) error {
	return fmt.Errorf("epoll: %s fd %d: user data %#x reserved (>= MsgTokens): %w", name, fd, userData, unix.EINVAL)
}

// opError wraps err with the operation and fd.
func opError(name string, fd int, err error) error {
	return fmt.Errorf("epoll: %s fd %d: %w", name, fd, err)
}
