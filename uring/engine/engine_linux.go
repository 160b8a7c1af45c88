package engine

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

// requiredOps are the operations the engine submits; New fails with a
// *uring.FeatureError when the probe lacks one.
var requiredOps = []uring.Op{
	uring.OpRead, uring.OpAsyncCancel, uring.OpLinkTimeout, uring.OpAccept,
	uring.OpConnect, uring.OpRecv, uring.OpSend, uring.OpSendmsg, uring.OpClose,
	uring.OpShutdown, uring.OpSplice, uring.OpTimeoutRemove, uring.OpPollAdd,
	// IORING_OP_SEND_ZC arrived in Linux 6.0 with multishot receive; its
	// presence is how the probe tells us IORING_RECV_MULTISHOT is there.
	uring.OpSendZC,
}

// bufGroup is the buffer group ID of the engine's provided-buffer ring.
const bufGroup = 0

// Engine is the io_uring engine: completion-style socket operations on one
// ring, the counterpart of the epoll engine (package epoll). See the package
// documentation for the contract.
//
// An Engine is not safe for concurrent use: create it with [New] on a
// goroutine locked to its OS thread (runtime.LockOSThread) and call every
// method but [Engine.Wake] from that goroutine.
type Engine struct {
	r      *uring.Ring
	cqes   []uring.CQE
	closed bool

	efd int // eventfd written by Wake
	// wakeMu orders Wake, from any goroutine, against Close: Wake writes to
	// efd only under the read lock while woff is false, so it never writes
	// into a descriptor that Close has closed and the process reused.
	wakeMu sync.RWMutex
	woff   bool
	efbuf  *[8]byte // target of the in-flight eventfd read, pinned
	pin    runtime.Pinner
	slabs  *uring.Slabs // Options.SendSlabChunk: send memory pinned once
	// fixedSlabs is, per send slab, whether it is registered as the fixed
	// buffer of the same slot (fixedSlab); nil without the table.
	fixedSlabs []slabReg
	armed      bool // the eventfd read is in flight

	ops int // caller operations whose final completion is not delivered

	// The operation table (token.go): rows by index, free indexes, and the
	// rows the caller may name by its token (Cancel, UpdateConnectTimeout).
	rows []row
	free []uint32
	byUD map[uint64]uint32
	mems []*opMem       // free operation memory
	sqes int            // SQEs under row tokens whose last CQE is not reaped
	zcOK map[int32]bool // Options.SendZC: whether a socket sends zero-copy (zeroCopyOK)
	// spliceFDs are process fds installed for direct descriptors that
	// SpliceIn/SpliceOut call splice(2) on, closed with them (CloseFD).
	spliceFDs map[int]int

	// br is the one provided-buffer ring: every multishot receive picks its
	// buffers from it. held are the buffers handed out by the last Wait,
	// given back at the next.
	br    *uring.BufRing
	held  []uint16
	grown bool // the ring grew during this Wait (at most once per Wait)
	// pending are completions that did not fit in the last Wait's dst: the
	// buffers of a receive bundle beyond its room, and everything reaped
	// after them. The next Wait reports them first, and hands out their
	// buffers (held) only then.
	pending []pendingCompletion
	ids     []uint16 // scratch for a bundle's buffer IDs

	// stash are CQEs a synchronous call took out of the ring before their
	// turn (Addrs); the next Wait reports them first.
	stash []uring.CQE
	// direct: the registered file table's size (Options.DirectFiles), 0
	// without one; watch holds each slot's hang-up watch, fdWatch each
	// process fd's (watchHangup).
	direct  int
	watch   []watchSlot
	fdWatch []watchSlot
	// directUsed counts the slots taken or promised to an accept in flight;
	// parked are the direct accept rows waiting for a free slot, lateFinals
	// those whose final NOP found no SQE (retried by Wait).
	directUsed int
	told       []uint32 // accept rows told the table is full (armAccepts) since a slot last freed
	parked     []uint32
	lateFinals []uint32

	// late are the receive cancels a hang-up watch could not queue at once,
	// lateWatch the tokens of the watches unwatch could not cancel at once.
	late      []uint64
	lateWatch []uint64

	// pipes are idle, empty pipes for splices (at most maxIdlePipes).
	pipes    []*splicePipe
	stepping int // rows that submit SQEs as they go (splices, polled): CancelFD marks them

	opts   Options
	zcMsg  bool // the probe has IORING_OP_SENDMSG_ZC (Linux 6.1)
	waitid bool // the probe has IORING_OP_WAITID (Linux 6.7)
	stats  Stats
}

