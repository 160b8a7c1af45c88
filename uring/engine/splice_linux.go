package engine

import (
	"fmt"
	"os"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

// Splice sends up to n bytes of the file inFD at offset (offset < 0: from
// the file's position) to the socket outFD, with sendfile(2)'s meaning: Res
// = bytes sent, possibly fewer than n (submit the rest), 0 at the end of the
// file, or -errno. It is SPLICE file -> pipe linked (IOSQE_IO_LINK) to
// SPLICE pipe -> socket through a pooled pipe; see spliceOp for the rest.
// A file that cannot splice is sent with sendfile(2) on POLLOUT instead.
//
// Errors as AcceptMultishot, unix.EINVAL for a negative inFD or n, and
// pipe2(2)'s.
func (e *Engine) Splice(outFD, inFD int, offset int64, n int, ud uint64) error {
	if err := e.check("splice", outFD, ud); err != nil {
		return err
	}
	if inFD < 0 || n < 0 {
		return fmt.Errorf("engine: splice fd %d from fd %d, %d bytes: %w", outFD, inFD, n, unix.EINVAL)
	}
	p, err := e.getPipe()
	if err != nil {
		return err
	}
	// A file page fills one pipe slot, so an unaligned offset makes the first
	// slot short: ask for what fits, or the file -> pipe splice comes up
	// short and breaks the link every time.
	want := min(n, p.size-int(max(offset, 0)%int64(os.Getpagesize())))
	s1, s2, err := e.sqePair()
	if err != nil {
		e.putPipe(p, true)
		return err
	}
	idx := e.newRow(rowSplice, outFD, ud, false)
	e.rows[idx].sp = &spliceOp{out: outFD, in: inFD, off: offset, n: n, want: want, p: p}
	s1.PrepSplice(inFD, offset, p.w, -1, uint32(want), unix.SPLICE_F_MOVE)
	s1.SetFlags(uring.SQEIOLink)
	e.submitted(s1, tokLinked, idx)
	out, _ := fdOf(outFD)
	s2.PrepSplice(p.r, -1, out, -1, uint32(want), unix.SPLICE_F_MOVE)
	target(s2, outFD)
	e.submitted(s2, tokOp, idx)
	e.name(idx)
	e.ops++
	e.stepping++
	return nil
}

// maxIdlePipes bounds the pipes kept for reuse; more concurrent splices
// create (and then close) their own.
const maxIdlePipes = 4

// splicePipe is a pipe between the two splices of a Splice.
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

func (e *Engine) getPipe() (*splicePipe, error) {
	if k := len(e.pipes); k > 0 {
		p := e.pipes[k-1]
		e.pipes = e.pipes[:k-1]
		return p, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("engine: splice: %w", os.NewSyscallError("pipe2", err))
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
func (e *Engine) putPipe(p *splicePipe, empty bool) {
	if empty && !e.closed && len(e.pipes) < maxIdlePipes {
		e.pipes = append(e.pipes, p)
		return
	}
	unix.Close(p.r)
	unix.Close(p.w)
}

// spliceOp is the state of a splice row. It starts as SPLICE file -> pipe
// (tokLinked) linked to SPLICE pipe -> socket (tokOp), and ends with one
// completion once the pipe is empty again (or is given up): Res = the bytes
// that reached the socket, 0 at the end of the file, or -errno. In between,
// while the socket takes only part of the pipe (or none: -EAGAIN), it waits
// for POLLOUT and splices the rest, all under tokOp, so Cancel and
// CancelFD(socket) reach it.
type spliceOp struct {
	out, in int
	off     int64
	n, want int // asked by the caller; asked of the file -> pipe splice
	p       *splicePipe

	inDone  bool  // the file -> pipe CQE is reaped
	inRes   int32 // its result
	inPipe  int   // bytes in the pipe not sent yet
	sent    int   // bytes sent to the socket
	haveOut bool  // a CQE under tokOp is reaped and not handled yet
	outRes  int32
	polling bool // the SQE under tokOp is a POLL_ADD
}

// onSplice handles a CQE of splice row idx.
func (e *Engine) onSplice(d *Completion, idx uint32, sub uint64, res int32) bool {
	op := e.rows[idx].sp
	if sub == tokLinked {
		op.inDone = true
		op.inRes = res
		if res > 0 {
			op.inPipe = int(res)
		}
	} else {
		op.haveOut = true
		op.outRes = res
	}
	return e.spliceStep(d, idx)
}

// spliceStep moves the splice on once both the file -> pipe CQE and the
// CQE under tokOp are in (the link orders them, but the code does not rely
// on the order in which they are reaped).
func (e *Engine) spliceStep(d *Completion, idx uint32) bool {
	r := &e.rows[idx]
	op := r.sp
	if !op.inDone || !op.haveOut {
		return false
	}
	op.haveOut = false
	res := op.outRes
	if op.polling {
		op.polling = false
		if res < 0 {
			return e.spliceEnd(d, idx, res)
		}
		return e.spliceDrain(d, idx)
	}
	switch {
	case res > 0:
		op.inPipe -= int(res)
		op.sent += int(res)
		if op.inPipe <= 0 {
			op.inPipe = 0
			return e.spliceEnd(d, idx, int32(op.sent))
		}
		return e.spliceWait(d, idx) // the socket took part of the pipe
	case res == -int32(unix.EAGAIN) && op.inPipe > 0:
		return e.spliceWait(d, idx)
	case op.sent > 0:
		return e.spliceEnd(d, idx, int32(op.sent)) // the error shows next time
	case op.inRes == 0:
		return e.spliceEnd(d, idx, 0) // end of file: the link was cut
	case op.inRes > 0 && res == -int32(unix.ECANCELED) && !r.cancelled:
		// A short file -> pipe splice (the file shrank, or the pipe took
		// less) fails the link (io_uring/splice.c: ret != len); send what
		// the pipe holds.
		return e.spliceDrain(d, idx)
	case (op.inRes == -int32(unix.EINVAL) || op.inRes == -int32(unix.EOPNOTSUPP)) && !r.cancelled && !e.closed && !IsDirect(op.out):
		// The file cannot splice (no splice_read): sendfile(2) on POLLOUT,
		// as before SPLICE (STYLE §3: per-operation fallback). A direct
		// descriptor has no process fd for sendfile(2): the error stands.
		return e.spliceFallback(d, idx)
	case op.inRes < 0:
		return e.spliceEnd(d, idx, op.inRes)
	case res == 0:
		return e.spliceEnd(d, idx, -int32(unix.EPIPE)) // the socket took nothing
	default:
		return e.spliceEnd(d, idx, res)
	}
}

// spliceWait waits for the socket to take more of the pipe.
func (e *Engine) spliceWait(d *Completion, idx uint32) bool { return e.spliceNext(d, idx, true) }

// spliceDrain splices what the pipe holds to the socket.
func (e *Engine) spliceDrain(d *Completion, idx uint32) bool { return e.spliceNext(d, idx, false) }

// spliceNext submits the splice's next SQE on the socket under tokOp: a
// POLL_ADD for room (poll), or the SPLICE of what the pipe holds. A
// cancelled splice, or one the SQ cannot take, ends instead.
func (e *Engine) spliceNext(d *Completion, idx uint32, poll bool) bool {
	if e.rows[idx].cancelled || e.closed {
		return e.spliceEnd(d, idx, -int32(unix.ECANCELED))
	}
	s, err := e.sqe()
	if err != nil {
		return e.spliceEnd(d, idx, errRes(err))
	}
	op := e.rows[idx].sp
	out, _ := fdOf(op.out)
	if poll {
		s.PrepPollAdd(out, unix.POLLOUT)
	} else {
		s.PrepSplice(op.p.r, -1, out, -1, uint32(op.inPipe), unix.SPLICE_F_MOVE)
	}
	target(s, op.out)
	e.submitted(s, tokOp, idx)
	op.polling = poll
	return false
}

// spliceFallback turns the row into the polled sendfile(2) emulation.
func (e *Engine) spliceFallback(d *Completion, idx uint32) bool {
	s, err := e.sqe()
	if err != nil {
		return e.spliceEnd(d, idx, errRes(err))
	}
	r := &e.rows[idx]
	op := r.sp
	e.putPipe(op.p, op.inPipe == 0)
	op.p = nil
	r.sp = nil
	r.kind = rowSendfile
	r.mem = e.getMem()
	r.mem.inFD, r.mem.off, r.mem.n = op.in, op.off, op.n
	s.PrepPollAdd(op.out, unix.POLLOUT)
	e.submitted(s, tokOp, idx)
	return false
}

// spliceEnd produces the splice's final completion.
func (e *Engine) spliceEnd(d *Completion, idx uint32, res int32) bool {
	op := e.rows[idx].sp
	e.putPipe(op.p, op.inPipe == 0)
	op.p = nil
	return e.finish(d, idx, res)
}

// onPolled handles the poll CQE of a polled row (RecvFrom, or the sendfile
// emulation): it runs the system call and completes, or polls again when
// the call would block.
func (e *Engine) onPolled(d *Completion, idx uint32, res int32) bool {
	r := &e.rows[idx]
	if res < 0 {
		return e.finish(d, idx, res)
	}
	m := r.mem
	var err error
	var buf []byte
	var from unix.Sockaddr
	n := 0
	if r.kind == rowSendfile {
		off := m.off
		var offp *int64
		if off >= 0 {
			offp = &off
		}
		n, err = unix.Sendfile(int(r.fd), m.inFD, offp, m.n)
	} else {
		n, from, err = unix.Recvfrom(int(r.fd), m.buf, unix.MSG_DONTWAIT)
		if err == nil {
			buf = m.buf[:n]
		}
	}
	if (err == unix.EAGAIN || err == unix.EINTR) && !r.cancelled && !e.closed {
		mask := int16(unix.POLLIN)
		if r.kind == rowSendfile {
			mask = unix.POLLOUT
		}
		s, serr := e.sqe()
		if serr == nil {
			s.PrepPollAdd(int(r.fd), uint32(uint16(mask)))
			e.submitted(s, tokOp, idx)
			return false
		}
		err = serr
	} else if err == unix.EAGAIN || err == unix.EINTR {
		err = unix.ECANCELED // cancelled while waiting for readiness
	}
	if err != nil {
		return e.finish(d, idx, errRes(err))
	}
	e.finish(d, idx, int32(n))
	d.Buf, d.From = buf, from
	return true
}
