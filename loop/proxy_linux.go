package loop

import (
	"errors"
	"fmt"
	"os"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/connio"
	"golang.org/x/sys/unix"
)

// Proxying (ProxyTo): the bytes a source connection receives go to a
// target connection without passing through the source's handler.
//
// Between two plain stream sockets the bytes never enter user memory: the
// source splices what it receives into a pipe (spliceIn), and the pipe
// joins the target's send sequence as a segment, like a SendFile segment,
// at the point the target's queue had reached: bytes the target's handler
// queued before it go first, those queued after it go after it. The target
// splices the segment out (spliceOut), and the pipe goes back to the loop's
// pool. A source has at most maxProxyPipes pipes queued on its target and
// splices only while the target's queue (its own bytes plus the pipes') is
// below the proxy's buffer size, so a target that does not drain stops the
// reading from the source, which then backs up into the peer's TCP window.
//
// With TLS on either side the bytes must pass through crypto/tls: the
// source receives as usual and its plaintext is queued on the target
// (copied), under the same buffer bound. The same copy carries the bytes
// the source received before the proxy began or while its ordinary receive
// was being cancelled, so the stream keeps its order.

// DefaultProxyBuffer is the buffer size of a proxy started with a bufSize
// of 0: how many bytes may wait in the target's queue before the proxy
// stops reading from its source.
const DefaultProxyBuffer = 256 << 10

// maxProxyPipes bounds the pipes a source has queued on its target: one
// being sent while the next fills.
const maxProxyPipes = 2

// maxIdlePipes bounds the pipes the loop keeps for reuse.
const maxIdlePipes = 16

// proxyPipeSize is the capacity asked for each pipe: what one spliceIn may
// move.
const proxyPipeSize = 256 << 10

// proxyState is a source connection's proxy, in its flowState.
type proxyState struct {
	t       *sock
	buf     int   // stop reading while the target's queue is at or above buf
	limit   int64 // ProxyToN: end after this many bytes (0: no limit)
	moved   int64 // bytes sent on to the target
	splice  bool  // by splice (else copied)
	pipes   int   // pipes queued on the target
	stopped bool
	blocked bool // waiting for the target's queue to drain (copy mode)
}

// proxyPipe is a pipe between a source's spliceIn and its target's
// spliceOut.
type proxyPipe struct {
	r, w int
	size int // capacity in bytes
}

// proxy returns s's running proxy, or nil.
func (s *sock) proxy() *proxyState {
	if s.fl == nil || s.fl.px == nil || s.fl.px.stopped {
		return nil
	}
	return s.fl.px
}

// spliceBusy reports whether a spliceIn is in flight on s: no ordinary
// receive may run beside it.
func (s *sock) spliceBusy() bool { return s.fl != nil && s.fl.splicing != nil }

// ProxyTo makes s a proxy's source (see conn.Conn.ProxyTo).
func (s *sock) ProxyTo(target connio.Driver, bufSize int, n int64) error {
	if s.kind != sockStream {
		return conn.ErrNotStream
	}
	t, ok := target.(*sock)
	switch {
	case !ok || t == nil:
		return errors.New("loop: ProxyTo: the target is not a connection of a loop")
	case t.l != s.l:
		return errors.New("loop: ProxyTo: the target belongs to another loop")
	case t == s:
		return errors.New("loop: ProxyTo: a connection cannot proxy to itself")
	case t.kind != sockStream:
		return conn.ErrNotStream
	case bufSize < 0 || n < 0:
		return fmt.Errorf("loop: ProxyTo: negative buffer size %d or length %d", bufSize, n)
	case s.closed():
		return conn.ErrClosed
	case t.closing() || t.wrClosed:
		return fmt.Errorf("loop: ProxyTo: the target: %w", conn.ErrClosed)
	}
	if bufSize == 0 {
		bufSize = DefaultProxyBuffer
	}
	l := s.l
	if old := s.proxy(); old != nil {
		l.proxyEnd(s, nil)
	}
	px := &proxyState{t: t, buf: bufSize, limit: n, splice: s.tls() == nil && t.tls() == nil && s.pipe == 0 && t.pipe == 0}
	fl := s.flow()
	fl.px = px
	fl.proxied = 0
	tf := t.flow()
	tf.feeders = append(tf.feeders, s)
	// The ordinary receive stops (splice) or its bytes are forwarded (copy);
	// bytes held during a pause go first either way.
	l.updateRead(s)
	return nil
}