// New sets up a ring and checks that the kernel has everything the engine
// needs. Call it on a goroutine locked to its OS thread.
//
// Errors: from uring.New (errors.Is works for unix.ENOSYS: no io_uring;
// unix.EPERM: disabled by sysctl or seccomp; unix.ENOMEM: RLIMIT_MEMLOCK);
// a *uring.FeatureError (matching errors.ErrUnsupported) naming the first
// missing feature or an Options.Taskrun tier the kernel refuses; an error
// wrapping unix.EINVAL for negative options.
func New(opts Options) (*Engine, error) {
	if opts.Entries < 0 || opts.RecvBufferSize < 0 || opts.RecvBuffers < 0 || opts.RecvBuffersMax < 0 || opts.SendZC < 0 || opts.DirectFiles < 0 || opts.MinWait < 0 || opts.MinWaitBatch < 0 || opts.SendSlabChunk < 0 || opts.SendSlabChunks < 0 {
		return nil, fmt.Errorf("engine: negative option in %+v: %w", opts, unix.EINVAL)
	}
	var slabs *uring.Slabs
	if opts.SendSlabChunk > 0 {
		if opts.SendSlabChunks == 0 {
			opts.SendSlabChunks = 256
		}
		const perSlab = 64
		var err error
		if slabs, err = uring.NewSlabs(opts.SendSlabChunk, perSlab, (opts.SendSlabChunks+perSlab-1)/perSlab); err != nil {
			return nil, fmt.Errorf("engine: send slabs: %w", err)
		}
	}
	if opts.Entries == 0 {
		opts.Entries = DefaultEntries
	}
	if opts.RecvBufferSize == 0 {
		opts.RecvBufferSize = DefaultRecvBufferSize
	}
	if opts.RecvBuffers == 0 {
		opts.RecvBuffers = DefaultRecvBuffers
	}
	opts.RecvBuffersMax = max(opts.RecvBuffersMax, opts.RecvBuffers)
	if opts.RecvBuffersMax > 1<<15 {
		return nil, fmt.Errorf("engine: RecvBuffersMax %d above 32768: %w", opts.RecvBuffersMax, unix.EINVAL)
	}
	r, err := uring.New(uint32(opts.Entries), &uring.Options{Taskrun: opts.Taskrun})
	if err != nil {
		return nil, err
	}
	p, err := checkRing(r)
	if err != nil {
		return nil, errors.Join(err, r.Close())
	}
	if !r.Features().Has(uring.FeatMinTimeout) {
		opts.MinWait = 0 // before 6.12: plain waits
	}
	if !r.Features().Has(uring.FeatRecvsendBundle) || bundleReorders() {
		// Before 6.10: a buffer per CQE; and never on a kernel known to
		// reorder bundles.
		opts.RecvBundle = false
	}
	if opts.MinWaitBatch == 0 {
		opts.MinWaitBatch = 32
	}
	// A blocking eventfd: io_uring then waits for it by polling instead of
	// failing the read with EAGAIN.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("engine: eventfd: %w", err), r.Close())
	}
	// The ring has room for RecvBuffersMax buffers but starts with
	// RecvBuffers: it grows on ENOBUFS, and an untouched buffer costs no
	// resident memory.
	br, err := r.NewBufRingProvided(bufGroup, uint16(opts.RecvBuffersMax), opts.RecvBufferSize, uint16(opts.RecvBuffers))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("engine: buffer ring: %w", err), unix.Close(efd), r.Close())
	}
	if opts.RecvBundle {
		if err := br.TrackBundles(); err != nil {
			return nil, errors.Join(fmt.Errorf("engine: buffer ring: %w", err), br.Close(), unix.Close(efd), r.Close())
		}
		// Uncapped bundles would let one socket take every free buffer
		// per completion: without the cap, no bundles.
		capped, err := probeBundleCap(r, br)
		if err != nil {
			return nil, errors.Join(err, br.Close(), unix.Close(efd), r.Close())
		}
		opts.RecvBundle = capped
	}
	e := &Engine{r: r, cqes: make([]uring.CQE, 256), efd: efd, efbuf: new([8]byte), br: br,
		byUD: make(map[uint64]uint32), opts: opts, slabs: slabs}
	e.zcMsg = p.Supported(uring.OpSendmsgZC)
	e.waitid = p.Supported(uring.OpWaitid)
	if opts.DirectFiles > 0 && directOps(p) {
		if err := e.registerDirect(opts.DirectFiles); err != nil {
			return nil, errors.Join(err, br.Close(), unix.Close(efd), r.Close())
		}
	}
	if opts.SendZC > 0 && slabs != nil && !opts.NoFixedSendBuffers {
		// Zero-copy sends from the slabs name them as fixed buffers, one
		// slot per slab, registered on first use (fixedSlab). Without the
		// table (a kernel before 5.19) they map their pages per send.
		if err := r.RegisterBuffersSparse(uint32(slabs.MaxSlabs())); err == nil {
			e.fixedSlabs = make([]slabReg, slabs.MaxSlabs())
		}
	}
	// Memory: efbuf's address goes into every eventfd READ SQE; pinned until
	// Close has reaped the last read.
	e.pin.Pin(e.efbuf)
	return e, nil
}

