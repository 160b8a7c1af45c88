package loop

import (
	"errors"
	"time"

	epoll "github.com/ringmachine/ringmachine/fallback_epoll"
	"github.com/ringmachine/ringmachine/uring/engine"
	"golang.org/x/sys/unix"
)

var _ backend = (*epollBackend)(nil)

// The epoll engine's FlagMore is the io_uring engine's, which completion's
// More reads (a constant overflow here fails the build).
const (
	_ = uint8(engine.FlagMore - epoll.FlagMore)
	_ = uint8(epoll.FlagMore - engine.FlagMore)
)

// epollBackend adapts the epoll engine to the backend contract.
type epollBackend struct {
	p    *epoll.Poller
	cqes []epoll.Completion
}

func newEpollBackend(cfg backendConfig) (*epollBackend, error) {
	size, n := cfg.recvBufferSize, cfg.recvBuffers
	if size <= 0 {
		size = DefaultRecvBufferSize
	}
	if n <= 0 {
		n = DefaultRecvBuffers
	}
	p, err := epoll.New(epoll.Options{RecvBufferSize: size, RecvBuffers: n})
	if err != nil {
		return nil, err
	}
	return &epollBackend{p: p, cqes: make([]epoll.Completion, 256)}, nil
}

func (b *epollBackend) kind() Backend { return Epoll }

func (b *epollBackend) wake() error { return b.p.Wake() }

func (b *epollBackend) inFlight() int { return b.p.InFlight() }

func (b *epollBackend) poll(timeout time.Duration, dispatch func(*completion)) error {
	n, err := b.p.Wait(timeout, b.cqes)
	for i := range b.cqes[:n] {
		c := &b.cqes[i]
		if dispatch != nil {
			dispatch((*completion)(c)) // the same fields: no copy (see completion)
		}
		*c = epoll.Completion{}
	}
	return err
}

func (b *epollBackend) acceptMultishot(fd int, tok uint64) error {
	return b.p.AcceptMultishot(fd, tok)
}

func (b *epollBackend) acceptDirect(fd int, tok uint64) error { return errors.ErrUnsupported }

func (b *epollBackend) socketDirect(int, uint64) error { return errors.ErrUnsupported }

func (b *epollBackend) setNoDelay(fd int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
}

func (b *epollBackend) shutdownWrite(fd int) error {
	if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil && err != unix.ENOTCONN {
		return err
	}
	return nil
}

func (b *epollBackend) control(fd int, fn func(fd int) error) error { return fn(fd) }

func (b *epollBackend) addrs(fd int) (unix.Sockaddr, unix.Sockaddr, error) {
	local, err := unix.Getsockname(fd)
	if err != nil {
		return nil, nil, err
	}
	peer, err := unix.Getpeername(fd)
	return local, peer, err
}

func (b *epollBackend) recvMultishot(fd int, tok uint64) error {
	return b.p.RecvMultishot(fd, tok)
}

func (b *epollBackend) recvFrom(fd int, buf []byte, tok uint64) error {
	return b.p.RecvFrom(fd, buf, tok)
}

func (b *epollBackend) recv(fd int, buf []byte, tok uint64) error { return b.p.Recv(fd, buf, tok) }

func (b *epollBackend) send(fd int, bufs [][]byte, tok uint64) error {
	return b.p.Send(fd, bufs, tok)
}

func (b *epollBackend) sendTo(fd int, p []byte, to unix.Sockaddr, tok uint64) error {
	return b.p.SendTo(fd, p, to, tok)
}

// connect never bounds the attempt: the loop's timer does (see backend).
func (b *epollBackend) connect(fd int, sa unix.Sockaddr, timeout time.Duration, tok uint64) (bool, error) {
	return false, b.p.Connect(fd, sa, tok)
}

func (b *epollBackend) updateConnectTimeout(tok uint64, d time.Duration) error {
	return errors.ErrUnsupported
}

func (b *epollBackend) sendFile(outFD, inFD int, offset int64, n int, tok uint64) error {
	return b.p.Splice(outFD, inFD, offset, n, tok)
}

func (b *epollBackend) spliceIn(fd, pipeW, n int, tok uint64) error {
	return b.p.SpliceIn(fd, pipeW, n, tok)
}

func (b *epollBackend) spliceOut(fd, pipeR, n int, tok uint64) error {
	return b.p.SpliceOut(fd, pipeR, n, tok)
}

func (b *epollBackend) pollFD(fd int, mask uint32, tok uint64) error {
	return b.p.Poll(fd, mask, tok)
}

// waitid is unsupported: the loop polls the pidfd (waitChild).
func (b *epollBackend) waitid(int, *siginfo, uint64) error { return errors.ErrUnsupported }

func (b *epollBackend) read(fd int, buf []byte, tok uint64) error { return b.p.Read(fd, buf, tok) }

func (b *epollBackend) write(fd int, bufs [][]byte, tok uint64) error {
	return b.p.Write(fd, bufs, tok)
}

func (b *epollBackend) release(fd int) (int, error) {
	b.p.Release(fd)
	return fd, nil
}

func (b *epollBackend) cancel(tok uint64) error {
	if err := b.p.Cancel(tok); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

func (b *epollBackend) cancelFD(fd int) error {
	if _, err := b.p.CancelFD(fd); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

func (b *epollBackend) closeFD(fd int, tok uint64) error {
	return b.p.CloseFD(fd, tok)
}

func (b *epollBackend) close() error {
	return b.p.Close()
}
