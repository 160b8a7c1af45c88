package loop

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"time"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

var _ backend = (*uringBackend)(nil)

// Reserved user data values (STYLE §5): tokenIgnore marks completions nobody
// waits for (cancels, linked-timeout echoes); tokenWake is the backend's own
// read on its eventfd. Tokens with the top byte tokenAux (tokenWake aside)
// are the backend's own halves of linked operations (see auxOp); the loop's
// tokens keep their kind far below 0xFF (socket_linux.go).
const (
	tokenIgnore uint64 = 0
	tokenWake   uint64 = math.MaxUint64
	tokenAux    uint64 = 0xFF << 56
	tokenAuxSeq uint64 = 1<<56 - 2 // aux sequence numbers wrap below tokenWake
)

// ringEntries is the submission queue size; the completion queue is four
// times larger (uring.New's default).
const ringEntries = 512

// requiredOps are the operations the loop submits; Auto falls back to epoll
// when the probe lacks one.
var requiredOps = []uring.Op{
	uring.OpRead, uring.OpAsyncCancel, uring.OpLinkTimeout, uring.OpAccept,
	uring.OpConnect, uring.OpRecv, uring.OpSend, uring.OpSendmsg, uring.OpClose,
	uring.OpShutdown, uring.OpSplice, uring.OpTimeoutRemove,
	// IORING_OP_SEND_ZC arrived in Linux 6.0 with multishot receive; its
	// presence is how the probe tells us IORING_RECV_MULTISHOT is there.
	uring.OpSendZC,
}

// uringBackend adapts uring.Ring to the backend contract.
type uringBackend struct {
	r    *uring.Ring
	cqes []uring.CQE
	comp completion

	efd   int      // eventfd written by wake
	efbuf *[8]byte // target of the in-flight eventfd read, pinned
	pin   runtime.Pinner
	armed bool // the eventfd read is in flight
	ops   int  // operations in flight, the eventfd read included

	// br is the loop's one provided-buffer ring: every multishot receive
	// picks its buffers from it, and a buffer goes back right after the
	// completion that carried it has been dispatched.
	br       *uring.BufRing
	recycled bool // buffers were Added since the last Advance
	grown    bool // the ring grew during this poll (at most once per poll)

	// polled are the operations the ring has no opcode for that the loop can
	// use (recvfrom with the sender's address; sendfile for a file that cannot
	// splice): a poll SQE under the operation's token, then the non-blocking
	// system call on readiness.
	polled map[uint64]*polledOp

	// aux are the backend's own SQEs linked to a loop operation (the
	// file-to-pipe half of a sendFile, a connect's LINK_TIMEOUT and its
	// updates), by their aux token. Each is counted in ops until its CQE, so
	// close waits for them; the loop never sees them.
	aux    map[uint64]*auxOp
	auxSeq uint64
	// splices are the sendFile operations in flight, by the loop's token.
	splices map[uint64]*spliceOp
	// pipes are idle, empty pipes for splices (at most maxIdlePipes).
	pipes []*splicePipe
	// conns maps the token of a connect bounded by a LINK_TIMEOUT to the aux
	// token of that timeout, until the connect's CQE.
	conns   map[uint64]uint64
	closing bool // close is reaping: no new SQEs for splices

	// freshFD[slot] is 1 + the fd of the multishot receive armed for the
	// loop's socket slot when its first CQE is not reaped yet, else 0 (see
	// checkFreshRecv): indexed by slot rather than a map, so a connection
	// that stays idle costs 4 bytes here, not a map entry. lateCancels are
	// the receives checkFreshRecv could not cancel at once (the SQ full and
	// its submit failing), retried at the next poll; freshCancels counts
	// the receives it cancelled.
	freshFD      []int32
	lateCancels  []uint64
	freshCancels int
	pfd          [1]unix.PollFd // checkFreshRecv's poll(2) argument

	feat uringFeatures // Options.URing*: backend_uring_features_linux.go
}

// bufGroup is the buffer group ID of the loop's provided-buffer ring.
const bufGroup = 0

// polledOp is an operation emulated with POLL_ADD plus a system call.
type polledOp struct {
	sendfile bool
	fd       int
	buf      []byte // recvfrom target
	inFD     int    // sendfile source
	off      int64
	n        int
}

