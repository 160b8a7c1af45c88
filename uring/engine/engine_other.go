//go:build !linux

package engine

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

var errUnsupported = fmt.Errorf("engine: io_uring requires Linux: %w", errors.ErrUnsupported)

// Engine is the io_uring engine; on this platform every method fails.
type Engine struct{}

// New returns an error matching errors.ErrUnsupported: io_uring is Linux's.
func New(opts Options) (*Engine, error) { return nil, errUnsupported }

// RingFD returns -1.
func (e *Engine) RingFD() int { return -1 }

// Stats returns zero counters.
func (e *Engine) Stats() Stats { return Stats{} }

// Wake returns an error matching errors.ErrUnsupported.
func (e *Engine) Wake() error { return errUnsupported }

// InFlight returns 0.
func (e *Engine) InFlight() int { return 0 }

// Wait returns an error matching errors.ErrUnsupported.
func (e *Engine) Wait(timeout time.Duration, dst []Completion) (int, error) {
	return 0, errUnsupported
}

// Close returns an error matching errors.ErrUnsupported.
func (e *Engine) Close() error { return errUnsupported }

// AcceptMultishot returns an error matching errors.ErrUnsupported.
func (e *Engine) AcceptMultishot(fd int, ud uint64) error { return errUnsupported }

// RecvMultishot returns an error matching errors.ErrUnsupported.
func (e *Engine) RecvMultishot(fd int, ud uint64) error { return errUnsupported }

// Recv returns an error matching errors.ErrUnsupported.
func (e *Engine) Recv(fd int, buf []byte, ud uint64) error { return errUnsupported }

// Read returns an error matching errors.ErrUnsupported.
func (e *Engine) Read(fd int, buf []byte, ud uint64) error { return errUnsupported }

// Write returns an error matching errors.ErrUnsupported.
func (e *Engine) Write(fd int, bufs [][]byte, ud uint64) error { return errUnsupported }

// Release returns an error matching errors.ErrUnsupported.
func (e *Engine) Release(fd int) (int, error) { return -1, errUnsupported }

// RecvFrom returns an error matching errors.ErrUnsupported.
func (e *Engine) RecvFrom(fd int, buf []byte, ud uint64) error { return errUnsupported }

// Send returns an error matching errors.ErrUnsupported.
func (e *Engine) Send(fd int, bufs [][]byte, ud uint64) error { return errUnsupported }

// SendTo returns an error matching errors.ErrUnsupported.
func (e *Engine) SendTo(fd int, b []byte, to unix.Sockaddr, ud uint64) error {
	return errUnsupported
}

// Connect returns an error matching errors.ErrUnsupported.
func (e *Engine) Connect(fd int, sa unix.Sockaddr, ud uint64) error { return errUnsupported }

// ConnectTimeout returns an error matching errors.ErrUnsupported.
func (e *Engine) ConnectTimeout(fd int, sa unix.Sockaddr, timeout time.Duration, ud uint64) error {
	return errUnsupported
}

// UpdateConnectTimeout returns an error matching errors.ErrUnsupported.
func (e *Engine) UpdateConnectTimeout(ud uint64, d time.Duration) error { return errUnsupported }

// Splice returns an error matching errors.ErrUnsupported.
func (e *Engine) Splice(outFD, inFD int, offset int64, n int, ud uint64) error {
	return errUnsupported
}

// Cancel returns an error matching errors.ErrUnsupported.
func (e *Engine) Cancel(ud uint64) error { return errUnsupported }

// CancelFD returns an error matching errors.ErrUnsupported.
func (e *Engine) CancelFD(fd int) error { return errUnsupported }

// CloseFD returns an error matching errors.ErrUnsupported.
func (e *Engine) CloseFD(fd int, ud uint64) error { return errUnsupported }

// MsgRing returns an error matching errors.ErrUnsupported.
func (e *Engine) MsgRing(ringFD int, res uint32, data, ud uint64) error { return errUnsupported }

// RecvBundle returns false.
func (e *Engine) RecvBundle() bool { return false }

// MinWait returns 0.
func (e *Engine) MinWait() time.Duration { return 0 }

// DirectFiles returns 0.
func (e *Engine) DirectFiles() int { return 0 }

// AcceptMultishotDirect returns an error matching errors.ErrUnsupported.
func (e *Engine) AcceptMultishotDirect(fd int, ud uint64) error { return errUnsupported }

// SetSockOptInt returns an error matching errors.ErrUnsupported.
func (e *Engine) SetSockOptInt(fd, level, name, v int) error { return errUnsupported }

// Shutdown returns an error matching errors.ErrUnsupported.
func (e *Engine) Shutdown(fd, how int) error { return errUnsupported }

// Addrs returns an error matching errors.ErrUnsupported.
func (e *Engine) Addrs(fd int) (local, peer unix.Sockaddr, err error) {
	return nil, nil, errUnsupported
}

// Control returns an error matching errors.ErrUnsupported.
func (e *Engine) Control(fd int, fn func(fd int) error) error { return errUnsupported }

// SocketDirect returns an error matching errors.ErrUnsupported.
func (e *Engine) SocketDirect(domain, typ, proto int, ud uint64) error { return errUnsupported }

// SendDirect returns an error matching errors.ErrUnsupported.
func (e *Engine) SendDirect(ringFD, fd int, data, ud uint64) error { return errUnsupported }

// ReserveDirect returns 0.
func (e *Engine) ReserveDirect(n int) int { return 0 }

// AdoptDirect returns an error matching errors.ErrUnsupported.
func (e *Engine) AdoptDirect(slot int32, tcp bool) (int, error) { return -1, errUnsupported }

// RegisterDirect returns an error matching errors.ErrUnsupported.
func (e *Engine) RegisterDirect(fd int) (int, error) { return -1, errUnsupported }

// SpliceIn is unsupported on this system.
func (e *Engine) SpliceIn(fd, pipeW, n int, ud uint64) error { return errUnsupported }

// SpliceOut is unsupported on this system.
func (e *Engine) SpliceOut(fd, pipeR, n int, ud uint64) error { return errUnsupported }

// Poll is unsupported on this system.
func (e *Engine) Poll(fd int, mask uint32, ud uint64) error { return errUnsupported }
