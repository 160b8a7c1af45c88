package loop

import (
	"github.com/ringmachine/ringmachine/conn"
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
	_, seq, _ := splitToken(c.tok)
	h, ok := l.inbox.take(seq, int(c.res))
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
	if c.res >= 0 || l.group == nil {
		return
	}
	_, seq, target := splitToken(c.tok)
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
