package loop

import (
	"fmt"
	"os"

	"github.com/ringmachine/ringmachine/conn"
	"golang.org/x/sys/unix"
)

// Pipes and FIFOs as connections (Attach). A pipe end is a stream
// connection whose receives and sends are reads and writes (RECV and SEND
// refuse a pipe with ENOTSOCK): a read end only receives, a write end only
// sends, a FIFO opened for both does both. Nothing of a socket applies:
// no addresses, no shutdown(2) (closing a write end is its reader's EOF),
// no socket options.

// pipeEnd is which directions of a pipe the loop uses (0: a socket).
type pipeEnd uint8

const (
	pipeReads  pipeEnd = 1 << iota // the loop reads from it
	pipeWrites                     // the loop writes to it
)

// pipeNetwork is the network of a pipe connection (sock.network).
const pipeNetwork = "pipe"

// isFIFO reports whether fd is a pipe or a FIFO.
func isFIFO(fd int) bool {
	var st unix.Stat_t
	return fd >= 0 && unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// pipeEndOf returns the directions fd, a pipe or FIFO, is open for, from its
// access mode, and makes it non-blocking and close-on-exec.
func pipeEndOf(op string, fd int) (pipeEnd, error) {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return 0, fmt.Errorf("loop: %s: fd %d: %w", op, fd, os.NewSyscallError("fcntl", err))
	}
	var end pipeEnd
	switch fl & unix.O_ACCMODE {
	case unix.O_RDONLY:
		end = pipeReads
	case unix.O_WRONLY:
		end = pipeWrites
	case unix.O_RDWR:
		end = pipeReads | pipeWrites // a FIFO opened for both
	default:
		return 0, fmt.Errorf("loop: %s: fd %d: pipe with access mode %#x", op, fd, fl&unix.O_ACCMODE)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return 0, fmt.Errorf("loop: %s: fd %d: %w", op, fd, os.NewSyscallError("fcntl", err))
	}
	unix.CloseOnExec(fd)
	return end, nil
}

// attachPipe makes the pipe end fd a connection with handler h.
func (l *Loop) attachPipe(fd int, end pipeEnd, h conn.Handler) *conn.Conn {
	s := l.newSock(sockStream, fd, pipeNetwork)
	s.pipe = end
	if end&pipeWrites == 0 {
		s.wrClosed = true // SendData says why it refuses: errReadOnlyPipe
	}
	if end&pipeReads == 0 {
		s.rdEOF = true // nothing to receive, ever
	}
	return l.openConn(s, h)
}

// errReadOnlyPipe is what the sending methods of a pipe's read end return.
var errReadOnlyPipe = fmt.Errorf("loop: the read end of a pipe cannot send: %w", conn.ErrClosed)

// sendRefused is the error of a sending method on s, which cannot send:
// ErrClosed, or errReadOnlyPipe for a pipe's read end.
func (s *sock) sendRefused() error {
	if s.pipe != 0 && s.pipe&pipeWrites == 0 {
		return errReadOnlyPipe
	}
	return conn.ErrClosed
}

// sendOp and recvOp name s's operations in its errors (conn.OpError.Op).
func (s *sock) sendOp() string {
	if s.pipe != 0 {
		return "write"
	}
	return "send"
}

func (s *sock) recvOp() string {
	if s.pipe != 0 {
		return "read"
	}
	return "recv"
}