// StopProxy ends s's proxy; s's handler receives again.
func (s *sock) StopProxy() error {
	if s.proxy() == nil {
		return nil
	}
	s.l.proxyEnd(s, nil)
	return nil
}

// ProxiedBytes reports the bytes s's latest proxy sent on.
func (s *sock) ProxiedBytes() uint64 {
	if s.fl == nil {
		return 0
	}
	return s.fl.proxied
}

// proxyEnd stops s's proxy and runs the callback named by cb, if any. A
// spliceIn in flight is cancelled; what it moved still goes to the target
// (onSpliceIn).
func (l *Loop) proxyEnd(s *sock, cb func(*conn.Conn)) {
	px := s.fl.px
	px.stopped = true
	s.fl.px = nil
	if tf := px.t.fl; tf != nil {
		for i, f := range tf.feeders {
			if f == s {
				tf.feeders = append(tf.feeders[:i], tf.feeders[i+1:]...)
				break
			}
		}
	}
	if s.fl.splicing != nil && !s.closed() {
		if err := l.be.cancel(s.tok(opSpliceIn)); err != nil {
			l.fail(fmt.Errorf("loop: cancel: %w", err))
		}
	}
	if cb != nil && !s.closed() {
		c := s.c
		l.call(func() { cb(c) })
	}
	if !s.closed() {
		l.updateRead(s) // the ordinary receive again
	}
}

// proxyTargetClosed ends the proxies that feed t, which is closing or shut
// down for writing; their handlers hear of it just before t's Unbind
// (proxyTellUnbound).
func (l *Loop) proxyTargetClosed(t *sock) {
	for len(t.fl.feeders) > 0 {
		s := t.fl.feeders[0]
		t.fl.unbound = append(t.fl.unbound, s)
		l.proxyEnd(s, nil)
	}
}

// proxyTellUnbound runs ProxyTargetUnbound (conn.ProxyTargetWatcher) for
// the sources whose target t is being unbound, in the order they fed it.
func (l *Loop) proxyTellUnbound(t *sock) {
	srcs := t.fl.unbound
	t.fl.unbound = nil
	for _, s := range srcs {
		if w, ok := s.h.(conn.ProxyTargetWatcher); ok && !s.closed() {
			c := s.c
			l.call(func() { w.ProxyTargetUnbound(c) })
		}
	}
}

// full reports whether px's target has buf bytes or more queued.
func (px *proxyState) full() bool { return px.t.queued() >= px.buf }

// proxyForward sends data, received by s, on to its proxy's target
// (copied), up to the proxy's length; it returns what is left for s's
// handler (the bytes past the length, or all of them with no proxy).
func (l *Loop) proxyForward(s *sock, data []byte) []byte {
	px := s.proxy()
	if px == nil {
		return data
	}
	if px.t.closing() || px.t.wrClosed {
		l.proxyEnd(s, nil) // (proxyTargetClosed ends it first; a safeguard)
		return data
	}
	n := len(data)
	if px.limit > 0 {
		n = int(min(int64(n), px.limit-px.moved))
	}
	if n > 0 {
		l.proxyQueue(px.t, data[:n])
		px.moved += int64(n)
		s.fl.proxied += uint64(n)
	}
	if px.limit > 0 && px.moved >= px.limit {
		var cb func(*conn.Conn)
		if pc, ok := s.h.(conn.ProxyCompleter); ok {
			cb = pc.ProxyCompleted
		}
		l.proxyEnd(s, cb)
		return data[n:]
	}
	if px.full() && !px.blocked {
		px.blocked = true
		l.updateRead(s)
	}
	return nil
}

// proxyQueue queues b, copied, on the target t; the target's hard cap
// does not apply (the proxy's buffer size bounds it).
func (l *Loop) proxyQueue(t *sock, b []byte) {
	if t.closing() || t.wrClosed {
		return // its proxies end with it (proxyTargetClosed)
	}
	if t.tls() != nil {
		if err := t.tlsSend(b); err != nil {
			l.closeSock(t, err)
		}
		return
	}
	t.sendRaw(b)
}