// slabReg is a send slab's standing in the fixed-buffer table.
type slabReg uint8

const (
	slabUnregistered slabReg = iota // not tried yet
	slabRegistered                  // the fixed buffer of the slot of its number
	slabRefused                     // the kernel refused it (ENOMEM): sends map its pages
)

// fixedSlab returns the fixed-buffer slot of the send slab that holds p,
// registering the slab on its first zero-copy send, or -1: no table, p
// outside the slabs, or a slab the kernel refused.
func (e *Engine) fixedSlab(p []byte) int {
	if e.fixedSlabs == nil {
		return -1
	}
	i := e.slabs.Index(p)
	if i < 0 || i >= len(e.fixedSlabs) {
		return -1
	}
	switch e.fixedSlabs[i] {
	case slabRegistered:
		return i
	case slabRefused:
		return -1
	}
	// Memory: the slab stays allocated and pinned until e.slabs.Close, after
	// the ring (and its table) is closed; the registration pins its pages
	// for the kernel besides.
	if err := e.r.UpdateBuffer(uint32(i), e.slabs.Slab(i)); err != nil {
		e.fixedSlabs[i] = slabRefused
		return -1
	}
	e.fixedSlabs[i] = slabRegistered
	return i
}

// checkRing returns the ring's probe, or a *uring.FeatureError naming the
// first missing feature.
func checkRing(r *uring.Ring) (*uring.Probe, error) {
	if !r.Features().Has(uring.FeatExtArg) {
		return nil, &uring.FeatureError{Feature: "IORING_FEAT_EXT_ARG"}
	}
	p, err := r.Probe()
	if err != nil {
		return nil, err
	}
	for _, op := range requiredOps {
		if !p.Supported(op) {
			return nil, &uring.FeatureError{Feature: op.String()}
		}
	}
	return p, nil
}

// SendSlabs returns the engine's pinned send memory (nil without
// Options.SendSlabChunk): chunks from its Get, given back with Put once no
// send uses them, go to [Engine.Send] without a pin per operation. It is
// closed with the engine.
func (e *Engine) SendSlabs() *uring.Slabs { return e.slabs }

// RingFD returns the ring's fd when the kernel has IORING_OP_MSG_RING
// (Linux 5.18), the target other engines pass to [Engine.MsgRing]; -1
// otherwise.
func (e *Engine) RingFD() int {
	if e.closed {
		return -1
	}
	p, err := e.r.Probe()
	if err != nil || !p.Supported(uring.OpMsgRing) {
		return -1
	}
	return e.r.FD()
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	st := e.stats
	if !e.closed {
		st.RecvBuffers = e.br.Provided()
	}
	return st
}

