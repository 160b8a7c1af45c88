package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is an io_uring instance: the submission queue (SQ), the completion queue (CQ) and
// the kernel context behind its fd.
//
// A Ring is not safe for concurrent use. Call New, every method and Close from one
// goroutine locked to its OS thread with runtime.LockOSThread: with SINGLE_ISSUER the
// creating thread is the only one allowed to submit (others get EEXIST), with
// DEFER_TASKRUN completions are only posted when that thread waits, and the registered
// ring fd lives in that thread's io_uring context.
type Ring struct {
	_ noCopy

	fd          int        // the ring fd
	enterFD     int        // fd or registered index passed to io_uring_enter
	enterFlags  EnterFlags // IORING_ENTER_REGISTERED_RING when enterFD is an index
	ringFDIndex int        // registered ring fd index, -1 when not registered
	flags       SetupFlags
	features    Features
	closed      bool

	// alwaysGetEvents: DEFER_TASKRUN without TASKRUN_FLAG gives no sign of pending task
	// work, so every Submit enters with GETEVENTS to post completions.
	alwaysGetEvents bool

	sqMem, cqMem, sqesMem []byte // mappings; cqMem is nil with FEAT_SINGLE_MMAP

	sqHead    *atomic.Uint32 // kernel-owned: advanced as the kernel consumes SQEs
	sqTail    *atomic.Uint32 // ours: published SQEs
	sqFlags   *atomic.Uint32 // kernel-owned: IORING_SQ_*
	sqDropped *atomic.Uint32 // kernel-owned: invalid SQEs skipped
	sqMask    uint32
	sqEntries uint32
	sqes      []SQE
	sqeTail   uint32 // next SQE handed out by GetSQE
	sqFlushed uint32 // last value stored to sqTail

	cqHead     *atomic.Uint32 // ours: consumed CQEs
	cqTail     *atomic.Uint32 // kernel-owned: posted CQEs
	cqOverflow *atomic.Uint32 // kernel-owned: CQEs dropped (never with FEAT_NODROP)
	cqMask     uint32
	cqEntries  uint32
	cqes       []CQE

	// Kernel-visible scratch for io_uring_enter with IORING_ENTER_EXT_ARG. They are fields,
	// not locals, because arg.TS holds the address of ts hidden in a uint64: nothing would
	// keep a stack local in place or alive once the call returns. The Ring is heap-allocated
	// by New and never moves.
	arg getEventsArg
	ts  Timespec

	// deadline is when the current timed wait ends, to resume it after EINTR, as
	// monotonic time since clockBase (one clock read, where time.Now takes two); 0: the
	// wait has no time limit.
	deadline time.Duration
}

// clockBase is the origin of Ring.deadline.
var clockBase = time.Now()

// unsupportedFlags are setup flags that need ring handling this package does not do.
const unsupportedFlags = SetupIOPoll | SetupSQPoll | SetupSQAff | SetupSQE128 | SetupCQE32 |
	SetupNoMmap | SetupRegisteredFDOnly | SetupHybridIOPoll | SetupAttachWQ | SetupRDisabled

