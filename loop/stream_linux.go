package loop

import (
	"fmt"
	"io"

	"github.com/ringmachine/ringmachine/conn"
	"golang.org/x/sys/unix"
)

// Stream connections: the send path (queue, one send per connection per
// iteration, its completion) and the receive path (arming, pausing,
// delivery, the peer's EOF).

// Held buffers: a connection that pauses (Pause, or its outbound queue above
// the high watermark) while io_uring's multishot receive is armed gets the
// completions already posted before the cancel lands; it keeps their bytes
// until Resume. A flood that pauses and resumes a connection over and over
// would allocate a fresh buffer each cycle — hundreds of MB of garbage for a
// 200 MB flood, and the heap growth that comes with it — so the buffers go
// back to a small loop-wide pool once delivered.
const (
	maxFreeHeldBufs = 4       // buffers kept in the pool
	maxHeldBufCap   = 4 << 20 // larger ones go to the garbage collector
)

// holdBytes appends b to the bytes s holds for Resume.
func (l *Loop) holdBytes(s *sock, b []byte) {
	fl := s.flow()
	if fl.held == nil {
		if k := len(l.net.heldBufs); k > 0 {
			fl.held = l.net.heldBufs[k-1]
			l.net.heldBufs[k-1] = nil
			l.net.heldBufs = l.net.heldBufs[:k-1]
		}
	}
	fl.held = append(fl.held, b...)
}

// putHeldBuf returns a held buffer, delivered and no longer referenced, to
// the pool.
func (l *Loop) putHeldBuf(b []byte) {
	if cap(b) == 0 || cap(b) > maxHeldBufCap || len(l.net.heldBufs) >= maxFreeHeldBufs {
		return
	}
	l.net.heldBufs = append(l.net.heldBufs, b[:0])
}

// maxFreeRecvBufs bounds the loop's pool of single-shot receive buffers.
const maxFreeRecvBufs = 64

// singleShot reports whether stream connections receive with one
// operation per read into a buffer of the loop's (URingOptions.Recv =
// RecvSingleShot, io_uring only) instead of a multishot receive.
func (l *Loop) singleShot() bool {
	return l.opts.URing.Recv == RecvSingleShot && l.be.kind() == URing
}

// getRecvBuf returns a single-shot receive buffer of RecvBufferSize; the
// engine holds it until the receive's completion.
func (l *Loop) getRecvBuf() []byte {
	if k := len(l.net.recvBufs); k > 0 {
		b := l.net.recvBufs[k-1]
		l.net.recvBufs[k-1] = nil
		l.net.recvBufs = l.net.recvBufs[:k-1]
		return b
	}
	return make([]byte, l.opts.RecvBufferSize)
}

// putRecvBuf keeps b, a single-shot receive buffer whose bytes have been
// delivered, for the next receive.
func (l *Loop) putRecvBuf(b []byte) {
	if len(l.net.recvBufs) < maxFreeRecvBufs && cap(b) >= l.opts.RecvBufferSize {
		l.net.recvBufs = append(l.net.recvBufs, b[:cap(b)])
	}
}

// markDirty queues s for the send submission of this iteration.
func (l *Loop) markDirty(s *sock) {
	if !s.dirty {
		s.dirty = true
		l.net.dirty = append(l.net.dirty, s)
	}
}

// flushSends is the start of the I/O phase: it delivers data held during a
// pause to resumed connections, then submits one send per dirty connection
// carrying all its queued bytes.
func (l *Loop) flushSends() {
	n := &l.net
	for i := 0; i < len(n.resumed); i++ {
		s := n.resumed[i]
		n.resumed[i] = nil
		s.resumeQ = false
		if !l.readable(s) || s.heldLen() == 0 {
			l.updateRead(s)
			continue
		}
		if s.dg != nil {
			held := s.dg.held
			s.dg.held = nil
			for _, d := range held {
				l.deliverDatagram(s, d.b, d.to)
			}
		} else {
			data := s.fl.held
			s.fl.held = nil
			l.deliver(s, data)
			l.putHeldBuf(data)
			if s.rdEOF && s.heldLen() == 0 && !s.closed() && !s.detached {
				l.peerEOF(s) // the EOF came after these bytes
			}
		}
		l.updateRead(s)
	}
	n.resumed = n.resumed[:0]
	for i := 0; i < len(n.dirty); i++ {
		s := n.dirty[i]
		n.dirty[i] = nil
		s.dirty = false
		if s.closed() || s.connecting() || s.sendInFlight || s.fd < 0 {
			continue
		}
		switch s.kind {
		case sockDgram:
			l.submitDatagram(s)
		case sockStream:
			l.submitSend(s)
		}
	}
	n.dirty = n.dirty[:0]
}

