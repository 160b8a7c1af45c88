package loop

import (
	"sync"
	"sync/atomic"

	"github.com/ringmachine/ringmachine/uring/engine"
)

// Connections handed from a group's acceptor loop to another loop
// (AcceptHandoff) travel one of two ways:
//
//   - the target's MPSC queue (Loop.postConn): a locked append, then an
//     eventfd write when the target sleeps; the target adopts the fd in its
//     next tick phase. Every backend can do this.
//   - IORING_OP_MSG_RING (IORING_MSG_DATA), when both loops run io_uring:
//     the acceptor submits, on its own ring, a message to the target's ring
//     carrying the fd number as the CQE's res and a handoffIn token as its
//     user_data; the kernel posts that CQE on the target ring and wakes the
//     target's waiter, which adopts the fd when it dispatches the CQE. No
//     eventfd, no lock held by the target, and the acceptor's submit rides
//     along with the submit it makes anyway.
//
// BenchmarkGroupEcho measured reuse-port, MSG_RING hand-off and queue
// hand-off equal within noise on a 2-core VM, both for ping-pong over
// established connections and for connection churn ("connect/": connect,
// one round trip, close): the hand-off is cheap next to a TCP accept.
// MSG_RING is the io_uring hand-off by default because it costs fewer
// system calls at the same measured speed; reuse-port stays the default
// accept mode because it has no single acceptor. A direct descriptor moves
// into the target's table (IORING_MSG_SEND_FD); one whose message fails
// stays with loop 0, which serves it.
//
// Ownership of an fd on its way over MSG_RING is kept in the target's
// inbox, not in the message: the acceptor registers the hand-off there
// before it submits, and exactly one party takes it out again (by sequence
// number, under the inbox lock) and so owns the fd:
//
//   - the target, when it dispatches the message's CQE (it adopts the fd,
//     or closes it when it is stopping);
//   - the acceptor, when its own CQE for the MSG_RING reports an error
//     (the target ring is gone, its CQ overflowed, ...): it falls back to
//     the target's MPSC queue for that fd;
//   - the target, after its ring is closed: messages posted to a ring that
//     nobody reaps any more are lost, so it closes every fd still
//     registered (closeInbox). A message that was never delivered because
//     the ring fd was closed fails on the acceptor's side, which then finds
//     nothing to take.
//
// Once a target's inbox is closed, acceptors use its MPSC queue, which the
// loop and Group.Run drain (dropHandoffs) when the loop stops.
//
// A connection accepted as an io_uring direct descriptor is in no process
// table, so it cannot take the MPSC queue; it moves with IORING_MSG_SEND_FD
// instead (handOffDirect), from the acceptor's table into a free slot of
// the target's. That slot is taken without the target's knowledge, and a
// target whose own direct accepts counted it free would reset a peer (see
// engine.Engine.SendDirect), so the target promises slots ahead: its inbox
// holds a credit of slots it has counted as taken (topUp), and every direct
// hand-off spends one. With no credit left the acceptor serves the
// connection itself and asks the target to top up. Ownership follows the
// same rule as above, with one difference: the acceptor keeps its own copy
// of the descriptor until its MSG_RING completes, and then either closes it
// (delivered) or serves it (not delivered; the record is taken back and the
// credit refunded if the target has not drained it).

// handoffInbox holds the hand-offs on their way to a loop over MSG_RING.
// Its methods are safe for concurrent use.
type handoffInbox struct {
	mu       sync.Mutex
	ringFD   int // the loop's ring fd while it accepts messages; -1 otherwise
	seq      uint32
	inflight map[uint32]handoff

	// direct: the loop adopts direct descriptors moved in by MSG_RING;
	// credit counts the slots it has promised them (see topUp).
	direct bool
	credit int
	// short asks the loop to top the credit up (set by an acceptor that
	// found it low, read by the loop once per iteration).
	short atomic.Bool

	// Counters for tests and benchmarks.
	viaMsgRing atomic.Uint64 // hand-offs adopted from a MSG_RING CQE
	fallbacks  atomic.Uint64 // MSG_RING hand-offs that fell back to the queue
}

// open makes the inbox accept messages for the ring ringFD (ringFD < 0:
// none, the loop's backend cannot receive them); direct: and direct
// descriptors moved in, once topUp has promised slots.
func (in *handoffInbox) open(ringFD int, direct bool) {
	in.mu.Lock()
	in.ringFD = ringFD
	in.direct = direct && ringFD >= 0
	in.credit = 0
	if in.inflight == nil {
		in.inflight = make(map[uint32]handoff)
	}
	in.mu.Unlock()
}