// New sets up a ring with entries SQ entries (rounded up to a power of two by the kernel)
// and, unless opts says otherwise, 4× as many CQ entries.
//
// Without opts.NoAutoFlags it asks for the best flags the kernel accepts, first to last:
// SINGLE_ISSUER|DEFER_TASKRUN (|TASKRUN_FLAG), then COOP_TASKRUN|TASKRUN_FLAG, then
// none (the tiers of [Taskrun]; opts.Taskrun keeps only one, and when the kernel refuses
// it New returns a *FeatureError naming it); each with CQSIZE|CLAMP|SUBMIT_ALL and NO_SQARRAY when accepted (dropping extras on
// EINVAL). [Ring.Flags] and [Ring.Features] report what was granted. When SINGLE_ISSUER is
// granted the ring fd is also registered ([Ring.RegisterRingFD]) unless
// opts.NoRegisterRingFD.
//
// Call New on the goroutine that will use the ring, locked with runtime.LockOSThread.
// Errors wrap the errno with the failing syscall ("uring: io_uring_setup: ..."), so
// errors.Is(err, unix.ENOSYS), unix.EPERM (io_uring disabled by sysctl or seccomp) and
// unix.ENOMEM (RLIMIT_MEMLOCK) work. New does not require IORING_FEAT_EXT_ARG.
func New(entries uint32, opts *Options) (*Ring, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if entries == 0 {
		return nil, fmt.Errorf("uring: io_uring_setup: 0 entries: %w", unix.EINVAL)
	}
	if bad := o.Flags & unsupportedFlags; bad != 0 {
		return nil, fmt.Errorf("uring: setup flags %v not supported by this package: %w", bad, errors.ErrUnsupported)
	}
	cq := o.CQEntries
	if cq == 0 {
		cq = 4 * entries
	}

	if o.Taskrun > TaskrunNone {
		return nil, fmt.Errorf("uring: invalid Options.Taskrun %d: %w", o.Taskrun, unix.EINVAL)
	}
	var candidates []SetupFlags
	if o.NoAutoFlags {
		candidates = []SetupFlags{o.Flags | SetupCQSize}
	} else {
		tiers := taskrunTiers[TaskrunDefer:]
		if o.Taskrun != TaskrunAuto {
			tiers = taskrunTiers[o.Taskrun : o.Taskrun+1]
		}
		extras := []SetupFlags{
			SetupCQSize | SetupClamp | SetupSubmitAll | SetupNoSQArray,
			SetupCQSize | SetupClamp | SetupSubmitAll,
			SetupCQSize | SetupClamp,
		}
		for _, tier := range tiers {
			for _, t := range tier {
				for _, e := range extras {
					candidates = append(candidates, o.Flags|t|e)
				}
			}
		}
	}

	var (
		p   Params
		fd  int
		err error
	)
	for i, f := range candidates {
		p = Params{Flags: uint32(f), CQEntries: cq}
		fd, err = setup(entries, &p)
		if err == nil {
			break
		}
		if errors.Is(err, unix.EINVAL) && i+1 < len(candidates) {
			continue
		}
		if errors.Is(err, unix.EINVAL) && o.Taskrun != TaskrunAuto && !o.NoAutoFlags {
			return nil, fmt.Errorf("%w (Options.Taskrun %v): %w", &FeatureError{Feature: o.Taskrun.feature()}, o.Taskrun, err)
		}
		return nil, err
	}

	r := &Ring{fd: fd, enterFD: fd, ringFDIndex: -1}
	if err := r.mapRings(&p); err != nil {
		return nil, errors.Join(err, r.unmap(), closeFD(fd))
	}
	if r.flags.Has(SetupSingleIssuer) && !o.NoRegisterRingFD {
		// Best effort: it saves an fd lookup per enter, and kernels before 5.18 lack it.
		_ = r.RegisterRingFD()
	}
	return r, nil
}

// setup calls io_uring_setup(2).
func setup(entries uint32, p *Params) (int, error) {
	// Memory: p is only used during the call.
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, fmt.Errorf("uring: io_uring_setup: %w", errno)
	}
	return int(fd), nil
}

func closeFD(fd int) error {
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("uring: close: %w", err)
	}
	return nil
}