// submitSend sends the queued bytes of s up to the next SendFile segment,
// or that segment when it is next.
func (l *Loop) submitSend(s *sock) {
	if len(s.files) > 0 && s.files[0].at == s.sentSeq {
		if s.files[0].pipe != nil {
			l.submitSpliceOut(s)
		} else {
			l.submitSendFile(s)
		}
		return
	}
	if s.out.Len() == 0 {
		return
	}
	// The engine copies the slice of slices: one scratch serves every send.
	bufs := s.out.Pending(l.net.sendBufs[:0])
	if len(s.files) > 0 {
		limit := s.files[0].at - s.sentSeq
		for i, b := range bufs {
			if int64(len(b)) >= limit {
				bufs[i] = b[:limit]
				bufs = bufs[:i+1]
				break
			}
			limit -= int64(len(b))
		}
	}
	if n := testHookSendBufs; n > 0 && len(bufs) > n {
		bufs = bufs[:n]
	}
	var err error
	if s.pipe == 0 {
		err = l.be.send(s.fd, bufs, s.tok(opSend))
	} else {
		err = l.be.write(s.fd, bufs, s.tok(opSend)) // completed as a send
	}
	clear(bufs)
	l.net.sendBufs = bufs[:0]
	if err != nil {
		l.closeSock(s, l.opError(s.sendOp(), s, err))
		return
	}
	s.ops++
	s.sendInFlight = true
}

// testHookSendBufs, when positive, caps the buffers of one send: a test or
// benchmark measures what sending every queued chunk at once (one SENDMSG,
// one sendmsg(2) on epoll, one writev(2) on a pipe) gains over one chunk
// per send.
var testHookSendBufs int

func (l *Loop) onSend(s *sock, c *completion) {
	s.sendInFlight = false
	if s.closed() {
		return
	}
	res := c.Res
	if errRetry(res) {
		res = 0 // nothing was written: afterSend sends it all again
	}
	if res < 0 {
		if res == -int32(unix.EPIPE) && s.kind == sockStream && s.tls() == nil && (s.fl == nil || len(s.fl.feeders) == 0) {
			l.peerStoppedReading(s, l.opError(s.sendOp(), s, unix.EPIPE))
			return
		}
		l.closeSock(s, l.opError(s.sendOp(), s, errnoOf(res)))
		return
	}
	s.out.Consume(int(res))
	s.sentSeq += int64(res)
	s.stats.BytesOut += uint64(res)
	if res > 0 {
		s.lastAct = l.now
	}
	l.afterSend(s)
}

// peerStoppedReading handles a send that failed with EPIPE: the peer
// reads no more (it closed, or shut down its reading side), but what it
// sent before may still be in the socket, unread; a Unix socket's peer
// that writes its last output and exits without reading is the common
// case. What is queued is dropped, no more sends are accepted, and the
// connection reads on until the peer's EOF, so none of the peer's bytes
// are lost; the EPIPE error is then the Unbind reason. (Closing at once
// lost that output.) TLS connections and proxy targets close at once as
// before: their queues are not the handler's alone.
func (l *Loop) peerStoppedReading(s *sock, err error) {
	fl := s.flow()
	if fl.sendErr == nil {
		fl.sendErr = err
	}
	s.out.Reset()
	l.dropFiles(s)
	s.wrClosed = true
	s.shutPending = false
	if s.rdEOF || s.drain {
		l.closeSock(s, err)
		return
	}
	if s.aboveHigh {
		s.aboveHigh = false // the queue that paused reading is gone
		l.updateRead(s)
	}
}

