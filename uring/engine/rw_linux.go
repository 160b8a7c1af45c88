package engine

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Reads and writes at the current position: descriptors that are not
// sockets (pipes, FIFOs, character devices), on which RECV and SEND fail
// with -ENOTSOCK.

// curPos is the offset that makes READ and WRITE use (and advance) the
// file position, as read(2) and write(2) do; for a pipe there is none.
const curPos = ^uint64(0)

// Read reads once from fd (a pipe, a FIFO, any descriptor read(2) takes)
// into buf with IORING_OP_READ (Linux 5.6) at the current position: Res =
// n, Buf = buf[:n], 0 at end of file (a pipe whose writers are all gone).
// A non-blocking fd is no obstacle: the kernel polls a pipe that has
// nothing to read rather than failing with -EAGAIN (Linux 5.7 on). buf
// belongs to the engine until the completion; Cancel ends it.
//
// Errors as Recv.
func (e *Engine) Read(fd int, buf []byte, ud uint64) error {
	if err := e.check("read", fd, ud); err != nil {
		return err
	}
	if len(buf) == 0 {
		return fmt.Errorf("engine: read fd %d: empty buffer: %w", fd, unix.EINVAL)
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	idx := e.newRow(rowRecv, fd, ud, true) // completes as a Recv does
	m := e.rows[idx].mem
	m.buf = buf
	// Memory: the kernel writes buf until the CQE; m keeps it reachable and
	// the pin in place until the row is freed.
	m.pinHere(&buf[0])
	f, _ := fdOf(fd)
	s.PrepRead(f, buf, curPos)
	target(s, fd)
	e.submitted(s, tokOp, idx)
	e.name(idx)
	e.ops++
	return nil
}

// Write writes bufs to fd (a pipe, a FIFO, any descriptor write(2) takes)
// in one operation at the current position: IORING_OP_WRITE for one
// buffer, IORING_OP_WRITEV for several (Linux 5.6): Res = bytes written,
// possibly short, or -EAGAIN when nothing was written (submit it again).
// A pipe whose readers are all gone fails with -EPIPE; the kernel also
// raises SIGPIPE on the submitting thread, which the Go runtime ignores
// for descriptors other than 1 and 2 unless the program asked for it with
// signal.Notify. At most IOV_MAX (1024) buffers are written; the slices
// belong to the engine until the completion. Like Send, a Write is found
// by CancelFD, not by Cancel.
//
// Errors as AcceptMultishot.
func (e *Engine) Write(fd int, bufs [][]byte, ud uint64) error {
	if err := e.check("write", fd, ud); err != nil {
		return err
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	idx := e.newRow(rowWrite, fd, ud, true)
	m := e.rows[idx].mem
	m.bufs = append(m.bufs[:0], bufs[:min(len(bufs), maxIOV)]...)
	f, _ := fdOf(fd)
	if p, ok := singleBuf(m.bufs); ok {
		// Memory: the kernel reads p until the CQE; m.bufs keeps it
		// reachable and the pin in place until the row is freed.
		m.pinHere(&p[0])
		s.PrepWrite(f, p, curPos)
	} else {
		fillMsg(m, m.bufs) // pins the buffers and m.iov
		s.PrepWritev(f, m.iov, curPos)
	}
	target(s, fd)
	e.submitted(s, tokOp, idx)
	e.ops++
	return nil
}

// maxIOV is IOV_MAX on Linux: WRITEV refuses more iovecs with -EINVAL.
const maxIOV = 1024