// Wake makes a Wait blocked on another goroutine return. Safe for
// concurrent use, also with and after Close.
//
// Errors: ErrClosed after Close; the eventfd write's, wrapped.
func (e *Engine) Wake() error {
	e.wakeMu.RLock()
	defer e.wakeMu.RUnlock()
	if e.woff {
		return ErrClosed
	}
	var one = [8]byte{1}
	if _, err := unix.Write(e.efd, one[:]); err != nil {
		return fmt.Errorf("engine: wake: %w", err)
	}
	return nil
}

// InFlight reports the operations submitted whose final completion Wait
// has not returned yet. Zero after Close.
func (e *Engine) InFlight() int {
	n := e.ops
	for i := range e.pending {
		if endsOp(&e.pending[i].c) {
			n++ // its CQE was reaped, but Wait has not reported it yet
		}
	}
	return n
}

// armWake queues the read on the eventfd that Wake completes.
func (e *Engine) armWake() bool {
	if e.armed {
		return true
	}
	s, ok := e.r.GetSQE()
	if !ok {
		return false
	}
	s.PrepRead(e.efd, e.efbuf[:], 0)
	s.SetUserData(tokWake)
	e.armed = true
	return true
}

// Wait submits the operations queued since the last call, waits up to
// timeout for at least one completion or a wake-up (timeout 0: do not
// block; negative: no limit), and writes completions to dst: it returns how
// many. A wake-up produces no completion, so Wait may return 0. Completions
// that do not fit stay in the kernel's queue for the next Wait. The Buf of a
// multishot receive from the previous Wait is invalid once Wait is called.
//
// Errors: ErrClosed; an empty dst (unix.EINVAL); io_uring_enter's, wrapped
// (the engine is then unusable but Close still works).
func (e *Engine) Wait(timeout time.Duration, dst []Completion) (int, error) {
	if e.closed {
		return 0, ErrClosed
	}
	if len(dst) == 0 {
		return 0, fmt.Errorf("engine: wait with empty dst: %w", unix.EINVAL)
	}
	e.recycle()
	if len(e.late) > 0 {
		late := e.late
		e.late = nil
		for _, ud := range late {
			e.cancelRecv(ud)
		}
	}
	if len(e.lateWatch) > 0 {
		late := e.lateWatch
		e.lateWatch = nil
		for _, tok := range late {
			e.cancelWatch(tok)
		}
	}
	if len(e.lateFinals) > 0 {
		late := e.lateFinals
		e.lateFinals = nil
		for _, idx := range late {
			e.finalNop(idx)
		}
	}
	if !e.armWake() {
		// The SQ is full: submit what is queued without waiting, then arm.
		if _, err := e.r.Submit(); err != nil {
			return 0, err
		}
		e.armWake()
	}
	if e.r.CQReady() > 0 || len(e.stash) > 0 || len(e.pending) > 0 {
		timeout = 0 // completions wait already: submit, do not block
	}
	if e.opts.MinWait >= time.Microsecond && timeout != 0 {
		if _, err := e.r.SubmitAndWaitMin(uint32(e.opts.MinWaitBatch), timeout, e.opts.MinWait); err != nil {
			return 0, err
		}
	} else if _, err := e.r.SubmitAndWait(1, timeout); err != nil {
		return 0, err
	}
	e.grown = false
	return e.reap(dst), nil
}

// recycle gives the buffers the last Wait handed out back to the kernel.
func (e *Engine) recycle() {
	if len(e.held) == 0 {
		return
	}
	for _, id := range e.held {
		e.br.Add(id)
	}
	e.br.Advance()
	e.held = e.held[:0]
}