// afterSend continues, finishes or closes after a send completed.
func (l *Loop) afterSend(s *sock) {
	if s.out.Len() > 0 || len(s.files) > 0 {
		l.markDirty(s)
	}
	if s.aboveHigh && s.out.Len() <= s.fl.low {
		s.aboveHigh = false
		l.updateRead(s)
		if d, ok := s.h.(conn.Drainer); ok {
			l.call(func() { d.Drained(s.c) })
			if s.closed() {
				return
			}
		}
	}
	if fl := s.fl; fl != nil && fl.drainFn != nil && s.queued() <= fl.drainLow {
		l.runDrained(s)
		if s.closed() {
			return
		}
	}
	if fl := s.fl; fl != nil && len(fl.feeders) > 0 {
		l.proxyDrained(s)
	}
	if s.out.Len() > 0 || len(s.files) > 0 || s.sendInFlight {
		return
	}
	if tl := s.tls(); tl != nil && tl.hs {
		// The handshake is not over: closing or shutting down waits for it
		// (tlsHandshakeDone comes back here).
		return
	}
	if s.drain {
		l.closeSock(s, s.reason) // nil, or io.EOF when the peer's EOF asked for it (peerEOF)
		return
	}
	if s.shutPending {
		s.shutPending = false
		if s.pipe != 0 {
			// No shutdown(2) for a pipe: a write end closes (its reader's
			// EOF); a FIFO open for both just sends no more.
			if s.pipe&pipeReads == 0 {
				l.closeSock(s, nil)
			}
			return
		}
		if err := l.be.shutdownWrite(s.fd); err != nil {
			l.closeSock(s, l.opError("shutdown", s, err))
			return
		}
		if s.rdEOF {
			l.closeSock(s, io.EOF) // both directions are done
		}
	}
}

// peerEOF handles the end of the peer's stream, once every byte the peer
// sent before it has been delivered (DESIGN "Peer EOF"). A HalfCloser learns
// of it and keeps writing; otherwise the connection sends everything already
// queued — what the ReceiveData calls of the same batch queued included —
// and then closes with io.EOF. EventMachine closes at once instead and drops
// those replies.
func (l *Loop) peerEOF(s *sock) {
	if s.tls() != nil && s.tls().hs {
		// The handshake goroutine decides: it fails for want of bytes (the
		// Unbind reason is its error, say an alert the peer sent before
		// closing) or it had them all, and tlsHandshakeDone comes back here.
		s.tls().tr.setEOF()
		return
	}
	if hc, ok := s.h.(conn.HalfCloser); ok {
		c := s.c
		l.call(func() { hc.ReceiveEOF(c) })
		if !s.closed() && s.wrClosed && !s.shutPending {
			l.closeSock(s, io.EOF) // the write side was shut down already
		}
		return
	}
	if s.out.Len() > 0 || len(s.files) > 0 || s.sendInFlight {
		if !s.drain {
			s.reason = io.EOF // read by afterSend's close; a CloseAfterWriting of the handler's keeps nil
		}
		s.drain = true
		return
	}
	l.closeSock(s, io.EOF)
}

// readable reports whether received bytes may be delivered to s's handler
// now (not paused, not closed).
func (l *Loop) readable(s *sock) bool {
	return !s.closed() && !s.connecting() && !s.paused && !s.aboveHigh && s.fd >= 0 && s.kind != sockListener &&
		(s.fl == nil || s.fl.px == nil || !s.fl.px.blocked)
}

// wantRead reports whether s should have a receive armed: not while a
// proxy splices from it (proxyPump reads then).
func (l *Loop) wantRead(s *sock) bool {
	return l.readable(s) && !s.rdEOF && (s.fl == nil || (s.fl.splicing == nil && (s.fl.px == nil || !s.fl.px.splice)))
}