// newURingBackend sets up a ring and checks that the kernel has what the
// loop needs. It must run on the loop's locked OS thread (SINGLE_ISSUER).
func newURingBackend(cfg backendConfig) (*uringBackend, error) {
	entries := uint32(ringEntries)
	if cfg.ringEntries > 0 {
		entries = uint32(cfg.ringEntries)
	}
	r, err := openRing(entries, cfg.setup)
	if err != nil {
		return nil, err
	}
	if err := checkRing(r); err != nil {
		return nil, errors.Join(err, r.Close())
	}
	// A blocking eventfd: io_uring then waits for it by polling instead of
	// failing a read with EAGAIN.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("eventfd: %w", err), r.Close())
	}
	size, n := cfg.recvBufferSize, cfg.recvBuffers
	if size <= 0 {
		size = DefaultRecvBufferSize
	}
	if n <= 0 {
		n = DefaultRecvBuffers
	}
	// The ring has room for recvBuffersMax buffers but starts with n: it
	// grows on ENOBUFS (growRecvBuffers), and an untouched buffer costs no
	// resident memory.
	capacity := max(cfg.recvBuffersMax, n)
	br, err := r.NewBufRingProvided(bufGroup, uint16(capacity), size, uint16(n))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("loop: buffer ring: %w", err), unix.Close(efd), r.Close())
	}
	b := &uringBackend{r: r, cqes: make([]uring.CQE, 256), efd: efd, efbuf: new([8]byte),
		br: br, polled: make(map[uint64]*polledOp), aux: make(map[uint64]*auxOp),
		splices: make(map[uint64]*spliceOp), conns: make(map[uint64]uint64)}
	b.feat = newURingFeatures(cfg, r)
	// Memory: efbuf's address goes into every eventfd READ SQE; pinned until
	// close has reaped the last read.
	b.pin.Pin(b.efbuf)
	return b, nil
}

// checkRing returns a *uring.FeatureError naming the first missing feature.
func checkRing(r *uring.Ring) error {
	if !r.Features().Has(uring.FeatExtArg) {
		return &uring.FeatureError{Feature: "IORING_FEAT_EXT_ARG"}
	}
	p, err := r.Probe()
	if err != nil {
		return err
	}
	for _, op := range requiredOps {
		if !p.Supported(op) {
			return &uring.FeatureError{Feature: op.String()}
		}
	}
	br, err := r.NewBufRing(0, 2, 64)
	if err != nil {
		return fmt.Errorf("%w: %w", &uring.FeatureError{Feature: "IORING_REGISTER_PBUF_RING"}, err)
	}
	return br.Close()
}

func (b *uringBackend) kind() Backend { return URing }

func (b *uringBackend) wake() error {
	var one = [8]byte{1}
	_, err := unix.Write(b.efd, one[:])
	return err
}

func (b *uringBackend) inFlight() int { return b.ops }

// armWake queues the read on the eventfd that wake completes.
func (b *uringBackend) armWake() bool {
	if b.armed {
		return true
	}
	s, ok := b.r.GetSQE()
	if !ok {
		return false
	}
	s.PrepRead(b.efd, b.efbuf[:], 0)
	s.SetUserData(tokenWake)
	b.armed = true
	b.ops++
	return true
}

func (b *uringBackend) poll(timeout time.Duration, dispatch func(*completion)) error {
	if len(b.lateCancels) > 0 {
		late := b.lateCancels
		b.lateCancels = nil
		for _, tok := range late {
			b.cancelFresh(tok)
		}
	}
	if !b.armWake() {
		// The SQ is full: submit what is queued without waiting, then arm.
		if _, err := b.r.Submit(); err != nil {
			return err
		}
		b.armWake()
	}
	if _, err := b.r.SubmitAndWait(1, timeout); err != nil {
		return err
	}
	b.grown = false
	b.reap(dispatch)
	return nil
}

// growRecvBuffers doubles the buffers of the provided-buffer ring, once per
// poll, up to its capacity (Options.RecvBuffersMax): called when a receive
// ended with ENOBUFS. The receive itself is re-armed by the loop; the bytes
// it could not take wait in the socket, so nothing is lost or reordered.
func (b *uringBackend) growRecvBuffers() {
	if b.grown || b.br == nil {
		return
	}
	b.grown = true
	b.br.Grow(b.br.Provided())
}

