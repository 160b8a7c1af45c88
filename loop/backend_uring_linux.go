package loop

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

var _ backend = (*uringBackend)(nil)

// Reserved user data values (STYLE §5): tokenIgnore marks completions nobody
// waits for (cancels, linked-timeout echoes); tokenWake is the backend's own
// read on its eventfd.
const (
	tokenIgnore uint64 = 0
	tokenWake   uint64 = math.MaxUint64
)

// ringEntries is the submission queue size; the completion queue is four
// times larger (uring.New's default).
const ringEntries = 512

// requiredOps are the operations the loop submits; Auto falls back to epoll
// when the probe lacks one.
var requiredOps = []uring.Op{
	uring.OpRead, uring.OpAsyncCancel, uring.OpLinkTimeout, uring.OpAccept,
	uring.OpConnect, uring.OpRecv, uring.OpSend, uring.OpSendmsg, uring.OpClose,
	uring.OpShutdown, uring.OpSplice,
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

	// polled are the operations the ring has no opcode for that the loop can
	// use (recvfrom with the sender's address, sendfile): a poll SQE under the
	// operation's token, then the non-blocking system call on readiness.
	polled map[uint64]*polledOp
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
	r, err := uring.New(ringEntries, nil)
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
	br, err := r.NewBufRing(bufGroup, uint16(n), size)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("loop: buffer ring: %w", err), unix.Close(efd), r.Close())
	}
	b := &uringBackend{r: r, cqes: make([]uring.CQE, 256), efd: efd, efbuf: new([8]byte),
		br: br, polled: make(map[uint64]*polledOp)}
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
	b.reap(dispatch)
	return nil
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
	s.SetUserData(tok)
	b.ops++
	return nil
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

func (b *uringBackend) sendFile(outFD, inFD int, offset int64, n int, tok uint64) error {
	p := &polledOp{sendfile: true, fd: outFD, inFD: inFD, off: offset, n: n}
	if err := b.armPoll(tok, p); err != nil {
		return err
	}
	b.polled[tok] = p
	b.ops++
	return nil
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
	fillMsg(m, m.bufs)
	s.PrepSendmsg(fd, &m.msg, unix.MSG_NOSIGNAL)
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

func (b *uringBackend) connect(fd int, sa unix.Sockaddr, m *opMem, tok uint64) error {
	if err := m.sa.Set(sa); err != nil {
		return err
	}
	s, err := b.sqe()
	if err != nil {
		return err
	}
	// Memory: the kernel reads m.sa until the CQE; pinned until m.release.
	m.pin.Pin(&m.sa)
	m.pinned = true
	s.PrepConnect(fd, &m.sa)
	s.SetUserData(tok)
	b.ops++
	return nil
}

func (b *uringBackend) cancel(tok uint64) error {
	s, err := b.sqe()
	if err != nil {
		return err
	}
	s.PrepCancel(tok, 0)
	s.SetUserData(tokenIgnore)
	return nil
}

func (b *uringBackend) cancelFD(fd int) error {
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
	// The ring is gone: the kernel holds no reference to efbuf any more.
	b.pin.Unpin()
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