// reap turns available CQEs into completions in dst, at most len(dst): a
// CQE gives one completion (but for a receive bundle, see splitBundle), so it
// takes no more CQEs than dst has room for and the rest wait in the kernel's
// queue.
func (e *Engine) reap(dst []Completion) int {
	n := 0
	if len(e.pending) > 0 {
		// Completions that did not fit last time come before any CQE.
		k := min(len(e.pending), len(dst))
		for i, p := range e.pending[:k] {
			dst[i] = p.c
			if p.bid >= 0 {
				e.held = append(e.held, uint16(p.bid))
			}
		}
		n = k
		rest := copy(e.pending, e.pending[k:])
		clear(e.pending[rest:])
		e.pending = e.pending[:rest]
		if rest > 0 {
			return n
		}
	}
	if len(e.stash) > 0 {
		// CQEs taken out of the ring by a synchronous call (Addrs) first,
		// in their order.
		k := min(len(e.stash), len(dst)-n)
		n += e.handle(dst[n:], e.stash[:k])
		rest := copy(e.stash, e.stash[k:])
		e.stash = e.stash[:rest]
		if rest > 0 || len(e.pending) > 0 {
			return n
		}
	}
	for n < len(dst) {
		want := min(len(e.cqes), len(dst)-n)
		k := e.r.PeekCQEs(e.cqes[:want])
		n += e.handle(dst[n:], e.cqes[:k])
		if k < want || len(e.pending) > 0 {
			break
		}
	}
	return n
}

// bundleBuffers is the most provided buffers one receive completion takes
// with Options.RecvBundle (see RecvMultishot).
const bundleBuffers = 4

// pendingCompletion is a completion waiting for the next Wait, with the
// provided buffer it hands out (bid, or -1).
type pendingCompletion struct {
	c   Completion
	bid int32
}

// handle turns cqes (at most len(dst)) into completions in dst and returns
// how many; those that do not fit (after a receive bundle) wait in pending.
func (e *Engine) handle(dst []Completion, cqes []uring.CQE) int {
	n := 0
	for i := range cqes {
		c := &cqes[i]
		var d Completion
		bid := int32(-1)
		switch {
		case c.UserData < MsgTokens:
			// The caller's token: accept, multishot receive, close,
			// a message's own completion.
			if !c.More() {
				e.ops--
			}
			if e.opts.RecvBundle && c.Res > int32(e.br.BufSize()) && c.Flags&uring.CQEFlagBuffer != 0 {
				n = e.splitBundle(dst, n, c)
				continue
			}
			bid = e.complete(&d, c)
		case c.UserData < Reserved:
			// A message from another ring: no operation of ours.
			d = Completion{UserData: c.UserData, Res: c.Res, Flags: c.Flags}
		case c.UserData == tokIgnore:
			continue
		case c.UserData == tokWake:
			e.armed = false
			continue
		case c.UserData&^(1<<48-1) == tokWatch:
			e.onWatch(c)
			continue
		default:
			if !e.onRow(&d, c) {
				continue
			}
		}
		n = e.emit(dst, n, &d, bid)
	}
	return n
}

// emit puts d in dst[n] and returns n+1, handing out its provided buffer
// (bid >= 0), or, when dst is full or completions already wait, queues it
// for the next Wait and returns n.
func (e *Engine) emit(dst []Completion, n int, d *Completion, bid int32) int {
	if n < len(dst) && len(e.pending) == 0 {
		dst[n] = *d
		if bid >= 0 {
			e.held = append(e.held, uint16(bid))
		}
		return n + 1
	}
	e.pending = append(e.pending, pendingCompletion{c: *d, bid: bid})
	return n
}

// endsOp reports whether reporting d ends an operation: a final completion
// under a caller's token (not a message from another ring).
func endsOp(d *Completion) bool { return !d.More() && d.UserData < MsgTokens }

// complete fills d from the CQE of a pass-through operation and returns the
// provided buffer it carries, or -1.
func (e *Engine) complete(d *Completion, c *uring.CQE) int32 {
	*d = Completion{UserData: c.UserData, Res: c.Res, Flags: c.Flags}
	if c.Res == -int32(unix.ENOBUFS) {
		e.growRecvBuffers()
	}
	id, ok := c.BufferID()
	if !ok {
		return -1
	}
	if c.Res > 0 {
		d.Buf = e.br.Buffer(id, int(c.Res))
	}
	return int32(id)
}