// reap copies out and handles every completion available.
func (b *uringBackend) reap(dispatch func(*completion)) {
	for {
		n := b.r.PeekCQEs(b.cqes)
		for i := range b.cqes[:n] {
			c := &b.cqes[i]
			switch c.UserData {
			case tokenIgnore:
				continue
			case tokenWake:
				b.armed = false
				b.ops--
				continue
			}
			if b.reapHandoff(c, dispatch) { // handoff_uring_linux.go
				continue
			}
			if c.UserData&tokenAux == tokenAux {
				b.ops--
				b.onAux(c, dispatch)
				continue
			}
			if op := b.splices[c.UserData]; op != nil {
				b.ops--
				b.onSpliceOut(op, c.Res, dispatch)
				continue
			}
			if _, ok := b.conns[c.UserData]; ok {
				delete(b.conns, c.UserData)
				// Nothing but the linked timeout cancels a connect the loop
				// still waits for (the loop's own cancels come after it
				// closed the socket, when it ignores the result).
				if c.Res == -int32(unix.ECANCELED) {
					c.Res = -int32(unix.ETIME)
				}
			}
			if p := b.polled[c.UserData]; p != nil {
				if !b.runPolled(c, p, dispatch) {
					continue
				}
				b.ops--
				continue
			}
			if !c.More() {
				b.ops--
			}
			if k, slot, _ := splitToken(c.UserData); k == opRecv && int(slot) < len(b.freshFD) && b.freshFD[slot] != 0 {
				fd := int(b.freshFD[slot]) - 1
				b.freshFD[slot] = 0
				if c.More() && !b.closing {
					b.checkFreshRecv(fd, c.UserData)
				}
			}
			if c.Res == -int32(unix.ENOBUFS) {
				b.growRecvBuffers()
			}
			b.comp = completion{tok: c.UserData, res: c.Res, flags: c.Flags}
			id, hasBuf := c.BufferID()
			if hasBuf && c.Res > 0 {
				b.comp.buf = b.br.Buffer(id, int(c.Res))
			}
			if dispatch != nil {
				dispatch(&b.comp)
			}
			if hasBuf {
				// The slice handed to dispatch is dead now: give the buffer
				// back (published once per batch, by Advance below).
				b.br.Add(id)
				b.recycled = true
			}
		}
		b.comp = completion{}
		if b.recycled {
			b.br.Advance()
			b.recycled = false
		}
		if n < len(b.cqes) {
			return
		}
	}
}

// runPolled handles the poll completion of an emulated operation: it runs the
// system call and dispatches the result, or re-arms the poll on EAGAIN. It
// reports whether the operation is over.
func (b *uringBackend) runPolled(c *uring.CQE, p *polledOp, dispatch func(*completion)) bool {
	b.comp = completion{tok: c.UserData, res: c.Res}
	if c.Res >= 0 {
		var err error
		if p.sendfile {
			off := p.off
			var n int
			n, err = unix.Sendfile(p.fd, p.inFD, &off, p.n)
			b.comp.res = int32(n)
		} else {
			var n int
			var from unix.Sockaddr
			n, from, err = unix.Recvfrom(p.fd, p.buf, unix.MSG_DONTWAIT)
			if err == nil {
				b.comp.res = int32(n)
				b.comp.buf = p.buf[:n]
				b.comp.from = from
			}
		}
		if err == unix.EAGAIN || err == unix.EINTR {
			if b.armPoll(c.UserData, p) == nil {
				return false
			}
		}
		if errno, ok := err.(unix.Errno); ok {
			b.comp.res = -int32(errno)
		}
	}
	delete(b.polled, c.UserData)
	if dispatch != nil {
		dispatch(&b.comp)
	}
	b.comp = completion{}
	return true
}

// armPoll queues the one-shot poll behind an emulated operation.
func (b *uringBackend) armPoll(tok uint64, p *polledOp) error {
	s, err := b.sqe()
	if err != nil {
		return err
	}
	mask := uint32(unix.POLLIN)
	if p.sendfile {
		mask = unix.POLLOUT
	}
	s.PrepPollAdd(p.fd, mask)
	s.SetUserData(tok)
	return nil
}

// sqe returns a free SQE, submitting what is queued when the SQ is full.
func (b *uringBackend) sqe() (*uring.SQE, error) {
	if err := b.submitPerOp(); err != nil {
		return nil, err
	}
	if s, ok := b.r.GetSQE(); ok {
		return s, nil
	}
	if _, err := b.r.Submit(); err != nil {
		return nil, err
	}
	if s, ok := b.r.GetSQE(); ok {
		return s, nil
	}
	return nil, fmt.Errorf("loop: io_uring submission queue full: %w", unix.EBUSY)
}

