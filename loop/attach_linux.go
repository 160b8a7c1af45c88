package loop

import (
	"fmt"
	"os"

	"github.com/ringmachine/ringmachine/conn"
	"golang.org/x/sys/unix"
)

// Adopting descriptors made elsewhere: inherited ones, systemd's socket
// activation, a net.Listener's or net.Conn's File.

// streamSocket checks that fd is a stream socket (listening or not, as
// listening says) and returns its network, "tcp" or "unix".
func streamSocket(op string, fd int, listening bool) (string, error) {
	if fd < 0 {
		return "", fmt.Errorf("loop: %s: fd %d: %w", op, fd, unix.EBADF)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return "", fmt.Errorf("loop: %s: fd %d: %w", op, fd, os.NewSyscallError("getsockopt", err))
	}
	if typ != unix.SOCK_STREAM {
		return "", fmt.Errorf("loop: %s: fd %d is not a stream socket (type %d)", op, fd, typ)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return "", fmt.Errorf("loop: %s: fd %d: %w", op, fd, os.NewSyscallError("getsockopt", err))
	}
	if (acc == 1) != listening {
		if listening {
			return "", fmt.Errorf("loop: %s: fd %d is not a listening socket", op, fd)
		}
		return "", fmt.Errorf("loop: %s: fd %d is a listening socket (AttachServer takes those)", op, fd)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", fmt.Errorf("loop: %s: fd %d: %w", op, fd, os.NewSyscallError("getsockname", err))
	}
	network := "tcp"
	switch sa.(type) {
	case *unix.SockaddrUnix:
		network = "unix"
	case *unix.SockaddrInet4, *unix.SockaddrInet6:
	default:
		return "", fmt.Errorf("loop: %s: fd %d: address family of %T not supported", op, fd, sa)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return "", fmt.Errorf("loop: %s: fd %d: %w", op, fd, os.NewSyscallError("fcntl", err))
	}
	unix.CloseOnExec(fd)
	return network, nil
}

// Attach makes the connected stream socket fd (TCP or Unix), or the pipe
// or FIFO end fd, a connection of the loop with handler h (EventMachine's
// EM.attach): PostInit runs before it returns, then ReceiveData for what
// arrives, and Unbind once, as for an accepted connection. The loop takes
// the descriptor: it sets it non-blocking and close-on-exec and closes it
// when the connection closes, so pass a duplicate (a net.Conn's File,
// unix.Dup) to keep one. It stays a process fd on io_uring too.
//
// A pipe end is used in the directions its access mode allows (F_GETFL's
// O_ACCMODE), with read(2) and write(2) semantics (io_uring READ and
// WRITE). A read end delivers what is written into the pipe to
// ReceiveData, and its Unbind reason is io.EOF once every writer has
// closed (a HalfCloser gets ReceiveEOF first); its sending methods
// (SendData, SendFile) return an error that matches conn.ErrClosed and
// says the end cannot send. A write end sends what SendData and SendFile
// queue; CloseAfterWriting and CloseWrite both close it once the queue is
// written (Unbind(nil)), which is its reader's EOF; when the reader has
// gone, the next write ends it with Unbind(*conn.OpError wrapping
// syscall.EPIPE). The kernel raises SIGPIPE for that write too, which the
// Go runtime ignores for descriptors other than 1 and 2 unless the program
// asked for it with signal.Notify. A FIFO open for both does both.
// LocalAddr and RemoteAddr are nil, and no socket option applies.
//
// Errors (fd untouched): ErrNilFunc for a nil h; ErrLoopStopped when the
// loop is not running; an error wrapping unix.EBADF for a negative fd, and
// errors naming fd when it is neither a pipe nor a socket (ENOTSOCK from
// getsockopt), not a stream socket, a listening one, or of another family.
// Call only from the loop goroutine.
func (l *Loop) Attach(fd int, h conn.Handler) (*conn.Conn, error) {
	if h == nil {
		return nil, ErrNilFunc
	}
	if !l.running.Load() || l.stopping || l.be == nil {
		return nil, ErrLoopStopped
	}
	if isFIFO(fd) {
		end, err := pipeEndOf("Attach", fd)
		if err != nil {
			return nil, err
		}
		return l.attachPipe(fd, end, h), nil
	}
	network, err := streamSocket("Attach", fd, false)
	if err != nil {
		return nil, err
	}
	return l.serveConn(fd, network, h), nil
}

// AttachServer serves the listening stream socket fd (TCP or Unix) as
// StartServer serves its own (EventMachine's EM.attach_server): systemd's
// socket activation, a listener inherited from a parent, a net.Listener's
// File. The server takes the descriptor: it sets it non-blocking and
// close-on-exec, and Server.Stop closes it (and removes no socket file);
// pass a duplicate to keep one. Options.Socket and ReusePort are not
// applied: the socket is used as it was made.
//
// Errors (fd untouched): ErrNilFunc, ErrLoopStopped, and those of Attach
// for a descriptor that is not a listening stream socket; an
// *conn.OpError if the first accept cannot be submitted (fd closed then).
// Call only from the loop goroutine.
func (l *Loop) AttachServer(fd int, factory func() conn.Handler) (*Server, error) {
	if factory == nil {
		return nil, ErrNilFunc
	}
	if !l.running.Load() || l.stopping || l.be == nil {
		return nil, ErrLoopStopped
	}
	network, err := streamSocket("AttachServer", fd, true)
	if err != nil {
		return nil, err
	}
	la := listenAddr{network: network}
	if network == "unix" {
		if sa, err := unix.Getsockname(fd); err == nil {
			la.address = sa.(*unix.SockaddrUnix).Name
		}
	}
	return l.serveFD(fd, la, factory, nil)
}