// reserve registers h as on its way to the loop and returns its sequence
// number and the ring fd to send the message to; ok is false when the inbox
// is closed (the caller then uses the MPSC queue), or, for a direct
// descriptor, when the loop takes none or has no slot promised (the caller
// then serves it itself; the loop is asked to top its credit up).
func (in *handoffInbox) reserve(h handoff) (seq uint32, ringFD int, ok bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ringFD < 0 || in.inflight == nil {
		return 0, -1, false
	}
	if engine.IsDirect(h.fd) {
		if !in.direct || in.credit == 0 {
			in.short.Store(in.direct)
			return 0, -1, false
		}
		in.credit--
		if in.credit < handoffCredit/2 {
			in.short.Store(true)
		}
	}
	for {
		in.seq++
		if _, taken := in.inflight[in.seq]; !taken {
			break
		}
	}
	in.inflight[in.seq] = h
	return in.seq, in.ringFD, true
}

// take removes and returns the hand-off seq; fd >= 0 must match its fd (a
// message from an unexpected sender, say through a reused ring fd number,
// then takes nothing). ok is false when someone else took it already.
func (in *handoffInbox) take(seq uint32, fd int) (handoff, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	h, ok := in.inflight[seq]
	if !ok || (fd >= 0 && h.fd != fd) {
		return handoff{}, false
	}
	delete(in.inflight, seq)
	return h, true
}

// handoffCredit is the most slots a loop promises to direct descriptors
// moved in (a smaller table promises an eighth of itself): the kernel
// installs a descriptor moved in while the target runs (task work), and
// the target renews its promise as it adopts them, so the credit has to
// cover what a burst sends one loop while it is busy: with 64,
// TestGroupHandoffDirectSpreadsBurst (400 clients at once, 2 loops) fails
// every run, loop 0 keeping what loop 1 had no promise for; with 256 it
// spreads them 200/200, for 1.3 % of a table of 20,000 slots.
const handoffCredit = 256

// topUp promises slots to direct descriptors moved in until the credit is
// full again: reserve (the engine's ReserveDirect) counts them as taken and
// returns how many it could. table is the size of the loop's table.
func (in *handoffInbox) topUp(table int, reserve func(n int) int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.direct || in.ringFD < 0 {
		in.short.Store(false)
		return
	}
	full := min(handoffCredit, max(table/8, 1))
	if want := full - in.credit; want > 0 {
		in.credit += reserve(want)
	}
	// A table with no slot free stays short: the next iterations retry.
	in.short.Store(in.credit < full)
}

// refund gives back the credit of a direct hand-off that was not
// delivered (the slot was never filled).
func (in *handoffInbox) refund() {
	in.mu.Lock()
	if in.direct && in.ringFD >= 0 {
		in.credit++
	}
	in.mu.Unlock()
}

// shut stops accepting messages: called before the loop's ring closes.
func (in *handoffInbox) shut() {
	in.mu.Lock()
	in.ringFD = -1
	in.mu.Unlock()
}

// drain closes the fds of every hand-off still registered: called once the
// loop's ring is closed, when no CQE can deliver them any more.
func (in *handoffInbox) drain() {
	in.mu.Lock()
	in.ringFD = -1
	var fds []int
	for seq, h := range in.inflight {
		if !engine.IsDirect(h.fd) {
			// A direct descriptor's record names the acceptor's copy,
			// which the acceptor closes; the target's copy, if it got
			// one, died with its ring.
			fds = append(fds, h.fd)
		}
		delete(in.inflight, seq)
	}
	in.mu.Unlock()
	for _, fd := range fds {
		closeFD(fd)
	}
}

// msgRinger is implemented by backends that can pass hand-offs over
// IORING_OP_MSG_RING (the io_uring backend, on kernels that have it).
type msgRinger interface {
	// msgRingFD returns the fd other rings send messages to, or -1 when this
	// backend cannot send or receive them.
	msgRingFD() int
	// msgRing submits a MSG_RING to the ring ringFD: the target gets a CQE
	// with user_data data and res = res; this ring gets one with tok and
	// res 0 or -errno.
	msgRing(ringFD int, res uint32, data, tok uint64) error
}

// directMover is implemented by backends whose connections may be io_uring
// direct descriptors, which move between rings with IORING_MSG_SEND_FD (see
// the engine's SendDirect, ReserveDirect and AdoptDirect).
type directMover interface {
	// directFiles reports the size of the direct descriptor table (0: none).
	directFiles() int
	// sendDirect moves the direct descriptor fd to the ring ringFD, which
	// gets a completion with data and res = its slot; this ring gets one
	// with tok and res >= 0 once it is there, or -errno.
	sendDirect(ringFD, fd int, data, tok uint64) error
	// reserveDirect promises up to n slots to descriptors moved in.
	reserveDirect(n int) int
	// adoptDirect returns the fd of the descriptor moved into slot.
	adoptDirect(slot int32, tcp bool) (int, error)
	// shutdown shuts both directions of the socket fd down.
	shutdown(fd int) error
	// registerDirect moves the process fd fd into the table and returns
	// its direct descriptor (fd is closed), or an error leaving fd alone.
	registerDirect(fd int) (int, error)
}