func (b *uringBackend) acceptMultishot(fd int, tok uint64) error {
	s, err := b.sqe()
	if err != nil {
		return err
	}
	s.PrepAcceptMultishot(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	s.SetUserData(tok)
	b.ops++
	return nil
}

func (b *uringBackend) recvMultishot(fd int, tok uint64) error {
	s, err := b.sqe()
	if err != nil {
		return err
	}
	s.PrepRecvMultishot(fd, 0)
	s.SetBufGroup(b.br.Group())
	if testHookRecvPollFirst {
		s.SetIOPrio(uring.RecvsendPollFirst)
	}
	s.SetUserData(tok)
	b.ops++
	// One receive at a time per socket slot: the loop arms the next only
	// after the final CQE of the last.
	_, slot, _ := splitToken(tok)
	if int(slot) >= len(b.freshFD) {
		b.freshFD = append(b.freshFD, make([]int32, int(slot)+1-len(b.freshFD))...)
	}
	b.freshFD[slot] = int32(fd) + 1
	return nil
}

// testHookRecvPollFirst, when set by a test, submits multishot receives with
// IORING_RECVSEND_POLL_FIRST: the kernel arms the poll without trying the
// receive first, which opens the window checkFreshRecv closes as wide as it
// goes, so a peer that sends and resets before the receive is armed strands
// it every time.
var testHookRecvPollFirst bool

// checkFreshRecv works around a kernel race that strands a multishot
// receive for ever (seen on Linux 6.18.44 with TCP resets and AF_UNIX
// closes; liburing issue #1549 reports the AF_UNIX EOF case). When a peer's
// last bytes and its reset or close both land between the receive's first
// attempt, at submission, and the arming of its poll, the arming finds the
// socket readable and hung up at once and queues one pass of task work. That
// pass receives the bytes, posts them with IORING_CQE_F_MORE and, the socket
// reporting nothing more queued, waits for the next wake-up; but the peer's
// last one was spent on the arming. No final CQE ever comes, the ring's
// fdinfo lists the RECV for good, and the loop, waiting for that CQE, never
// closes the fd nor calls Unbind. (After a TCP FIN the kernel does go on:
// tcp_inq_hint reports a byte more once SOCK_DONE is set, so the next
// attempt reads the EOF. After a reset, or an AF_UNIX close or shutdown,
// nothing does. A receive armed before the peer goes is woken by it as
// usual.) The kernel's tracepoints show the sequence: io_uring_submit_req,
// io_uring_task_add with mask IN|ERR|HUP|RDHUP, io_uring_poll_arm, one
// io_uring_complete with the bytes and F_MORE, then nothing. The uring
// package's TestRecvMultishotArmedAfterDataAndReset reproduces it.
//
// The arming happens inside the io_uring_enter that submits the receive, and
// its first CQE is reaped only after that enter returned, so a poll(2) at
// that CQE sees any peer the race concerns as gone (POLLHUP, POLLERR or
// POLLRDHUP). Then the receive is cancelled; its final CQE (-ECANCELED, or
// its own result if that came first) makes the loop arm a new one, whose
// first attempt reads what is left, in order: bytes, then the EOF or the
// error. It costs one poll(2) per receive armed, not per CQE. A peer
// found alive cannot be lost this way: whatever it does next wakes the
// armed receive.
func (b *uringBackend) checkFreshRecv(fd int, tok uint64) {
	b.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLRDHUP}
	n, err := unix.Poll(b.pfd[:], 0)
	if err == nil && (n == 0 || b.pfd[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLRDHUP) == 0) {
		return
	}
	// Gone, or the poll failed (EINTR, say): a new receive is always safe.
	b.cancelFresh(tok)
}

// cancelFresh cancels the receive tok for checkFreshRecv, or queues the
// cancel for the next poll when no SQE can be had now.
func (b *uringBackend) cancelFresh(tok uint64) {
	s, err := b.sqe()
	if err != nil {
		b.lateCancels = append(b.lateCancels, tok)
		return
	}
	// A cancel that comes after the receive ended finds nothing (-ENOENT,
	// ignored): the loop arms its next receive only at the final CQE, and
	// the SQ is consumed in order, so it never reaches a later receive. (A
	// late one, queued by poll, may; that receive then ends with -ECANCELED
	// and the loop arms another, which costs a round trip and loses nothing.)
	s.PrepCancel(tok, 0)
	s.SetUserData(tokenIgnore)
	b.freshCancels++
}

func (b *uringBackend) recvFrom(fd int, buf []byte, tok uint64) error {
	p := &polledOp{fd: fd, buf: buf}
	if err := b.armPoll(tok, p); err != nil {
		return err
	}
	b.polled[tok] = p
	b.ops++
	return nil
}