// proxyDrained restarts the proxies feeding t once t's queue is below
// their buffer size (after a send of t's).
func (l *Loop) proxyDrained(t *sock) {
	for i := 0; i < len(t.fl.feeders); i++ {
		s := t.fl.feeders[i]
		px := s.fl.px
		if px.full() {
			continue
		}
		if px.blocked {
			px.blocked = false
			l.updateRead(s)
		} else if px.splice {
			l.proxyPump(s)
		}
	}
}

// proxyPump starts the next spliceIn of s's proxy when it may: s readable,
// no receive in flight, the target's queue below the buffer size and a
// pipe to spare.
func (l *Loop) proxyPump(s *sock) {
	px := s.proxy()
	if px == nil || !px.splice || s.spliceBusy() || s.recvArmed || s.rdEOF || !l.readable(s) {
		return
	}
	if s.heldLen() > 0 {
		// Received before the proxy began, or while the receive was being
		// cancelled: these go first, copied, at the start of the next I/O
		// phase (flushSends delivers them through proxyForward, then comes
		// back here). Not now: ProxyTo may be running inside a ReceiveData
		// whose handler has yet to send the rest of its chunk on.
		if !s.resumeQ {
			s.resumeQ = true
			l.net.resumed = append(l.net.resumed, s)
		}
		return
	}
	if px.full() || px.pipes >= maxProxyPipes {
		return // proxyDrained or onSpliceOut comes back
	}
	p, err := l.getPipe()
	if err != nil {
		l.closeSock(s, l.opError("splice", s, err))
		return
	}
	n := p.size
	if px.limit > 0 {
		n = int(min(int64(n), px.limit-px.moved))
	}
	if err := l.be.spliceIn(s.fd, p.w, n, s.tok(opSpliceIn)); err != nil {
		l.putPipe(p, true)
		l.closeSock(s, l.opError("splice", s, err))
		return
	}
	s.ops++
	s.fl.splicing = px
	s.fl.inPipe = p
}

// onSpliceIn handles the end of a spliceIn on the source s: the pipe's
// bytes join the target's queue.
func (l *Loop) onSpliceIn(s *sock, c *completion) {
	if h := testHookSpliceIn; h != nil && c.Res > 0 && !s.closed() {
		h(s.c)
	}
	px, p := s.fl.splicing, s.fl.inPipe
	s.fl.splicing, s.fl.inPipe = nil, nil
	switch {
	case c.Res > 0:
		n := int(c.Res)
		s.stats.BytesIn += uint64(n)
		s.lastAct = l.now
		px.moved += int64(n)
		if s.fl.px == px || s.fl.px == nil {
			s.fl.proxied += uint64(n) // not if a new proxy has begun since
		}
		t := px.t
		if !t.closing() && !t.wrClosed {
			px.pipes++
			t.files = append(t.files, &fileSeg{pipe: p, px: px, at: t.outSeq, n: int64(n)})
			t.flow().pipeQ += n
			if !t.connecting() {
				l.markDirty(t)
			}
		} else {
			// The target is gone: the bytes are s's handler's after all.
			l.pipeToHandler(s, p, n)
		}
		if px.limit > 0 && px.moved >= px.limit && s.fl.px == px {
			var cb func(*conn.Conn)
			if pc, ok := s.h.(conn.ProxyCompleter); ok {
				cb = pc.ProxyCompleted
			}
			l.proxyEnd(s, cb)
			return
		}
	case c.Res == 0:
		l.putPipe(p, true)
		if !s.closed() {
			s.rdEOF = true
			if s.heldLen() == 0 {
				l.peerEOF(s)
			} else {
				l.updateRead(s)
			}
		}
		return
	default:
		l.putPipe(p, false)
		switch err := errnoOf(c.Res); err {
		case unix.ECANCELED, unix.EAGAIN:
		default:
			if !s.closed() {
				l.closeSock(s, l.opError("splice", s, err))
			}
			return
		}
	}
	if s.closed() {
		return
	}
	if s.fl.px == px {
		l.proxyPump(s)
	} else {
		l.updateRead(s) // stopped, or another proxy waits for this one
	}
}

