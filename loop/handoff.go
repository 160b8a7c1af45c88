package loop

import (
	"sync"
	"sync/atomic"
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

// handoffInbox holds the hand-offs on their way to a loop over MSG_RING.
// Its methods are safe for concurrent use.
type handoffInbox struct {
	mu       sync.Mutex
	ringFD   int // the loop's ring fd while it accepts messages; -1 otherwise
	seq      uint32
	inflight map[uint32]handoff

	// Counters for tests and benchmarks.
	viaMsgRing atomic.Uint64 // hand-offs adopted from a MSG_RING CQE
	fallbacks  atomic.Uint64 // MSG_RING hand-offs that fell back to the queue
}

// open makes the inbox accept messages for the ring ringFD (ringFD < 0:
// none, the loop's backend cannot receive them).
func (in *handoffInbox) open(ringFD int) {
	in.mu.Lock()
	in.ringFD = ringFD
	if in.inflight == nil {
		in.inflight = make(map[uint32]handoff)
	}
	in.mu.Unlock()
}

// reserve registers h as on its way to the loop and returns its sequence
// number and the ring fd to send the message to; ok is false when the inbox
// is closed (the caller then uses the MPSC queue).
func (in *handoffInbox) reserve(h handoff) (seq uint32, ringFD int, ok bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ringFD < 0 || in.inflight == nil {
		return 0, -1, false
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
		fds = append(fds, h.fd)
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