// sendFile submits SPLICE file -> pipe linked (IOSQE_IO_LINK) to SPLICE
// pipe -> socket; see spliceOp for the rest of the operation.
func (b *uringBackend) sendFile(outFD, inFD int, offset int64, n int, tok uint64) error {
	p, err := b.getPipe()
	if err != nil {
		return err
	}
	// A file page fills one pipe slot, so an unaligned offset makes the first
	// slot short: ask for what fits, or the file -> pipe splice comes up
	// short and breaks the link every time.
	want := min(n, p.size-int(offset%int64(os.Getpagesize())))
	s1, s2, err := b.sqePair()
	if err != nil {
		b.putPipe(p, true)
		return err
	}
	op := &spliceOp{tok: tok, out: outFD, in: inFD, off: offset, n: n, want: want, p: p}
	a := b.newAux(auxSpliceIn)
	a.sf = op
	s1.PrepSplice(inFD, offset, p.w, -1, uint32(want), unix.SPLICE_F_MOVE)
	s1.SetFlags(uring.SQEIOLink)
	s1.SetUserData(a.tok)
	s2.PrepSplice(p.r, -1, outFD, -1, uint32(want), unix.SPLICE_F_MOVE)
	s2.SetUserData(tok)
	b.splices[tok] = op
	b.ops += 2
	return nil
}

// sqePair returns two consecutive free SQEs for a link: a link cannot span
// two submissions (the kernel ends a chain with the batch), so it submits
// what is queued first when fewer than two are free.
func (b *uringBackend) sqePair() (*uring.SQE, *uring.SQE, error) {
	if err := b.submitPerOp(); err != nil {
		return nil, nil, err
	}
	if b.r.SQSpaceLeft() < 2 {
		if _, err := b.r.Submit(); err != nil {
			return nil, nil, err
		}
	}
	s1, ok1 := b.r.GetSQE()
	if !ok1 {
		return nil, nil, fmt.Errorf("loop: io_uring submission queue full: %w", unix.EBUSY)
	}
	s2, ok2 := b.r.GetSQE()
	if !ok2 {
		// Impossible after SQSpaceLeft >= 2; s1 is already taken, so make it
		// harmless rather than leave a dangling link.
		s1.PrepNop()
		s1.SetUserData(tokenIgnore)
		return nil, nil, fmt.Errorf("loop: io_uring submission queue full: %w", unix.EBUSY)
	}
	return s1, s2, nil
}

// auxKind tells what an aux SQE is.
type auxKind uint8

const (
	auxSpliceIn      auxKind = iota + 1 // file -> pipe half of a sendFile
	auxLinkTimeout                      // LINK_TIMEOUT behind a connect
	auxTimeoutUpdate                    // TIMEOUT_REMOVE updating such a timeout
)

// auxOp is the record of an aux SQE. It owns the kernel-visible memory of
// that SQE (the timespec) until its own CQE, which may come after the CQE of
// the loop operation it is linked to: the loop's opMem is released at the
// latter, so the timespec does not live there.
type auxOp struct {
	tok  uint64
	kind auxKind
	ts   uring.Timespec
	pin  runtime.Pinner
	sf   *spliceOp // auxSpliceIn: its operation
}

func (b *uringBackend) newAux(k auxKind) *auxOp {
	b.auxSeq = b.auxSeq%tokenAuxSeq + 1
	a := &auxOp{tok: tokenAux | b.auxSeq, kind: k}
	b.aux[a.tok] = a
	return a
}

// setTimespec stores d in a.ts and pins it: the kernel reads it until the
// aux CQE (uring.PrepLinkTimeout's Memory paragraph).
func (a *auxOp) setTimespec(d time.Duration) {
	a.ts.Set(max(d, 0))
	a.pin.Pin(&a.ts)
}

// onAux handles the CQE of an aux SQE (ops already decremented).
func (b *uringBackend) onAux(c *uring.CQE, dispatch func(*completion)) {
	a := b.aux[c.UserData]
	if a == nil {
		return // not ours: impossible, tokens are unique
	}
	delete(b.aux, c.UserData)
	a.pin.Unpin()
	if a.kind == auxSpliceIn {
		op := a.sf
		op.inDone = true
		op.inRes = c.Res
		if c.Res > 0 {
			op.inPipe = int(c.Res)
		}
		b.spliceStep(op, dispatch)
	}
}

// maxIdlePipes bounds the pipes kept for reuse; more concurrent sendFiles
// create (and then close) their own.
const maxIdlePipes = 4

// splicePipe is a pipe between the two splices of a sendFile.
//
// Its ends are blocking (O_CLOEXEC only): io_uring always runs SPLICE on an
// io-wq worker, and do_splice takes its non-blocking mode from the file on
// the other side, not from the pipe (the socket is non-blocking, so the
// pipe -> socket half returns -EAGAIN instead of sleeping). The pipe never
// makes a worker sleep either: file -> pipe starts on an empty pipe and asks
// for at most its capacity, and pipe -> socket asks for at most what the
// pipe holds. A pipe goes back to the pool only empty; one that may hold
// bytes (an error or a cancel half way) is closed.
type splicePipe struct {
	r, w int
	size int // capacity in bytes
}