// splitBundle emits the completions of a receive bundle's CQE (Res bytes in
// several provided buffers, the first named by the CQE): one per buffer, in
// ring order, each full but the last, all with FlagMore but the last, which
// has the CQE's flags. It returns the new n (see emit).
func (e *Engine) splitBundle(dst []Completion, n int, c *uring.CQE) int {
	first, _ := c.BufferID()
	size := e.br.BufSize()
	k := (int(c.Res) + size - 1) / size
	ids, err := e.br.BundleIDs(first, k, e.ids[:0])
	e.ids = ids[:0]
	if err != nil {
		// The CQE names buffers the ring did not hand out in this order: a
		// broken invariant between the kernel and the engine. Fail the
		// operation rather than deliver bytes from unknown buffers.
		d := Completion{UserData: c.UserData, Res: -int32(unix.EIO), Flags: c.Flags}
		return e.emit(dst, n, &d, -1)
	}
	e.stats.RecvBundles++
	e.stats.BundledBuffers += k
	left := int(c.Res)
	for i, id := range ids {
		m := min(left, size)
		left -= m
		d := Completion{UserData: c.UserData, Res: int32(m), Flags: c.Flags | FlagMore, Buf: e.br.Buffer(id, m)}
		if i == len(ids)-1 {
			d.Flags = c.Flags
		}
		n = e.emit(dst, n, &d, int32(id))
	}
	return n
}

// growRecvBuffers doubles the provided buffers, once per Wait, up to
// Options.RecvBuffersMax: called when a receive ended with ENOBUFS. The
// caller re-arms the receive; the bytes it could not take wait in the
// socket, so nothing is lost or reordered.
func (e *Engine) growRecvBuffers() {
	if e.grown {
		return
	}
	e.grown = true
	e.br.Grow(e.br.Provided())
}

// testHookSQE, set only by tests, runs before sqe takes an SQE; an error
// from it is sqe's, as when the SQ is full and its submission fails (the
// kernel refuses it, or runs out of memory), which tests cannot otherwise
// bring about on demand.
var testHookSQE func() error

// sqe returns a free SQE, submitting what is queued when the SQ is full.
func (e *Engine) sqe() (*uring.SQE, error) {
	if testHookSQE != nil {
		if err := testHookSQE(); err != nil {
			return nil, err
		}
	}
	if err := e.submitPerOp(); err != nil {
		return nil, err
	}
	if s, ok := e.r.GetSQE(); ok {
		return s, nil
	}
	if _, err := e.r.Submit(); err != nil {
		return nil, err
	}
	if s, ok := e.r.GetSQE(); ok {
		return s, nil
	}
	return nil, fmt.Errorf("engine: submission queue full: %w", unix.EBUSY)
}

// sqePair returns two consecutive free SQEs for a link: a link cannot span
// two submissions (the kernel ends a chain with the batch), so it submits
// what is queued first when fewer than two are free.
func (e *Engine) sqePair() (*uring.SQE, *uring.SQE, error) {
	if err := e.submitPerOp(); err != nil {
		return nil, nil, err
	}
	if e.r.SQSpaceLeft() < 2 {
		if _, err := e.r.Submit(); err != nil {
			return nil, nil, err
		}
	}
	s1, ok1 := e.r.GetSQE()
	if !ok1 {
		return nil, nil, fmt.Errorf("engine: submission queue full: %w", unix.EBUSY)
	}
	s2, ok2 := e.r.GetSQE()
	if !ok2 {
		// Impossible after SQSpaceLeft >= 2; s1 is taken, so make it
		// harmless rather than leave a dangling link.
		s1.PrepNop()
		s1.SetUserData(tokIgnore)
		return nil, nil, fmt.Errorf("engine: submission queue full: %w", unix.EBUSY)
	}
	return s1, s2, nil
}

// submitPerOp submits the SQEs queued so far when Options.SubmitPerOp is
// set: called before a new SQE is handed out, so each operation enters the
// kernel on its own (the last one with Wait's).
func (e *Engine) submitPerOp() error {
	if !e.opts.SubmitPerOp || e.r.SQSpaceLeft() == e.r.SQEntries() {
		return nil
	}
	_, err := e.r.Submit()
	return err
}

// checkToken refuses calls after Close and tokens in the reserved ranges.
func (e *Engine) checkToken(name string, ud uint64) error {
	if e.closed {
		return ErrClosed
	}
	if ud >= MsgTokens {
		return fmt.Errorf("engine: %s: user data %#x in the reserved range: %w", name, ud, unix.EINVAL)
	}
	return nil
}