// mapRings maps the SQ and CQ rings and the SQE array described by p.
func (r *Ring) mapRings(p *Params) error {
	r.flags = SetupFlags(p.Flags)
	r.features = Features(p.Features)
	r.alwaysGetEvents = r.flags.Has(SetupDeferTaskrun) && !r.flags.Has(SetupTaskrunFlag)

	cqSize := int(p.CQOff.CQEs) + int(p.CQEntries)*int(unsafe.Sizeof(CQE{}))
	sqSize := int(p.SQOff.Array) + int(p.SQEntries)*4
	if r.flags.Has(SetupNoSQArray) {
		// There is no SQ index array: the SQ ring is the shared header, which the CQ
		// ring size covers.
		sqSize = cqSize
	}
	single := r.features.Has(FeatSingleMmap)
	if single {
		sqSize = max(sqSize, cqSize)
	}

	var err error
	if r.sqMem, err = mmapRing(r.fd, offSQRing, sqSize); err != nil {
		return err
	}
	cqMem := r.sqMem
	if !single {
		if r.cqMem, err = mmapRing(r.fd, offCQRing, cqSize); err != nil {
			return err
		}
		cqMem = r.cqMem
	}
	if r.sqesMem, err = mmapRing(r.fd, offSQEs, int(p.SQEntries)*int(unsafe.Sizeof(SQE{}))); err != nil {
		return err
	}

	r.sqHead = atomicU32(r.sqMem, p.SQOff.Head)
	r.sqTail = atomicU32(r.sqMem, p.SQOff.Tail)
	r.sqFlags = atomicU32(r.sqMem, p.SQOff.Flags)
	r.sqDropped = atomicU32(r.sqMem, p.SQOff.Dropped)
	r.sqMask = atomicU32(r.sqMem, p.SQOff.RingMask).Load()
	r.sqEntries = atomicU32(r.sqMem, p.SQOff.RingEntries).Load()
	r.sqes = sqeSlice(r.sqesMem, r.sqEntries)
	if !r.flags.Has(SetupNoSQArray) {
		// SQ slot i always holds SQE i, so the index array is written once, here.
		// Memory: before any submission, so the kernel reads none of it yet; each slot is a
		// 32-bit index of its own.
		array := u32Slice(r.sqMem, p.SQOff.Array, r.sqEntries)
		for i := range array {
			array[i] = uint32(i)
		}
	}
	r.sqeTail = r.sqTail.Load()
	r.sqFlushed = r.sqeTail

	r.cqHead = atomicU32(cqMem, p.CQOff.Head)
	r.cqTail = atomicU32(cqMem, p.CQOff.Tail)
	r.cqOverflow = atomicU32(cqMem, p.CQOff.Overflow)
	r.cqMask = atomicU32(cqMem, p.CQOff.RingMask).Load()
	r.cqEntries = atomicU32(cqMem, p.CQOff.RingEntries).Load()
	r.cqes = cqeSlice(cqMem, p.CQOff.CQEs, r.cqEntries)

	r.pointTS()
	return nil
}

// unmap releases the mappings; every pointer into them is cleared first.
func (r *Ring) unmap() error {
	r.sqHead, r.sqTail, r.sqFlags, r.sqDropped = nil, nil, nil, nil
	r.cqHead, r.cqTail, r.cqOverflow = nil, nil, nil
	r.sqes, r.cqes = nil, nil
	r.sqEntries, r.cqEntries = 0, 0
	err := errors.Join(munmap(r.sqesMem), munmap(r.cqMem), munmap(r.sqMem))
	r.sqesMem, r.cqMem, r.sqMem = nil, nil, nil
	return err
}

// Close unregisters the ring fd, unmaps the rings and closes the ring fd. In-flight
// operations are cancelled by the kernel; memory they reference must stay valid until
// Close returns. Buffer rings should be closed first. A second Close returns [ErrClosed].
// Call it from the thread that created the ring.
func (r *Ring) Close() error {
	if r.closed {
		return ErrClosed
	}
	var errs []error
	if r.ringFDIndex >= 0 {
		upd := rsrcUpdate{Offset: uint32(r.ringFDIndex)}
		// Memory: upd is only used during the call.
		if _, err := r.register(UnregisterRingFDs, unsafe.Pointer(&upd), 1); err != nil {
			errs = append(errs, err)
		}
		r.ringFDIndex = -1
	}
	r.closed = true
	errs = append(errs, r.unmap(), closeFD(r.fd))
	r.fd, r.enterFD = -1, -1
	return errors.Join(errs...)
}

// FD returns the ring's file descriptor, for [SQE.PrepMsgRing] from another ring. It stays
// owned by the Ring.
func (r *Ring) FD() int { return r.fd }

// Flags returns the setup flags the kernel granted.
func (r *Ring) Flags() SetupFlags { return r.flags }

// Features returns the IORING_FEAT_* bits the kernel reported.
func (r *Ring) Features() Features { return r.features }

// SQEntries returns the submission queue size.
func (r *Ring) SQEntries() uint32 { return r.sqEntries }

// CQEntries returns the completion queue size.
func (r *Ring) CQEntries() uint32 { return r.cqEntries }

// RingFDRegistered reports whether io_uring_enter uses the registered ring fd
// (IORING_ENTER_REGISTERED_RING).
func (r *Ring) RingFDRegistered() bool { return r.ringFDIndex >= 0 }