func (b *uringBackend) getPipe() (*splicePipe, error) {
	if k := len(b.pipes); k > 0 {
		p := b.pipes[k-1]
		b.pipes = b.pipes[:k-1]
		return p, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	// 1 MiB per round trip; refused beyond fs.pipe-max-size or the user's
	// pipe-user-pages-soft, then the pipe keeps its size.
	_, _ = unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, 1<<20)
	size, err := unix.FcntlInt(uintptr(fds[1]), unix.F_GETPIPE_SZ, 0)
	if err != nil || size < os.Getpagesize()*2 {
		size = os.Getpagesize() * 2 // a pipe has two slots at the very least
	}
	return &splicePipe{r: fds[0], w: fds[1], size: size}, nil
}

// putPipe returns an empty pipe to the pool, or closes it.
func (b *uringBackend) putPipe(p *splicePipe, empty bool) {
	if empty && !b.closing && len(b.pipes) < maxIdlePipes {
		b.pipes = append(b.pipes, p)
		return
	}
	unix.Close(p.r)
	unix.Close(p.w)
}

// spliceOp is one sendFile on io_uring. It starts as SPLICE file -> pipe (an
// aux SQE) linked to SPLICE pipe -> socket under the loop's token, and ends
// with one completion under that token once the pipe is empty again (or is
// given up): res = the bytes that reached the socket, 0 at the end of the
// file, or -errno. In between, while the socket takes only part of the pipe
// (or none: -EAGAIN), it waits for POLLOUT and splices the rest, all under
// the loop's token, so cancel and cancelFD(socket) reach it.
type spliceOp struct {
	tok     uint64
	out, in int
	off     int64
	n, want int // asked by the loop; asked of the file -> pipe splice
	p       *splicePipe

	inDone    bool  // the file -> pipe CQE is reaped
	inRes     int32 // its result
	inPipe    int   // bytes in the pipe not sent yet
	sent      int   // bytes sent to the socket
	haveOut   bool  // a CQE under tok is reaped and not handled yet
	outRes    int32
	polling   bool // the SQE under tok is a POLL_ADD
	cancelled bool // the loop cancelled the operation
}

func (b *uringBackend) onSpliceOut(op *spliceOp, res int32, dispatch func(*completion)) {
	op.haveOut = true
	op.outRes = res
	b.spliceStep(op, dispatch)
}

// spliceStep moves op on once both the file -> pipe CQE and the CQE under
// the loop's token are in (the link orders them, but the code does not rely
// on the order in which they are reaped).
func (b *uringBackend) spliceStep(op *spliceOp, dispatch func(*completion)) {
	if !op.inDone || !op.haveOut {
		return
	}
	op.haveOut = false
	res := op.outRes
	if op.polling {
		op.polling = false
		if res < 0 {
			b.spliceEnd(op, res, dispatch)
			return
		}
		b.spliceDrain(op, dispatch)
		return
	}
	switch {
	case res > 0:
		op.inPipe -= int(res)
		op.sent += int(res)
		if op.inPipe <= 0 {
			op.inPipe = 0
			b.spliceEnd(op, int32(op.sent), dispatch)
			return
		}
		b.spliceWait(op, dispatch) // the socket took part of the pipe
	case res == -int32(unix.EAGAIN) && op.inPipe > 0:
		b.spliceWait(op, dispatch)
	case op.sent > 0:
		b.spliceEnd(op, int32(op.sent), dispatch) // the error shows next time
	case op.inRes == 0:
		b.spliceEnd(op, 0, dispatch) // end of file: the link was cut
	case op.inRes > 0 && res == -int32(unix.ECANCELED) && !op.cancelled:
		// A short file -> pipe splice (the file shrank, or the pipe took
		// less) fails the link (io_uring/splice.c: ret != len); send what
		// the pipe holds.
		b.spliceDrain(op, dispatch)
	case (op.inRes == -int32(unix.EINVAL) || op.inRes == -int32(unix.EOPNOTSUPP)) && !op.cancelled && !b.closing:
		// The file cannot splice (no splice_read): sendfile(2) on POLLOUT,
		// as before SPLICE (STYLE §3: per-op fallback).
		b.spliceFallback(op, dispatch)
	case op.inRes < 0:
		b.spliceEnd(op, op.inRes, dispatch)
	case res == 0:
		b.spliceEnd(op, -int32(unix.EPIPE), dispatch) // the socket took nothing
	default:
		b.spliceEnd(op, res, dispatch)
	}
}

