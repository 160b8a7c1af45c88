package engine

import (
	"fmt"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

// Splicing between a stream socket and a pipe: what a proxy moves bytes
// with, socket -> pipe on one connection and pipe -> socket on another,
// without the bytes entering user memory.
//
// Each waits with a POLL_ADD on the socket (POLLIN to receive, POLLOUT to
// send), then calls splice(2) on the caller's thread as the poll's CQE is
// handled; for a direct descriptor, on a process fd the engine installs
// once (FIXED_FD_INSTALL) and closes with it. With Options.SpliceWorker the
// poll is linked to an IORING_OP_SPLICE instead, both SQEs of one row,
// which io_uring always runs on an io-wq worker thread: bench/run's proxy
// scenario measured that path at 0.64 to 0.71 times the bytes per server
// CPU second of the inline one (bench/README.md "Proxy"; the hand-offs to
// and from the workers cost about 4 context switches per 64 KiB request),
// so it is the A/B, not the default.
// SPLICE_F_NONBLOCK keeps a splice from sleeping on the pipe; the sockets
// are non-blocking too. A splice that finds nothing to move after all
// (EAGAIN: readiness raced) waits again, under the same row.

// SpliceIn moves up to n bytes that the stream socket fd has received into
// the pipe pipeW, once some have arrived: Res = the bytes moved, 0 at the
// peer's EOF, or -errno. The pipe must have room for n bytes (the caller
// splices into an empty pipe of at least n bytes). Cancel and CancelFD(fd)
// reach it while it waits.
//
// Errors as AcceptMultishot, and unix.EINVAL for a negative pipeW or an n
// below 1.
func (e *Engine) SpliceIn(fd, pipeW, n int, ud uint64) error {
	return e.pipeSplice(rowSpliceIn, fd, pipeW, n, ud)
}

// SpliceOut moves up to n bytes from the pipe pipeR, which holds at least
// n, to the stream socket fd, once the socket has room: Res = the bytes
// moved (possibly fewer than n: submit the rest) or -errno. Cancel and
// CancelFD(fd) reach it.
//
// Errors as SpliceIn.
func (e *Engine) SpliceOut(fd, pipeR, n int, ud uint64) error {
	return e.pipeSplice(rowSpliceOut, fd, pipeR, n, ud)
}

func (e *Engine) pipeSplice(k rowKind, fd, pipe, n int, ud uint64) error {
	name := "splice in"
	if k == rowSpliceOut {
		name = "splice out"
	}
	if err := e.check(name, fd, ud); err != nil {
		return err
	}
	if pipe < 0 || n < 1 {
		return fmt.Errorf("engine: %s fd %d, pipe %d, %d bytes: %w", name, fd, pipe, n, unix.EINVAL)
	}
	sys := -1
	if !e.opts.SpliceWorker {
		var err error
		if sys, err = e.spliceFD(fd); err != nil {
			return fmt.Errorf("engine: %s fd %d: %w", name, fd, err)
		}
		// A SpliceOut tries at once: the socket mostly has room, and then
		// the poll's round trip is saved (a SpliceIn waits first: a
		// receive is mostly armed before its bytes arrive). The completion
		// waits in the stash, which the next Wait reports first, without
		// blocking.
		if k == rowSpliceOut {
			if got, err := spliceSys(k, sys, pipe, n); err != unix.EAGAIN {
				res := int32(got)
				if err != nil {
					res = errRes(err)
				}
				e.stash = append(e.stash, uring.CQE{UserData: ud, Res: res})
				e.ops++
				return nil
			}
		}
	}
	idx := e.newRow(k, fd, ud, true)
	m := e.rows[idx].mem
	m.inFD, m.n, m.sys = pipe, n, sys
	if err := e.armPipeSplice(idx); err != nil {
		e.freeRow(idx)
		return err
	}
	e.name(idx)
	e.ops++
	e.stepping++
	return nil
}

// spliceFD returns the process fd splice(2) takes for fd: fd itself, or,
// for a direct descriptor, the one installed for it (once).
func (e *Engine) spliceFD(fd int) (int, error) {
	slot, direct := fdOf(fd)
	if !direct {
		return fd, nil
	}
	if f, ok := e.spliceFDs[fd]; ok {
		return f, nil
	}
	f, err := e.install(slot)
	if err != nil {
		return -1, err
	}
	if e.spliceFDs == nil {
		e.spliceFDs = make(map[int]int)
	}
	e.spliceFDs[fd] = f
	return f, nil
}

// armPipeSplice submits the poll of row idx, and with SpliceWorker the
// SPLICE linked to it.
func (e *Engine) armPipeSplice(idx uint32) error {
	r := &e.rows[idx]
	if m := r.mem; m.sys >= 0 {
		s, err := e.sqe()
		if err != nil {
			return err
		}
		mask := uint32(unix.POLLIN)
		if r.kind == rowSpliceOut {
			mask = unix.POLLOUT
		}
		f, _ := fdOf(int(r.fd))
		s.PrepPollAdd(f, mask)
		target(s, int(r.fd))
		e.submitted(s, tokOp, idx)
		return nil
	}
	s1, s2, err := e.sqePair()
	if err != nil {
		return err
	}
	r = &e.rows[idx]
	m := r.mem
	m.polled, m.spliced = false, false
	fd := int(r.fd)
	f, direct := fdOf(fd)
	flags := uint32(unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK)
	if r.kind == rowSpliceIn {
		s1.PrepPollAdd(f, unix.POLLIN)
		if direct {
			flags |= uring.SpliceFDInFixed
		}
		s2.PrepSplice(f, -1, m.inFD, -1, uint32(m.n), flags)
	} else {
		s1.PrepPollAdd(f, unix.POLLOUT)
		s2.PrepSplice(m.inFD, -1, f, -1, uint32(m.n), flags)
		target(s2, fd)
	}
	target(s1, fd)
	s1.SetFlags(uring.SQEIOLink)
	e.submitted(s1, tokOp, idx)
	e.submitted(s2, tokLinked, idx)
	return nil
}

// onPipeSplice handles a CQE of a SpliceIn or SpliceOut row: once both the
// poll's (tokOp) and the SPLICE's (tokLinked) are in, it completes or, when
// the SPLICE found nothing to move, submits the pair again.
func (e *Engine) onPipeSplice(d *Completion, idx uint32, sub uint64, res int32) bool {
	r := &e.rows[idx]
	m := r.mem
	if m.sys >= 0 {
		return e.spliceNow(d, idx, res)
	}
	if sub == tokOp {
		m.polled, m.pollRes = true, res
	} else {
		m.spliced, m.spliceRes = true, res
	}
	if !m.polled || !m.spliced {
		return false
	}
	switch {
	case m.pollRes < 0:
		return e.finish(d, idx, m.pollRes) // cancelled, or the poll failed: the SPLICE was cut
	case m.spliceRes == -int32(unix.EAGAIN):
		if r.cancelled || e.closed {
			return e.finish(d, idx, -int32(unix.ECANCELED))
		}
		if err := e.armPipeSplice(idx); err != nil {
			return e.finish(d, idx, errRes(err))
		}
		return false
	}
	return e.finish(d, idx, m.spliceRes)
}

// spliceNow handles the poll CQE (res) of an inline SpliceIn or SpliceOut
// row: it calls splice(2), and completes or, when the call would block,
// polls again.
func (e *Engine) spliceNow(d *Completion, idx uint32, res int32) bool {
	r := &e.rows[idx]
	m := r.mem
	if res < 0 {
		return e.finish(d, idx, res) // cancelled, or the poll failed
	}
	n, err := spliceSys(r.kind, m.sys, m.inFD, m.n)
	switch {
	case err == unix.EAGAIN && (r.cancelled || e.closed):
		return e.finish(d, idx, -int32(unix.ECANCELED))
	case err == unix.EAGAIN:
		if err := e.armPipeSplice(idx); err != nil {
			return e.finish(d, idx, errRes(err))
		}
		return false
	case err != nil:
		return e.finish(d, idx, errRes(err))
	}
	return e.finish(d, idx, int32(n))
}

// spliceSys calls splice(2) for a SpliceIn (k rowSpliceIn: socket sock ->
// pipe) or a SpliceOut (pipe -> socket) of at most n bytes.
func spliceSys(k rowKind, sock, pipe, n int) (int, error) {
	in, out := sock, pipe
	if k == rowSpliceOut {
		in, out = pipe, sock
	}
	for {
		got, err := unix.Splice(in, nil, out, nil, n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if err != unix.EINTR {
			return int(got), err
		}
	}
}
