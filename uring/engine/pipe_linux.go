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
// Each is a POLL_ADD on the socket (POLLIN to receive, POLLOUT to send)
// linked to the SPLICE, both SQEs of one row: the SPLICE runs on an io-wq
// worker (io_uring always issues SPLICE from one), and the poll keeps it
// from going there before the socket is ready. SPLICE_F_NONBLOCK keeps the
// worker from sleeping on the pipe; the sockets are non-blocking too. A
// SPLICE that finds nothing to move after all (-EAGAIN: readiness raced)
// is submitted again with its poll, under the same row.

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
	idx := e.newRow(k, fd, ud, true)
	m := e.rows[idx].mem
	m.inFD, m.n = pipe, n
	if err := e.armPipeSplice(idx); err != nil {
		e.freeRow(idx)
		return err
	}
	e.name(idx)
	e.ops++
	e.stepping++
	return nil
}

// armPipeSplice submits the poll and the SPLICE linked to it of row idx.
func (e *Engine) armPipeSplice(idx uint32) error {
	s1, s2, err := e.sqePair()
	if err != nil {
		return err
	}
	r := &e.rows[idx]
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