// spliceWait waits for the socket to take more of the pipe.
func (b *uringBackend) spliceWait(op *spliceOp, dispatch func(*completion)) {
	if op.cancelled || b.closing {
		b.spliceEnd(op, -int32(unix.ECANCELED), dispatch)
		return
	}
	s, err := b.sqe()
	if err != nil {
		b.spliceEnd(op, errRes(err), dispatch)
		return
	}
	s.PrepPollAdd(op.out, unix.POLLOUT)
	s.SetUserData(op.tok)
	op.polling = true
	b.ops++
}

// spliceDrain splices what the pipe holds to the socket.
func (b *uringBackend) spliceDrain(op *spliceOp, dispatch func(*completion)) {
	if op.cancelled || b.closing {
		b.spliceEnd(op, -int32(unix.ECANCELED), dispatch)
		return
	}
	s, err := b.sqe()
	if err != nil {
		b.spliceEnd(op, errRes(err), dispatch)
		return
	}
	s.PrepSplice(op.p.r, -1, op.out, -1, uint32(op.inPipe), unix.SPLICE_F_MOVE)
	s.SetUserData(op.tok)
	b.ops++
}

// spliceFallback turns op into the polled sendfile(2) emulation.
func (b *uringBackend) spliceFallback(op *spliceOp, dispatch func(*completion)) {
	p := &polledOp{sendfile: true, fd: op.out, inFD: op.in, off: op.off, n: op.n}
	if err := b.armPoll(op.tok, p); err != nil {
		b.spliceEnd(op, errRes(err), dispatch)
		return
	}
	delete(b.splices, op.tok)
	b.putPipe(op.p, op.inPipe == 0)
	b.polled[op.tok] = p
	b.ops++
}

// spliceEnd reports op's final completion under the loop's token.
func (b *uringBackend) spliceEnd(op *spliceOp, res int32, dispatch func(*completion)) {
	delete(b.splices, op.tok)
	b.putPipe(op.p, op.inPipe == 0)
	op.p = nil
	if dispatch != nil {
		b.comp = completion{tok: op.tok, res: res}
		dispatch(&b.comp)
		b.comp = completion{}
	}
}

// errRes turns a submission error into a completion result.
func errRes(err error) int32 {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return -int32(errno)
	}
	return -int32(unix.EIO)
}

// fillMsg points m.msg at bufs through m.iov, pinning every address the
// kernel will read.
func fillMsg(m *opMem, bufs [][]byte) {
	m.iov = m.iov[:0]
	for _, p := range bufs {
		if len(p) == 0 {
			continue
		}
		v := unix.Iovec{Base: &p[0]}
		v.SetLen(len(p))
		m.iov = append(m.iov, v)
		// Memory: the kernel reads p until the final CQE; m.bufs keeps it
		// reachable and the pin keeps it in place until m.release.
		m.pin.Pin(&p[0])
	}
	m.msg = unix.Msghdr{}
	if len(m.iov) > 0 {
		m.pin.Pin(&m.iov[0])
		m.msg.Iov = &m.iov[0]
		m.msg.SetIovlen(len(m.iov))
	}
	// Pins the record m lives in (msg and sa included).
	m.pin.Pin(&m.msg)
	m.pinned = true
}

func (b *uringBackend) send(fd int, bufs [][]byte, m *opMem, tok uint64) error {
	s, err := b.sqe()
	if err != nil {
		return err
	}
	m.bufs = append(m.bufs[:0], bufs...)
	b.prepSend(s, fd, m) // SENDMSG, or zero-copy (Options.URingSendZC)
	s.SetUserData(tok)
	b.ops++
	return nil
}

func (b *uringBackend) sendTo(fd int, p []byte, to unix.Sockaddr, m *opMem, tok uint64) error {
	if err := m.sa.Set(to); err != nil {
		return err
	}
	s, err := b.sqe()
	if err != nil {
		return err
	}
	m.bufs = append(m.bufs[:0], p)
	fillMsg(m, m.bufs)
	m.msg.Name = &m.sa.Bytes()[0]
	m.msg.Namelen = m.sa.Len()
	s.PrepSendmsg(fd, &m.msg, unix.MSG_NOSIGNAL)
	s.SetUserData(tok)
	b.ops++
	return nil
}

// connect submits CONNECT, and with timeout > 0 links a LINK_TIMEOUT to it:
// when that fires the kernel cancels the connect, whose -ECANCELED reap
// reports as -ETIME (the backend contract).
func (b *uringBackend) connect(fd int, sa unix.Sockaddr, m *opMem, timeout time.Duration, tok uint64) (bool, error) {
	if err := m.sa.Set(sa); err != nil {
		return false, err
	}
	var s, st *uring.SQE
	var err error
	if timeout > 0 {
		s, st, err = b.sqePair()
	} else {
		s, err = b.sqe()
	}
	if err != nil {
		return false, err
	}
	// Memory: the kernel reads m.sa until the CQE; pinned until m.release.
	m.pin.Pin(&m.sa)
	m.pinned = true
	s.PrepConnect(fd, &m.sa)
	s.SetUserData(tok)
	b.ops++
	if st == nil {
		return false, nil
	}
	s.SetFlags(uring.SQEIOLink)
	a := b.newAux(auxLinkTimeout)
	a.setTimespec(timeout)
	st.PrepLinkTimeout(&a.ts, 0)
	st.SetUserData(a.tok)
	b.ops++
	b.conns[tok] = a.tok
	return true, nil
}