// GetSQE returns the next free SQE, zeroed, or nil and false when the SQ is full: then
// Submit and retry. The SQE belongs to the caller until the next Submit or SubmitAndWait,
// which hands it to the kernel; do not keep the pointer after that.
func (r *Ring) GetSQE() (*SQE, bool) {
	if r.closed {
		return nil, false
	}
	// acquire: pairs with the kernel's release store of sq.head once it has read the SQEs
	// (io_commit_sqring), so the slot is free to reuse.
	head := r.sqHead.Load()
	if r.sqeTail-head >= r.sqEntries {
		return nil, false
	}
	s := &r.sqes[r.sqeTail&r.sqMask]
	r.sqeTail++
	// Memory: the whole 64-byte slot is ours: the kernel has consumed it (sq.head passed
	// it) and reads it again only after flushSQ publishes a tail beyond it. Unlike a
	// buffer ring's entry 0, an SQE overlays no shared index, so assigning the struct
	// cannot change anything the kernel reads now.
	*s = SQE{}
	return s, true
}

// SQSpaceLeft returns how many SQEs GetSQE can hand out before the SQ is full.
func (r *Ring) SQSpaceLeft() uint32 {
	if r.closed {
		return 0
	}
	// acquire: pairs with the kernel's release store of sq.head (see GetSQE).
	return r.sqEntries - (r.sqeTail - r.sqHead.Load())
}

// flushSQ publishes the SQEs handed out by GetSQE and returns how many the kernel has not
// consumed yet.
func (r *Ring) flushSQ() uint32 {
	if r.sqFlushed != r.sqeTail {
		r.sqFlushed = r.sqeTail
		// Memory: sq.tail is a 32-bit word of its own in the SQ mapping (sq_off.tail),
		// written only here and with one 32-bit store: no neighbouring field shares it.
		// release: pairs with the kernel's smp_load_acquire of sq.tail (io_sqring_entries),
		// so the SQE contents are visible before the new tail.
		r.sqTail.Store(r.sqeTail)
	}
	// acquire: pairs with the kernel's release store of sq.head.
	return r.sqeTail - r.sqHead.Load()
}

// needGetEvents reports whether entering with GETEVENTS is needed to post completions:
// task work is pending (IORING_SQ_TASKRUN, with COOP_TASKRUN or DEFER_TASKRUN plus
// TASKRUN_FLAG), or completions overflowed the CQ (IORING_SQ_CQ_OVERFLOW).
func (r *Ring) needGetEvents() bool {
	// relaxed is enough (Go gives seq-cst anyway): pairs with the kernel's atomic_or of
	// these bits; missing a just-set bit only delays completions to the next enter.
	return r.alwaysGetEvents || r.sqFlags.Load()&(sqTaskrun|sqCQOverflow) != 0
}

// Submit hands the prepared SQEs to the kernel without waiting and returns how many it
// consumed. It enters the kernel only when there is something to submit or completions to
// post: with DEFER_TASKRUN (or COOP_TASKRUN) and pending task work, or after a CQ overflow,
// it adds IORING_ENTER_GETEVENTS so those completions become visible to PeekCQEs.
//
// Errors wrap the errno ("uring: io_uring_enter: ..."). EBUSY or EAGAIN mean the kernel
// cannot take more now (completions backed up, or out of memory for requests): reap with
// PeekCQEs and submit again; the unsubmitted SQEs stay queued.
func (r *Ring) Submit() (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	toSubmit := r.flushSQ()
	var flags EnterFlags
	if r.needGetEvents() {
		flags = EnterGetEvents
	}
	if toSubmit == 0 && flags == 0 {
		return 0, nil
	}
	return r.enter(toSubmit, 0, flags, false)
}