// updateRead arms or cancels the receive of s to match wantRead, or queues
// the delivery of bytes held during a pause.
func (l *Loop) updateRead(s *sock) {
	if s.rdEOF {
		// Nothing more to receive; bytes held before the EOF still go to the
		// handler on Resume (flushSends), then peerEOF.
		if l.readable(s) && s.heldLen() > 0 && !s.resumeQ && !s.detached {
			s.resumeQ = true
			l.net.resumed = append(l.net.resumed, s)
		}
		return
	}
	want := l.wantRead(s)
	switch {
	case want && !s.recvArmed:
		if s.heldLen() > 0 {
			if !s.resumeQ {
				s.resumeQ = true
				l.net.resumed = append(l.net.resumed, s)
			}
			return
		}
		var err error
		var k opKind
		if s.kind == sockDgram {
			k = opRecvFrom
			err = l.be.recvFrom(s.fd, s.dg.dbuf, s.tok(k))
		} else if s.pipe != 0 {
			k = opRecv // a pipe's read, completed as a receive
			err = l.be.read(s.fd, l.getRecvBuf(), s.tok(k))
		} else if l.singleShot() {
			k = opRecv
			err = l.be.recv(s.fd, l.getRecvBuf(), s.tok(k))
		} else {
			k = opRecv
			err = l.be.recvMultishot(s.fd, s.tok(k))
		}
		if err != nil {
			l.closeSock(s, l.opError("recv", s, err))
			return
		}
		s.ops++
		s.recvArmed = true
	case !want && s.recvArmed && !s.closed():
		l.cancelRecv(s)
	}
	if s.fl != nil && s.fl.px != nil && s.fl.px.splice {
		l.proxyPump(s)
	}
}

// deliver hands data to the handler, then poisons it if asked to.
func (l *Loop) deliver(s *sock, data []byte) {
	s.stats.BytesIn += uint64(len(data))
	s.lastAct = l.now
	if s.tls() != nil {
		l.tlsFeed(s, data)
		return
	}
	if s.fl != nil && s.fl.px != nil {
		data = l.proxyForward(s, data)
		if len(data) == 0 {
			return
		}
	}
	h, c := s.h, s.c
	l.call(func() { h.ReceiveData(c, data) })
	if l.opts.DebugPoisonReceive {
		for i := range data {
			data[i] = 0xDB
		}
	}
}

func (l *Loop) onRecv(s *sock, c *completion, final bool) {
	if s.detached {
		l.onDetachedRecv(s, c, final)
		return
	}
	if final {
		s.recvArmed = false
		s.recvCancel = false
	}
	if c.Res > 0 && (s.pipe != 0 || l.singleShot()) {
		// The loop's own buffer (recvSingleShot, a pipe's read): back to the
		// pool once delivered (held bytes are copies).
		defer l.putRecvBuf(c.Buf)
	}
	switch {
	case c.Res > 0:
		if s.closed() {
			break
		}
		if !l.wantRead(s) || s.heldLen() > 0 {
			// Paused after the kernel took the bytes: keep them, in order,
			// for Resume.
			l.holdBytes(s, c.Buf)
			break
		}
		l.deliver(s, c.Buf)
	case c.Res == 0:
		if !s.closed() {
			s.rdEOF = true
			if s.heldLen() == 0 {
				l.peerEOF(s)
			} else {
				l.updateRead(s) // delivers the held bytes first once readable
			}
		}
		return
	default:
		switch err := errnoOf(c.Res); err {
		case unix.ECANCELED, unix.ENOBUFS, unix.EAGAIN:
			// Paused, closed, out of buffers, or no longer polled (see
			// errRetry): re-armed below if wanted (the buffers came back
			// right after their dispatch).
		default:
			l.closeSock(s, l.opError(s.recvOp(), s, err))
			return
		}
	}
	if final {
		l.updateRead(s)
	}
}

// runDrained runs, once, the function NotifyDrained left on s.
func (l *Loop) runDrained(s *sock) {
	fn := s.fl.drainFn
	s.fl.drainFn = nil
	l.call(fn)
}

// notifyDrainedLater runs NotifyDrained's function in the next tick, for a
// queue already at or below its watermark when it was called (never inside
// the call). If the connection closed, or the function was replaced or the
// queue grew meanwhile, the tick does nothing.
func (l *Loop) notifyDrainedLater(s *sock) {
	gen := s.fl.drainGen
	_ = l.NextTick(func() {
		if s.closed() || s.fl.drainFn == nil || s.fl.drainGen != gen || s.queued() > s.fl.drainLow {
			return
		}
		l.runDrained(s)
	})
}

// cancelRecv cancels s's armed receive by its token, once: its final
// completion (-ECANCELED, or its own result if that came first) ends it.
func (l *Loop) cancelRecv(s *sock) {
	if s.recvCancel {
		return
	}
	k := opRecv
	if s.kind == sockDgram {
		k = opRecvFrom
	}
	if err := l.be.cancel(s.tok(k)); err != nil {
		l.fail(fmt.Errorf("loop: cancel: %w", err))
	}
	s.recvCancel = true
}
