package uring

import (
	"errors"
	"strconv"
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

	// Taskrun limits the automatic choice to one tier of task-work flags (see [Taskrun]);
	// the zero value, TaskrunAuto, tries every tier best first. Ignored with NoAutoFlags.
	Taskrun Taskrun
}

// Taskrun names a tier of the setup flags that decide where and when the kernel runs
// completion work (task work). [New] tries the tiers best first (TaskrunAuto) or only
// the one asked for; this table is the only place the tiers are written down.
type Taskrun uint8

const (
	// TaskrunAuto tries TaskrunDefer, then TaskrunCoop, then TaskrunNone.
	TaskrunAuto Taskrun = iota
	// TaskrunDefer is IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN, with
	// IORING_SETUP_TASKRUN_FLAG where accepted (Linux 6.1): completion work runs only
	// when the submitting thread waits.
	TaskrunDefer
	// TaskrunCoop is IORING_SETUP_COOP_TASKRUN|IORING_SETUP_TASKRUN_FLAG (Linux 5.19):
	// completion work runs at the thread's next kernel entry, without an interrupt.
	TaskrunCoop
	// TaskrunNone asks for none of those flags: the kernel interrupts the thread to
	// post completions.
	TaskrunNone
)

// taskrunTiers are the flag sets of each tier, best first within a tier.
var taskrunTiers = [...][]SetupFlags{
	TaskrunDefer: {SetupSingleIssuer | SetupDeferTaskrun | SetupTaskrunFlag, SetupSingleIssuer | SetupDeferTaskrun},
	TaskrunCoop:  {SetupCoopTaskrun | SetupTaskrunFlag},
	TaskrunNone:  {0},
}

// String returns "auto", "defer-taskrun", "coop-taskrun" or "none".
func (t Taskrun) String() string {
	switch t {
	case TaskrunAuto:
		return "auto"
	case TaskrunDefer:
		return "defer-taskrun"
	case TaskrunCoop:
		return "coop-taskrun"
	case TaskrunNone:
		return "none"
	}
	return "Taskrun(" + strconv.Itoa(int(t)) + ")"
}

// feature names the kernel flags a tier needs, for a *FeatureError.
func (t Taskrun) feature() string {
	switch t {
	case TaskrunDefer:
		return "IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN"
	case TaskrunCoop:
		return "IORING_SETUP_COOP_TASKRUN|IORING_SETUP_TASKRUN_FLAG"
	}
	return "io_uring_setup without taskrun flags"
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