// SubmitAndWait submits like Submit, then waits until at least waitNr completions are in
// the CQ or the timeout elapses, and returns how many SQEs were submitted.
//
//   - timeout < 0: wait without a time limit.
//   - timeout == 0: do not wait; enter with GETEVENTS to post completions (run
//     DEFER_TASKRUN task work, flush an overflowed CQ) even when nothing is submitted.
//   - timeout > 0: wait at most timeout, using IORING_ENTER_EXT_ARG; without
//     IORING_FEAT_EXT_ARG (Linux 5.11) it returns a *FeatureError and submits nothing.
//
// Running out of time is not an error: it returns the count submitted and nil. Signals
// (EINTR) are retried with the remaining time. Other errors are as for Submit.
func (r *Ring) SubmitAndWait(waitNr uint32, timeout time.Duration) (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	if timeout > 0 && !r.features.Has(FeatExtArg) {
		return 0, &FeatureError{Feature: "IORING_FEAT_EXT_ARG"}
	}
	toSubmit := r.flushSQ()
	switch {
	case timeout == 0:
		return r.enter(toSubmit, 0, EnterGetEvents, false)
	case toSubmit == 0 && waitNr > 0 && r.CQReady() >= waitNr && !r.needGetEvents():
		// Enough completions are already posted: no need to enter.
		return 0, nil
	case timeout < 0:
		return r.enter(toSubmit, waitNr, EnterGetEvents, false)
	default:
		r.ts.Set(timeout)
		r.deadline = time.Since(clockBase) + timeout
		return r.enter(toSubmit, waitNr, EnterGetEvents, true)
	}
}

// SubmitAndWaitMin is SubmitAndWait with a minimum wait (IORING_FEAT_MIN_TIMEOUT, Linux
// 6.12; liburing io_uring_submit_and_wait_min_timeout): it waits for waitNr completions,
// but once minWait has passed it returns as soon as at least one has arrived, so a busy
// ring gathers up to waitNr completions per call at the cost of at most minWait of added
// latency. timeout bounds the whole wait as for SubmitAndWait (< 0: none); a timeout of 0
// or a minWait below a microsecond is SubmitAndWait(waitNr, timeout).
//
// Errors: as SubmitAndWait; a *FeatureError without IORING_FEAT_MIN_TIMEOUT.
func (r *Ring) SubmitAndWaitMin(waitNr uint32, timeout, minWait time.Duration) (int, error) {
	usec := minWait / time.Microsecond
	if timeout == 0 || usec <= 0 {
		return r.SubmitAndWait(waitNr, timeout)
	}
	if r.closed {
		return 0, ErrClosed
	}
	if !r.features.Has(FeatMinTimeout) {
		return 0, &FeatureError{Feature: "IORING_FEAT_MIN_TIMEOUT"}
	}
	toSubmit := r.flushSQ()
	if toSubmit == 0 && waitNr > 0 && r.CQReady() >= waitNr && !r.needGetEvents() {
		return 0, nil
	}
	r.arg.MinWaitUsec = uint32(min(usec, 1<<32-1))
	defer func() { r.arg.MinWaitUsec = 0 }()
	if timeout < 0 {
		r.arg.TS = 0 // no overall timeout
		defer r.pointTS()
		r.deadline = 0
	} else {
		r.ts.Set(timeout)
		r.deadline = time.Since(clockBase) + timeout
	}
	return r.enter(toSubmit, waitNr, EnterGetEvents, true)
}

// pointTS makes arg.TS point at r.ts again.
func (r *Ring) pointTS() {
	// Memory: r is heap-allocated by New and never moves; arg.TS points at r.ts for the
	// ring's lifetime and the kernel reads it only during io_uring_enter.
	r.arg.TS = uint64(uintptr(unsafe.Pointer(&r.ts)))
}

// enter calls io_uring_enter(2). It is the one place EINTR is retried (with the remaining
// time for a timed wait). ETIME, a timed wait running out, returns (0, nil).
func (r *Ring) enter(toSubmit, minComplete uint32, flags EnterFlags, timed bool) (int, error) {
	flags |= r.enterFlags
	for {
		var (
			n     uintptr
			errno unix.Errno
		)
		if timed {
			// Memory: r.arg and r.ts (which r.arg.TS points to) are fields of the
			// heap-allocated Ring, alive and unmoved during the call.
			n, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.enterFD), uintptr(toSubmit),
				uintptr(minComplete), uintptr(flags|EnterExtArg), uintptr(unsafe.Pointer(&r.arg)),
				unsafe.Sizeof(r.arg))
		} else {
			n, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.enterFD), uintptr(toSubmit),
				uintptr(minComplete), uintptr(flags), 0, 0)
		}
		switch errno {
		case 0:
			return int(n), nil
		case unix.ETIME:
			return 0, nil
		case unix.EINTR:
			if timed && r.deadline != 0 {
				left := r.deadline - time.Since(clockBase)
				if left <= 0 {
					return 0, nil
				}
				r.ts.Set(left)
			}
			continue
		}
		return 0, fmt.Errorf("uring: io_uring_enter: %w", errno)
	}
}

