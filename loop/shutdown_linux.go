package loop

import (
	"errors"
	"fmt"
	"time"
)

// Stop's side of the connections: stop accepting, flush, then close.

// closesPending reports work that must not wait for a blocking poll: Unbinds
// due (of connections or file watches), or held data to deliver.
func (l *Loop) closesPending() bool {
	return len(l.net.closing) > 0 || len(l.net.resumed) > 0 || len(l.net.fileUnbinds) > 0
}

// stopServers stops every server (the first step of shutdown).
func (l *Loop) stopServers() error {
	var errs []error
	for len(l.net.servers) > 0 {
		errs = append(errs, l.net.servers[0].Stop())
	}
	return errors.Join(errs...)
}

// outputPending reports whether an open connection still has output queued.
func (l *Loop) outputPending() bool {
	for _, s := range l.net.socks {
		if s == nil || s.closed() {
			continue
		}
		if s.out.Len() > 0 || len(s.files) > 0 || (s.dg != nil && len(s.dg.dgrams) > 0) || s.sendInFlight {
			return true
		}
	}
	return false
}

// shutdownConns is the connection part of shutdown: flush output for up to
// Options.StopTimeout (I/O only: no ticks, no timers), close every
// connection and deliver its Unbind, then reap every operation and close
// every fd.
func (l *Loop) shutdownConns() error {
	var errs []error
	if l.opts.StopTimeout > 0 {
		deadline := time.Now().Add(l.opts.StopTimeout)
		for l.outputPending() {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			l.flushSends()
			if err := l.be.poll(min(left, 50*time.Millisecond), l.dispatchFn); err != nil {
				errs = append(errs, err)
				break
			}
			l.updateTime()
			l.runCloses()
		}
	}
	for _, s := range l.net.socks {
		if s != nil && !s.closed() && s.kind != sockChild { // (a child's wait ends with it)
			l.closeSock(s, nil)
		}
	}
	l.runCloses()
	// Besides the sockets' operations, wait for those no socket owns: the
	// closes of descriptors met while stopping (a hand-off or an accept
	// dispatched by the polls here, dropFD), whose completions nothing
	// waits for. Left in flight, they would outlive the ring.
	deadline := time.Now().Add(5 * time.Second)
	for (l.net.live > 0 || l.be.inFlight() > 0) && time.Now().Before(deadline) {
		l.stopChildren()
		if err := l.be.poll(100*time.Millisecond, l.dispatchFn); err != nil {
			errs = append(errs, err)
			break
		}
		l.runCloses()
	}
	if l.net.live > 0 {
		errs = append(errs, fmt.Errorf("loop: %d sockets still had operations in flight at stop", l.net.live))
	}
	for _, s := range l.net.resumed {
		s.resumeQ = false
	}
	// Generations survive a restart of the loop, so a token of this run can
	// never match a record of the next.
	clear(l.net.socks)
	// Pipes are closed with the backend (closePipes), when nothing in
	// flight can use them. The connection count carries over: every
	// connection is closed by now, so it is 0 unless the count is wrong,
	// which ConnectionCount after Run then shows.
	l.net = netState{stale: l.net.stale, nconns: l.net.nconns, socks: l.net.socks[:0], gens: l.net.gens,
		free: l.net.free[:0], pipes: l.net.pipes, allPipes: l.net.allPipes}
	for i := range l.net.gens {
		l.net.gens[i] = (l.net.gens[i] + 1) & tokGenMask
	}
	l.net.socks = append(l.net.socks, make([]*sock, len(l.net.gens))...)
	for i := len(l.net.gens) - 1; i >= 0; i-- {
		l.net.free = append(l.net.free, uint32(i))
	}
	return errors.Join(errs...)
}
