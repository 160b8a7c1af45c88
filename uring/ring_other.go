//go:build !linux

package uring

import (
	"time"
)

// errNotLinux is returned by everything in this file: io_uring exists only on Linux.
var errNotLinux = &FeatureError{Feature: "io_uring (Linux only)"}

// Ring is an io_uring instance. On this GOOS it cannot be created: [New] returns an error
// matching errors.ErrUnsupported.
type Ring struct {
	_ noCopy
}

// New returns an error matching errors.ErrUnsupported: io_uring is Linux-only.
func New(entries uint32, opts *Options) (*Ring, error) { return nil, errNotLinux }

// Close returns an error matching errors.ErrUnsupported.
func (r *Ring) Close() error { return errNotLinux }

// FD returns -1.
func (r *Ring) FD() int { return -1 }

// Flags returns 0.
func (r *Ring) Flags() SetupFlags { return 0 }

// Features returns 0.
func (r *Ring) Features() Features { return 0 }

// SQEntries returns 0.
func (r *Ring) SQEntries() uint32 { return 0 }

// CQEntries returns 0.
func (r *Ring) CQEntries() uint32 { return 0 }

// RingFDRegistered returns false.
func (r *Ring) RingFDRegistered() bool { return false }

// GetSQE returns nil, false.
func (r *Ring) GetSQE() (*SQE, bool) { return nil, false }

// SQSpaceLeft returns 0.
func (r *Ring) SQSpaceLeft() uint32 { return 0 }

// Submit returns an error matching errors.ErrUnsupported.
func (r *Ring) Submit() (int, error) { return 0, errNotLinux }

// SubmitAndWaitMin returns an error matching errors.ErrUnsupported.
func (r *Ring) SubmitAndWaitMin(waitNr uint32, timeout, minWait time.Duration) (int, error) {
	return 0, errNotLinux
}

// SubmitAndWait returns an error matching errors.ErrUnsupported.
func (r *Ring) SubmitAndWait(waitNr uint32, timeout time.Duration) (int, error) {
	return 0, errNotLinux
}

// CQReady returns 0.
func (r *Ring) CQReady() uint32 { return 0 }

// PeekCQEs returns 0.
func (r *Ring) PeekCQEs(dst []CQE) int { return 0 }

// Probe returns an error matching errors.ErrUnsupported.
func (r *Ring) Probe() (*Probe, error) { return nil, errNotLinux }

// RegisterEventfd returns an error matching errors.ErrUnsupported.
func (r *Ring) RegisterEventfd(fd int) error { return errNotLinux }

// UnregisterEventfd returns an error matching errors.ErrUnsupported.
func (r *Ring) UnregisterEventfd() error { return errNotLinux }

// RegisterRingFD returns an error matching errors.ErrUnsupported.
func (r *Ring) RegisterRingFD() error { return errNotLinux }

// BufRing is a provided-buffer ring; unavailable on this GOOS.
type BufRing struct {
	_ noCopy
}

// NewBufRing returns an error matching errors.ErrUnsupported.
func (r *Ring) NewBufRing(group uint16, entries uint16, bufSize int) (*BufRing, error) {
	return nil, errNotLinux
}

// Group returns 0.
func (b *BufRing) Group() uint16 { return 0 }

// BufSize returns 0.
func (b *BufRing) BufSize() int { return 0 }

// Entries returns 0.
func (b *BufRing) Entries() int { return 0 }

// Buffer returns nil.
func (b *BufRing) Buffer(id uint16, n int) []byte { return nil }

// Add does nothing.
func (b *BufRing) Add(id uint16) {}

// Advance does nothing.
func (b *BufRing) Advance() {}

// Recycle does nothing.
func (b *BufRing) Recycle(id uint16) {}

// Close returns an error matching errors.ErrUnsupported.
func (b *BufRing) Close() error { return errNotLinux }