// CQReady returns how many CQEs are waiting to be copied out by PeekCQEs.
func (r *Ring) CQReady() uint32 {
	if r.closed {
		return 0
	}
	// acquire: pairs with the kernel's release store of cq.tail (io_commit_cqring).
	return r.cqTail.Load() - r.cqHead.Load()
}

// PeekCQEs copies up to len(dst) completions into dst, oldest first, frees their CQ
// slots, and returns how many it copied. It does not wait.
//
// It sees what the kernel has posted to the CQ. With DEFER_TASKRUN most completions
// (network I/O, MSG_RING) are posted only when this thread enters the kernel with
// GETEVENTS: call [Ring.Submit] (which does that when the kernel signals pending task work)
// or SubmitAndWait first. If the CQ overflowed (IORING_SQ_CQ_OVERFLOW; with
// IORING_FEAT_NODROP the kernel keeps the extra CQEs) and dst has room left, PeekCQEs
// enters the kernel once with GETEVENTS to flush them into the CQ, so nothing is lost.
func (r *Ring) PeekCQEs(dst []CQE) int {
	if r.closed {
		return 0
	}
	n := r.copyCQEs(dst)
	if n < len(dst) && r.sqFlags.Load()&sqCQOverflow != 0 {
		// The error, if any, is reported by the next Submit or SubmitAndWait.
		_, _ = r.enter(0, 0, EnterGetEvents, false)
		n += r.copyCQEs(dst[n:])
	}
	return n
}

func (r *Ring) copyCQEs(dst []CQE) int {
	head := r.cqHead.Load() // we are the only writer of cq.head
	// acquire: pairs with the kernel's release store of cq.tail (io_commit_cqring), so the
	// CQE contents are visible.
	tail := r.cqTail.Load()
	n := min(int(tail-head), len(dst))
	for i := range n {
		dst[i] = r.cqes[(head+uint32(i))&r.cqMask]
	}
	if n > 0 {
		// Memory: cq.head is a 32-bit word of its own in the CQ mapping (cq_off.head),
		// written only here with one 32-bit store; cq.flags and the ring flags in the SQ
		// mapping (sq.flags) are never written by us, only loaded.
		// release: pairs with the kernel's load of cq.head before it reuses slots
		// (io_get_cqe), so our copies are done before the slots are overwritten.
		r.cqHead.Store(head + uint32(n))
	}
	return n
}

// register calls io_uring_register(2), retrying EINTR.
func (r *Ring) register(op RegisterOp, arg unsafe.Pointer, nrArgs uint32) (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	for {
		// Memory: arg points at memory the caller keeps alive for the call; the kernel
		// copies what it keeps.
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uintptr(op), uintptr(arg),
			uintptr(nrArgs), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, fmt.Errorf("uring: io_uring_register(%d): %w", op, errno)
		}
		return int(n), nil
	}
}

// registerProbe fills buf with IORING_REGISTER_PROBE.
func (r *Ring) registerProbe(buf *probeBuf) error {
	// Memory: buf is only used during the call.
	_, err := r.register(RegisterProbe, unsafe.Pointer(buf), probeOpsMax)
	return err
}

// RegisterEventfd makes the kernel signal the eventfd fd whenever it posts a CQE
// (IORING_REGISTER_EVENTFD, Linux 5.2). The fd stays owned by the caller; unregister before
// closing it. Errors wrap the errno (EBUSY if one is already registered).
func (r *Ring) RegisterEventfd(fd int) error {
	v := int32(fd)
	// Memory: v is only read during the call.
	_, err := r.register(RegisterEventfd, unsafe.Pointer(&v), 1)
	return err
}

// UnregisterEventfd removes the eventfd registered with RegisterEventfd
// (IORING_UNREGISTER_EVENTFD). Errors wrap the errno (ENXIO if none is registered).
func (r *Ring) UnregisterEventfd() error {
	_, err := r.register(UnregisterEventfd, nil, 0)
	return err
}

