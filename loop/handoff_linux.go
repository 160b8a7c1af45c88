package loop

import (
	"fmt"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/uring/engine"
	"golang.org/x/sys/unix"
)

// testHookHandoffQueue, when set by a test or benchmark, makes io_uring
// loops hand connections off through the MPSC queue instead of MSG_RING.
var testHookHandoffQueue bool

// testHookBeforeMsgRing, when set by a test, runs on the acceptor's
// goroutine after a hand-off is registered in the target's inbox and before
// its MSG_RING is prepared, with the target ring fd; it returns the fd to
// send to (a test passes a bad one to make the message fail).
var testHookBeforeMsgRing func(target *Loop, ringFD int) int

// handOff gives the accepted connection h to the loop target: over
// MSG_RING when both run io_uring, through target's MPSC queue otherwise or
// when the message cannot be submitted. Call on l's goroutine.
func (l *Loop) handOff(target *Loop, h handoff) {
	if engine.IsDirect(h.fd) {
		l.handOffDirect(target, h)
		return
	}
	if mr, ok := l.be.(msgRinger); ok && !testHookHandoffQueue && l.inbox.ringFD >= 0 {
		if seq, ringFD, ok := target.inbox.reserve(h); ok {
			if hook := testHookBeforeMsgRing; hook != nil {
				ringFD = hook(target, ringFD)
			}
			err := mr.msgRing(ringFD, uint32(h.fd), handoffToken(opHandoffIn, 0, seq),
				handoffToken(opHandoffOut, target.index, seq))
			if err == nil {
				return
			}
			if h, ok := target.inbox.take(seq, h.fd); ok {
				target.inbox.fallbacks.Add(1)
				target.postConn(h)
			}
			return
		}
	}
	target.postConn(h)
}

// handoffDirect marks the token of a hand-off message that carries a
// direct descriptor (in its generation bits): its res is the slot the
// descriptor landed in on the target, not an fd of the acceptor's.
const handoffDirect = 1

// handOffDirect moves the direct descriptor h.fd to target's ring with
// IORING_MSG_SEND_FD, spending one slot target promised (see handoff.go);
// when target cannot take it now, l serves the connection itself. Call on
// l's goroutine.
func (l *Loop) handOffDirect(target *Loop, h handoff) {
	dm, ok := l.be.(directMover)
	if !ok || l.group == nil {
		l.serveHandoff(h)
		return
	}
	seq, ringFD, ok := target.inbox.reserve(h)
	if !ok {
		if target.inbox.short.Load() {
			target.wakeup(false) // to top its credit up
		}
		l.serveHandoff(h)
		return
	}
	if hook := testHookBeforeMsgRing; hook != nil {
		ringFD = hook(target, ringFD)
	}
	tok := handoffToken(opHandoffOut, target.index, seq)
	if err := dm.sendDirect(ringFD, h.fd, handoffToken(opHandoffIn, handoffDirect, seq), tok); err != nil {
		if _, ok := target.inbox.take(seq, -1); ok {
			target.inbox.refund()
			target.inbox.fallbacks.Add(1)
		}
		l.serveHandoff(h)
		return
	}
	if l.outbox == nil {
		l.outbox = make(map[uint64]handoff)
	}
	l.outbox[tok] = h
}

// onHandoffDirectOut handles the acceptor's own CQE of handOffDirect's
// MSG_RING: delivered, it closes its copy of the descriptor; not
// delivered, it serves the connection itself.
func (l *Loop) onHandoffDirectOut(c *completion, h handoff) {
	_, seq, target := splitToken(c.UserData)
	var t *Loop
	if l.group != nil && int(target) < len(l.group.loops) {
		t = l.group.loops[target]
	}
	switch {
	case c.Res >= 0:
		l.dropFD(h.fd) // the target has its own copy
	case c.Res == -int32(unix.EOVERFLOW):
		// The target got the descriptor but not the message that names
		// its slot: its copy keeps the socket open until its ring closes.
		// Shut the socket down so the peer is not left waiting.
		if t != nil {
			t.inbox.take(seq, -1)
		}
		if dm, ok := l.be.(directMover); ok {
			_ = dm.shutdown(h.fd)
		}
		l.dropFD(h.fd)
		l.report(&conn.OpError{Op: "hand-off", Backend: l.be.kind().String(), Err: unix.EOVERFLOW})
	default:
		// Not delivered (the target's ring closed, its table filled
		// against its promise, ...): the connection stays here.
		if t != nil {
			if _, ok := t.inbox.take(seq, -1); ok {
				t.inbox.refund()
				t.inbox.fallbacks.Add(1)
			}
		}
		l.serveHandoff(h)
	}
}

// onHandoffDirectIn adopts the direct descriptor another loop moved into
// slot of this loop's table, or closes it when l is stopping.
func (l *Loop) onHandoffDirectIn(seq uint32, slot int32) {
	dm, ok := l.be.(directMover)
	if !ok {
		return
	}
	h, ok := l.inbox.take(seq, -1)
	fd, err := dm.adoptDirect(slot, h.network == "tcp")
	if err != nil {
		l.report(fmt.Errorf("loop: adopt a connection moved from another loop: %w", err))
		return
	}
	l.topUpInbox() // the slot spent a credit
	if !ok {
		l.net.stale++
		l.dropFD(fd)
		return
	}
	if l.stopping {
		l.dropFD(fd)
		return
	}
	l.inbox.viaMsgRing.Add(1)
	l.startConn(fd, h.network, func() conn.Handler { return h.factory(l) })
}

// topUpInbox promises slots of l's direct descriptor table to the
// connections other loops move in (see handoffInbox.topUp).
func (l *Loop) topUpInbox() {
	if dm, ok := l.be.(directMover); ok {
		l.inbox.topUp(dm.directFiles(), dm.reserveDirect)
	}
}

// dispatchHandoff handles the completions of hand-off tokens.
func (l *Loop) dispatchHandoff(k opKind, c *completion) {
	switch k {
	case opHandoffIn:
		l.onHandoffIn(c)
	case opHandoffOut:
		l.onHandoffOut(c)
	}
}

// onHandoffIn adopts the fd another loop's MSG_RING delivered, or closes it
// when l is stopping (c.res is the fd).
func (l *Loop) onHandoffIn(c *completion) {
	_, seq, flags := splitToken(c.UserData)
	if flags&handoffDirect != 0 {
		l.onHandoffDirectIn(seq, c.Res)
		return
	}
	h, ok := l.inbox.take(seq, int(c.Res))
	if !ok {
		l.net.stale++
		return
	}
	if l.stopping || l.be == nil {
		unix.Close(h.fd)
		return
	}
	l.inbox.viaMsgRing.Add(1)
	l.startConn(h.fd, h.network, func() conn.Handler { return h.factory(l) })
}

// onHandoffOut handles the acceptor's own CQE of a hand-off's MSG_RING: on
// an error the message was not delivered, and unless the target's inbox was
// drained meanwhile the fd goes through the target's MPSC queue instead.
func (l *Loop) onHandoffOut(c *completion) {
	if h, ok := l.outbox[c.UserData]; ok {
		delete(l.outbox, c.UserData)
		l.onHandoffDirectOut(c, h)
		return
	}
	if c.Res >= 0 || l.group == nil {
		return
	}
	_, seq, target := splitToken(c.UserData)
	if int(target) >= len(l.group.loops) {
		l.net.stale++
		return
	}
	t := l.group.loops[target]
	if h, ok := t.inbox.take(seq, -1); ok {
		t.inbox.fallbacks.Add(1)
		t.postConn(h)
	}
}