// check refuses calls after Close and tokens in the reserved ranges.
func (e *Engine) check(name string, fd int, ud uint64) error {
	if e.closed {
		return ErrClosed
	}
	if ud >= MsgTokens {
		return fmt.Errorf("engine: %s fd %d: user data %#x in the reserved range: %w", name, fd, ud, unix.EINVAL)
	}
	if fd < 0 {
		return fmt.Errorf("engine: %s: fd %d: %w", name, fd, unix.EBADF)
	}
	return nil
}

// Close cancels every operation still in flight, reaps their completions
// without reporting them, and releases the ring, the eventfd, the buffers
// and the pipes. It waits at most about 5 s for the kernel to answer the
// cancels. Calling it again returns ErrClosed.
//
// Errors: ErrClosed; the failures of the cancels' waits and of releasing
// the ring and the eventfd, joined.
func (e *Engine) Close() error {
	if e.closed {
		return ErrClosed
	}
	var errs []error
	e.closed = true
	e.recycle()
	for _, idx := range e.parked {
		e.rows[idx].cancelled = true
		if e.rows[idx].sqes == 0 {
			e.ops-- // nothing in flight: it just ends
			e.freeRow(idx)
		} // else its notice NOP ends it (onAcceptDirect)
	}
	e.parked, e.lateFinals = nil, nil
	if e.ops > 0 || e.sqes > 0 || e.armed {
		// Everything left, the wake-up read included, is cancelled and
		// reaped without a report.
		if s, ok := e.r.GetSQE(); ok {
			s.PrepCancel(0, uring.CancelAny|uring.CancelAll)
			s.SetUserData(tokIgnore)
		}
		var sink [64]Completion
		deadline := time.Now().Add(5 * time.Second)
		for (e.ops > 0 || e.sqes > 0 || e.armed) && time.Now().Before(deadline) {
			if _, err := e.r.SubmitAndWait(1, 100*time.Millisecond); err != nil {
				errs = append(errs, fmt.Errorf("engine: close: %w", err))
				break
			}
			e.reap(sink[:])
			clear(sink[:])
			e.held = e.held[:0] // the ring is going: nothing to give back
		}
		if e.armed {
			errs = append(errs, errors.New("engine: eventfd read not reaped at close"))
		}
	}
	if err := e.br.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := e.r.Close(); err != nil {
		errs = append(errs, err)
	}
	// The ring is gone: the kernel holds no reference to efbuf, the rows'
	// memory, the send slabs or the pipes any more.
	e.pin.Unpin()
	e.slabs.Close()
	for i := range e.rows {
		if m := e.rows[i].mem; m != nil {
			m.release()
			e.rows[i].mem = nil
		}
		if sp := e.rows[i].sp; sp != nil && sp.p != nil {
			e.putPipe(sp.p, false)
		}
	}
	e.rows, e.free, e.mems = nil, nil, nil
	clear(e.byUD)
	for _, p := range e.pipes {
		e.putPipe(p, false)
	}
	for _, f := range e.spliceFDs {
		unix.Close(f)
	}
	e.spliceFDs = nil
	e.pipes = nil
	e.late, e.lateWatch, e.held, e.pending = nil, nil, nil, nil
	e.ops, e.sqes, e.armed = 0, 0, false
	e.wakeMu.Lock()
	e.woff = true
	e.wakeMu.Unlock()
	if err := unix.Close(e.efd); err != nil {
		errs = append(errs, fmt.Errorf("engine: close eventfd: %w", err))
	}
	return errors.Join(errs...)
}

// RecvBundle reports whether multishot receives use bundles
// (Options.RecvBundle, and the kernel has IORING_FEAT_RECVSEND_BUNDLE).
func (e *Engine) RecvBundle() bool { return e.opts.RecvBundle }

// MinWait reports the minimum wait in effect (Options.MinWait, or 0 when
// off or the kernel lacks IORING_FEAT_MIN_TIMEOUT).
func (e *Engine) MinWait() time.Duration { return e.opts.MinWait }
