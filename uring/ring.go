package uring

import (
	"errors"
	"time"
)

// Options tunes [New]. The zero value (or a nil *Options) asks for the best setup the
// kernel accepts.
type Options struct {
	// Flags are requested in addition to the automatic choice, or instead of it when
	// NoAutoFlags is set. SQPOLL, IOPOLL, SQE128, CQE32, NO_MMAP and REGISTERED_FD_ONLY
	// change how the rings are driven and are rejected by New.
	Flags SetupFlags

	// NoAutoFlags disables the automatic choice: New makes exactly one io_uring_setup call
	// with Flags|IORING_SETUP_CQSIZE and reports its error as is.
	NoAutoFlags bool

	// CQEntries is the completion queue size; 0 means 4× the submission queue size.
	CQEntries uint32

	// NoRegisterRingFD stops New from registering the ring fd (IORING_REGISTER_RING_FDS),
	// which it otherwise does when SINGLE_ISSUER was granted.
	NoRegisterRingFD bool
}

// ErrClosed is returned by methods of a [Ring] or [BufRing] that has been closed.
var ErrClosed = errors.New("uring: ring closed")

// FeatureError reports a kernel feature, opcode or flag that the running kernel lacks.
// It matches [errors.ErrUnsupported] with [errors.Is].
type FeatureError struct {
	// Feature is the kernel's name for what is missing, such as "IORING_FEAT_EXT_ARG" or
	// "IORING_OP_SEND_ZC".
	Feature string
}

func (e *FeatureError) Error() string { return "uring: kernel lacks " + e.Feature }

// Is reports whether target is [errors.ErrUnsupported].
func (e *FeatureError) Is(target error) bool { return target == errors.ErrUnsupported }

// noCopy makes go vet's copylocks check flag copies of the struct that embeds it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// NewTimespec converts d to a Timespec. Negative durations become zero.
func NewTimespec(d time.Duration) Timespec {
	var ts Timespec
	ts.Set(d)
	return ts
}

// Set stores d in ts. Negative durations become zero.
func (ts *Timespec) Set(d time.Duration) {
	if d < 0 {
		d = 0
	}
	ts.Sec = int64(d / time.Second)
	ts.Nsec = int64(d % time.Second)
}

// Duration returns ts as a time.Duration.
func (ts Timespec) Duration() time.Duration {
	return time.Duration(ts.Sec)*time.Second + time.Duration(ts.Nsec)
}