// RegisterRingFD registers the ring fd with the calling thread's io_uring context
// (IORING_REGISTER_RING_FDS, Linux 5.18), so io_uring_enter skips the fd lookup
// (IORING_ENTER_REGISTERED_RING). New does it automatically when SINGLE_ISSUER is granted.
// The registration belongs to the calling thread: use the ring only from it afterwards.
// Close unregisters it. A second call is a no-op.
func (r *Ring) RegisterRingFD() error {
	if r.ringFDIndex >= 0 {
		return nil
	}
	upd := rsrcUpdate{Offset: ^uint32(0), Data: uint64(r.fd)} // offset -1: any free slot
	// Memory: upd is only used during the call; the kernel writes the chosen slot back.
	n, err := r.register(RegisterRingFDs, unsafe.Pointer(&upd), 1)
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("uring: io_uring_register(%d): registered %d ring fds, want 1", RegisterRingFDs, n)
	}
	r.ringFDIndex = int(upd.Offset)
	r.enterFD = int(upd.Offset)
	r.enterFlags |= EnterRegisteredRing
	return nil
}

// RegisterBuffersSparse registers a table of n empty slots for fixed buffers
// (IORING_REGISTER_BUFFERS2 with IORING_RSRC_REGISTER_SPARSE, Linux 5.19), which
// [Ring.UpdateBuffer] fills and operations name by slot (SEND_ZC with
// RecvsendFixedBuf: [SQE.PrepSendZCFixed]). The kernel refuses a second table (EBUSY).
// Close releases it with the ring. Errors wrap the errno.
func (r *Ring) RegisterBuffersSparse(n uint32) error {
	reg := rsrcRegister{Nr: n, Flags: rsrcRegisterSparse}
	// Memory: reg is only read during the call.
	_, err := r.register(RegisterBuffers2, unsafe.Pointer(&reg), uint32(unsafe.Sizeof(reg)))
	return err
}

// UpdateBuffer puts buf in slot i of the fixed-buffer table
// (IORING_REGISTER_BUFFERS_UPDATE, Linux 5.13), replacing what the slot held. The
// kernel pins buf's pages until the slot is replaced or the ring closes, and charges
// them to RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK.
//
// Memory: buf must stay allocated, and for Go-heap memory pinned, until then: the
// kernel reads (or writes) it whenever an operation names slot i.
//
// Errors wrap the errno: ENOMEM past RLIMIT_MEMLOCK, EINVAL for a slot outside the
// table or an empty buf, ENXIO without a table.
func (r *Ring) UpdateBuffer(i uint32, buf []byte) error {
	if len(buf) == 0 {
		return fmt.Errorf("uring: update buffer slot %d: empty buffer: %w", i, unix.EINVAL)
	}
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	upd := rsrcUpdate2{Offset: i, Data: uint64(uintptr(unsafe.Pointer(&iov))), Nr: 1}
	// Memory: upd and iov are only read during the call; the kernel pins buf's pages
	// for the slot itself.
	n, err := r.register(RegisterBuffersUpdate, unsafe.Pointer(&upd), uint32(unsafe.Sizeof(upd)))
	runtime.KeepAlive(&iov)
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("uring: io_uring_register(%d): updated %d buffers, want 1", RegisterBuffersUpdate, n)
	}
	return nil
}

// RegisterFilesSparse registers a table of n empty slots for direct descriptors
// (IORING_REGISTER_FILES2 with IORING_RSRC_REGISTER_SPARSE, Linux 5.19): operations that
// create descriptors with FileIndexAlloc fill them, and IOSQE_FIXED_FILE names them.
// The kernel refuses a table larger than RLIMIT_NOFILE (EMFILE) and a second table
// (EBUSY). Close releases it with the ring. Errors wrap the errno.
func (r *Ring) RegisterFilesSparse(n uint32) error {
	reg := rsrcRegister{Nr: n, Flags: rsrcRegisterSparse}
	// Memory: reg is only read during the call.
	_, err := r.register(RegisterFiles2, unsafe.Pointer(&reg), uint32(unsafe.Sizeof(reg)))
	return err
}