// testHookSpliceIn, when set by a test, runs before a spliceIn completion
// that moved bytes is handled (to stop the proxy while one is in flight).
var testHookSpliceIn func(c *conn.Conn)

// pipeToHandler gives the n bytes in p, which a spliceIn moved for a
// target that closed meanwhile, to s's handler: held, they reach it in the
// next I/O phase, after ProxyTargetUnbound (the target's Unbind phase) and
// before anything s receives later.
func (l *Loop) pipeToHandler(s *sock, p *proxyPipe, n int) {
	buf := make([]byte, n)
	got := 0
	for got < n {
		k, err := unix.Read(p.r, buf[got:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || k == 0 {
			break
		}
		got += k
	}
	l.putPipe(p, got == n)
	if got > 0 && !s.closed() {
		l.holdBytes(s, buf[:got])
	}
}

// submitSpliceOut sends the target t's first segment, a pipe.
func (l *Loop) submitSpliceOut(t *sock) {
	f := t.files[0]
	if err := l.be.spliceOut(t.fd, f.pipe.r, int(f.n), t.tok(opSpliceOut)); err != nil {
		l.closeSock(t, l.opError("splice", t, err))
		return
	}
	t.ops++
	t.sendInFlight = true
}

// onSpliceOut handles a spliceOut of the target t.
func (l *Loop) onSpliceOut(t *sock, c *completion) {
	t.sendInFlight = false
	if t.closed() {
		return // freeSock releases the segments
	}
	if errRetry(c.Res) {
		l.afterSend(t)
		return
	}
	if c.Res < 0 {
		l.closeSock(t, l.opError("splice", t, errnoOf(c.Res)))
		return
	}
	f := t.files[0]
	f.n -= int64(c.Res)
	t.fl.pipeQ -= int(c.Res)
	t.stats.BytesOut += uint64(c.Res)
	if c.Res > 0 {
		t.lastAct = l.now
	}
	if f.n <= 0 {
		t.files[0] = nil
		t.files = t.files[1:]
		if len(t.files) == 0 {
			t.files = nil
		}
		l.putPipe(f.pipe, true)
		f.px.pipes--
	}
	l.afterSend(t)
}

// releaseSegment frees a pipe segment of a socket being freed.
func (l *Loop) releaseSegment(f *fileSeg) {
	l.putPipe(f.pipe, false)
	f.px.pipes--
}

// getPipe returns an empty pipe from the loop's pool, or a new one.
func (l *Loop) getPipe() (*proxyPipe, error) {
	n := &l.net
	if k := len(n.pipes); k > 0 {
		p := n.pipes[k-1]
		n.pipes[k-1] = nil
		n.pipes = n.pipes[:k-1]
		return p, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	// Refused beyond fs.pipe-max-size or pipe-user-pages-soft: then the
	// pipe keeps its size.
	_, _ = unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, proxyPipeSize)
	size, err := unix.FcntlInt(uintptr(fds[1]), unix.F_GETPIPE_SZ, 0)
	if err != nil || size < os.Getpagesize() {
		size = os.Getpagesize()
	}
	p := &proxyPipe{r: fds[0], w: fds[1], size: size}
	if n.allPipes == nil {
		n.allPipes = make(map[*proxyPipe]struct{})
	}
	n.allPipes[p] = struct{}{}
	return p, nil
}

// putPipe returns p to the pool when it is empty, or closes it.
func (l *Loop) putPipe(p *proxyPipe, empty bool) {
	n := &l.net
	if empty && len(n.pipes) < maxIdlePipes && l.be != nil {
		n.pipes = append(n.pipes, p)
		return
	}
	delete(n.allPipes, p)
	unix.Close(p.r)
	unix.Close(p.w)
}

// closePipes closes every pipe, once the backend is closed (nothing in
// flight uses them).
func (l *Loop) closePipes() {
	n := &l.net
	for p := range n.allPipes {
		unix.Close(p.r)
		unix.Close(p.w)
	}
	n.allPipes = nil
	n.pipes = nil
}