// updateConnectTimeout re-arms the LINK_TIMEOUT of the connect tok with
// IORING_LINK_TIMEOUT_UPDATE. Its CQE is -ENOENT when the connect or the
// timeout is over already, which needs nothing more.
func (b *uringBackend) updateConnectTimeout(tok uint64, d time.Duration) error {
	lt, ok := b.conns[tok]
	if !ok {
		return fmt.Errorf("loop: no bounded connect %#x: %w", tok, unix.ENOENT)
	}
	s, err := b.sqe()
	if err != nil {
		return err
	}
	a := b.newAux(auxTimeoutUpdate)
	a.setTimespec(d)
	s.PrepTimeoutUpdate(&a.ts, lt, uring.TimeoutLinkTimeoutUpdate)
	s.SetUserData(a.tok)
	b.ops++
	return nil
}

func (b *uringBackend) cancel(tok uint64) error {
	if op := b.splices[tok]; op != nil {
		op.cancelled = true // no more SQEs for it
	}
	s, err := b.sqe()
	if err != nil {
		return err
	}
	s.PrepCancel(tok, 0)
	s.SetUserData(tokenIgnore)
	return nil
}

func (b *uringBackend) cancelFD(fd int) error {
	for _, op := range b.splices {
		if op.out == fd {
			op.cancelled = true // no more SQEs for it
		}
	}
	s, err := b.sqe()
	if err != nil {
		return err
	}
	s.PrepCancelFD(fd, uring.CancelAll)
	s.SetUserData(tokenIgnore)
	return nil
}

func (b *uringBackend) closeFD(fd int, tok uint64) error {
	s, err := b.sqe()
	if err != nil {
		return err
	}
	s.PrepClose(fd)
	s.SetUserData(tok)
	b.ops++
	return nil
}

func (b *uringBackend) close() error {
	var errs []error
	b.closing = true
	if b.ops > 0 && b.ops > btoi(b.armed) {
		// The loop reaps its operations before closing; anything left is
		// cancelled here and reaped without dispatch.
		if s, ok := b.r.GetSQE(); ok {
			s.PrepCancel(0, uring.CancelAny|uring.CancelAll)
			s.SetUserData(tokenIgnore)
		}
		deadline := time.Now().Add(5 * time.Second)
		for b.ops > btoi(b.armed) && time.Now().Before(deadline) {
			if _, err := b.r.SubmitAndWait(1, 100*time.Millisecond); err != nil {
				errs = append(errs, err)
				break
			}
			b.reap(nil)
		}
	}
	if b.br != nil {
		if err := b.br.Close(); err != nil {
			errs = append(errs, err)
		}
		b.br = nil
	}
	if b.armed {
		if s, ok := b.r.GetSQE(); ok {
			s.PrepCancel(tokenWake, 0)
			s.SetUserData(tokenIgnore)
		}
		deadline := time.Now().Add(5 * time.Second)
		for b.armed && time.Now().Before(deadline) {
			if _, err := b.r.SubmitAndWait(1, 100*time.Millisecond); err != nil {
				errs = append(errs, err)
				break
			}
			b.reap(nil)
		}
		if b.armed {
			errs = append(errs, errors.New("loop: eventfd read not reaped at close"))
		}
	}
	if err := b.r.Close(); err != nil {
		errs = append(errs, err)
	}
	// The ring is gone: the kernel holds no reference to efbuf, the aux
	// timespecs or the pipes any more.
	b.pin.Unpin()
	for _, a := range b.aux {
		a.pin.Unpin()
	}
	clear(b.aux)
	for _, op := range b.splices {
		if op.p != nil {
			b.putPipe(op.p, false)
		}
	}
	clear(b.splices)
	for _, p := range b.pipes {
		b.putPipe(p, false)
	}
	b.pipes = nil
	clear(b.conns)
	b.freshFD = nil
	b.lateCancels = nil
	b.armed = false
	b.ops = 0
	if err := unix.Close(b.efd); err != nil {
		errs = append(errs, fmt.Errorf("close eventfd: %w", err))
	}
	return errors.Join(errs...)
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}
