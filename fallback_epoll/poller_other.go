//go:build !linux

package epoll

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// errUnsupported is returned by everything on systems without epoll.
var errUnsupported = fmt.Errorf("epoll: requires Linux: %w", errors.ErrUnsupported)

// Poller is unavailable on this system: [New] fails.
type Poller struct{}

// New returns an error matching errors.ErrUnsupported: epoll is Linux-only.
func New(opts Options) (*Poller, error) { return nil, errUnsupported }

// Close is unsupported on this system.
func (p *Poller) Close() error { return errUnsupported }

// Wake is unsupported on this system.
func (p *Poller) Wake() error { return errUnsupported }

// InFlight returns 0 on this system.
func (p *Poller) InFlight() int { return 0 }

// AcceptMultishot is unsupported on this system.
func (p *Poller) AcceptMultishot(fd int, userData uint64) error { return errUnsupported }

// RecvMultishot is unsupported on this system.
func (p *Poller) RecvMultishot(fd int, userData uint64) error { return errUnsupported }

// Recv is unsupported on this system.
func (p *Poller) Recv(fd int, buf []byte, userData uint64) error { return errUnsupported }

// Read is unsupported on this system.
func (p *Poller) Read(fd int, buf []byte, userData uint64) error { return errUnsupported }

// Write is unsupported on this system.
func (p *Poller) Write(fd int, bufs [][]byte, userData uint64) error { return errUnsupported }

// Release does nothing on this system.
func (p *Poller) Release(fd int) {}

// RecvFrom is unsupported on this system.
func (p *Poller) RecvFrom(fd int, buf []byte, userData uint64) error { return errUnsupported }

// Send is unsupported on this system.
func (p *Poller) Send(fd int, bufs [][]byte, userData uint64) error { return errUnsupported }

// SendTo is unsupported on this system.
func (p *Poller) SendTo(fd int, b []byte, to unix.Sockaddr, userData uint64) error {
	return errUnsupported
}

// Connect is unsupported on this system.
func (p *Poller) Connect(fd int, sa unix.Sockaddr, userData uint64) error { return errUnsupported }

// Splice is unsupported on this system.
func (p *Poller) Splice(outFD, inFD int, offset int64, n int, userData uint64) error {
	return errUnsupported
}

// SpliceIn is unsupported on this system.
func (p *Poller) SpliceIn(fd, pipeW, n int, userData uint64) error { return errUnsupported }

// SpliceOut is unsupported on this system.
func (p *Poller) SpliceOut(fd, pipeR, n int, userData uint64) error { return errUnsupported }

// Poll is unsupported on this system.
func (p *Poller) Poll(fd int, mask uint32, userData uint64) error { return errUnsupported }

// Cancel is unsupported on this system.
func (p *Poller) Cancel(userData uint64) error { return errUnsupported }

// CancelFD is unsupported on this system.
func (p *Poller) CancelFD(fd int) (int, error) { return 0, errUnsupported }

// CloseFD is unsupported on this system.
func (p *Poller) CloseFD(fd int, userData uint64) error { return errUnsupported }

// Wait is unsupported on this system.
func (p *Poller) Wait(timeout time.Duration, dst []Completion) (int, error) {
	return 0, errUnsupported
}
