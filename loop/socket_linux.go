package loop

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"golang.org/x/sys/unix"
)

type sockKind uint8

const (
	sockListener sockKind = iota + 1
	sockStream
	sockDgram
)

// sock is the loop's record of one socket: a server's listener, a stream
// connection or a datagram socket. It implements conn.Driver. It owns the
// buffers its in-flight operations hand the kernel (dbuf, the outbound
// chunks; the engine owns the rest), and its fd is closed only once ops,
// the count of its operations in flight, is back to zero.
type sock struct {
	l    *Loop
	slot uint32
	gen  uint32
	fd   int
	ops  int32 // operations in flight on fd

	// State, kept together so the record packs tightly (an idle
	// connection's memory is mostly this record): the lifecycle, then the
	// flags of each direction and of the loop's queues.
	kind         sockKind
	life         life
	drain        bool // CloseAfterWriting: close once the queue is sent
	wrClosed     bool // CloseWrite: no more sends
	shutPending  bool // shutdown(SHUT_WR) once the queue is empty
	rdEOF        bool // the peer's EOF arrived: no more receives (see peerEOF)
	recvArmed    bool // the receive (or accept) is in flight
	recvCancel   bool // its cancel was requested
	paused       bool // by Pause
	aboveHigh    bool // paused by the high watermark
	resumeQ      bool // queued in net.resumed
	sendInFlight bool
	dirty        bool

	network string // "tcp", "unix", "udp"
	h       conn.Handler
	c       *conn.Conn
	srv     *Server // listener: its server
	reason  error

	out conn.Outbound
	fl  *flowState   // set by SetOutboundLimits or when paused data is held
	dg  *dgramState  // datagram sockets only
	cl  *clientState // outbound connections only

	// SendFile segments, each sent once the bytes queued before it are.
	files   []*fileSeg
	sentSeq int64 // bytes of out sent so far
	outSeq  int64 // bytes of out written so far

	inact      time.Duration
	lastAct    int64
	inactTimer *Timer // allocated by the first SetInactivityTimeout

	laddr, raddr net.Addr
	stats        conn.Stats
}

// life is where a socket is in its lifecycle. It only moves forward, and
// only through advance:
//
//	lifeConnecting ──connect completes──► lifeOpen
//	      │                                  │ closeSock: Close, CloseAfterWriting's queue sent,
//	      │                                  │ peer EOF, error, timeout, Stop
//	      └──────────────────────────────────┴──► lifeClosed
//	                                                 │ last operation reaped (maybeCloseFD)
//	                                                 ▼
//	    (a socket that never got an fd jumps here) lifeFDClosing ──close reaped──► freed
//
// Listeners, accepted and datagram sockets start open (newSock), outbound
// connections connecting (Connect). At lifeClosed Unbind is queued and
// every operation in flight cancelled; the fd stays open until the engine
// has reported them all, so no completion can name a reused fd. Closing
// after writing (drain) and half-closing (wrClosed) are intents of the
// write direction, not states: a connecting socket may have either.
type life uint8

const (
	lifeConnecting life = iota // client: the connect is in flight
	lifeOpen                   // reads and writes
	lifeClosed                 // Unbind queued, operations being cancelled, fd open
	lifeFDClosing              // the close of fd is submitted (or there was no fd)
)

// advance moves s to the state to, forward only: a move to the state it is
// in, or to an earlier one, does nothing (closing twice is no error).
func (s *sock) advance(to life) {
	if to > s.life {
		s.life = to
	}
}

func (s *sock) connecting() bool { return s.life == lifeConnecting }

// closing reports that no more sends are accepted: closed, or closing
// once the queue is sent.
func (s *sock) closing() bool { return s.drain || s.life >= lifeClosed }

// closed reports that Unbind is queued and the fd is going down.
func (s *sock) closed() bool { return s.life >= lifeClosed }

// fdClosing reports that the fd's close is submitted (or there was none).
func (s *sock) fdClosing() bool { return s.life == lifeFDClosing }

// flowState holds a sock's outbound limits and the bytes received while
// reading was paused, out of line: most connections use neither.
type flowState struct {
	held            []byte // received after a pause, delivered on Resume
	low, high, hard int    // SetOutboundLimits
}

// flow returns s's flowState, allocating it.
func (s *sock) flow() *flowState {
	if s.fl == nil {
		s.fl = new(flowState)
	}
	return s.fl
}

// heldLen reports the bytes held for Resume.
func (s *sock) heldLen() int {
	n := 0
	if s.fl != nil {
		n += len(s.fl.held)
	}
	if s.dg != nil {
		n += len(s.dg.held)
	}
	return n
}

// clientState is the part of a sock only outbound connections need, kept
// out of line so accepted connections stay small.
type clientState struct {
	connTo    time.Duration
	connStart int64
	connTimer Timer // the connect timeout unless connBound
	connBound bool  // the backend bounds the connect (io_uring LINK_TIMEOUT)
}

// dgramState is the part of a sock only datagram sockets need.
type dgramState struct {
	dbuf     []byte  // receive buffer of the one recvfrom in flight
	dgrams   []dgram // queued datagrams
	held     []dgram // received after a Pause, delivered on Resume (to: the sender)
	lastFrom unix.Sockaddr
}

type dgram struct {
	b  []byte
	to unix.Sockaddr
}

type fileSeg struct {
	f   *os.File
	at  int64 // outSeq when queued
	off int64
	n   int64 // bytes left
}

// netState is the loop's networking state.
type netState struct {
	socks    []*sock  // slot table (nil: free); records never move
	gens     []uint32 // generation of each slot, bumped when it is freed
	free     []uint32 // free slots
	nconns   int      // open connections (stream and datagram)
	dirty    []*sock  // connections with output to submit
	closing  []*sock  // connections whose Unbind is due
	resumed  []*sock  // connections with held data to deliver
	live     int      // records not freed yet
	stale    int      // stale completions dropped
	servers  []*Server
	chunks   conn.ChunkCache // outbound chunks shared by the loop's connections
	sendBufs [][]byte        // scratch for the buffers of one send (the engine copies it)
	recvBufs [][]byte        // free single-shot receive buffers (see getRecvBuf)
	heldBufs [][]byte        // free buffers for bytes held during a pause (see holdBytes)
}

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
// operation per read into a buffer of the loop's (Options.URingRecv =
// RecvSingleShot, io_uring only) instead of a multishot receive.
func (l *Loop) singleShot() bool {
	return l.opts.URingRecv == RecvSingleShot && l.be.kind() == URing
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

func (s *sock) tok(k opKind) uint64 { return makeToken(k, s.slot, s.gen) }

// newSock allocates a record in the slot table.
func (l *Loop) newSock(kind sockKind, fd int, network string) *sock {
	n := &l.net
	var slot uint32
	if k := len(n.free); k > 0 {
		slot = n.free[k-1]
		n.free = n.free[:k-1]
	} else {
		slot = uint32(len(n.socks))
		n.socks = append(n.socks, nil)
		n.gens = append(n.gens, 0)
	}
	s := &sock{l: l, slot: slot, gen: n.gens[slot], kind: kind, life: lifeOpen, fd: fd, network: network}
	if n.chunks.Max == 0 {
		n.chunks.Max = 256 // 4 MiB of 16 KiB chunks at most
	}
	s.out.SetCache(&n.chunks)
	n.socks[slot] = s
	n.live++
	return s
}

// freeSock releases s's slot once its fd is closed and nothing is in flight.
func (l *Loop) freeSock(s *sock) {
	n := &l.net
	if n.socks[s.slot] != s {
		panic(fmt.Sprintf("loop: freeing slot %d gen %d not owned", s.slot, s.gen))
	}
	n.socks[s.slot] = nil
	n.gens[s.slot] = (s.gen + 1) & tokGenMask
	n.free = append(n.free, s.slot)
	n.live--
	s.out.Reset()
	if s.fl != nil {
		l.putHeldBuf(s.fl.held) // never delivered: nothing else refers to it
	}
	s.fl = nil
	s.dg = nil
	for _, f := range s.files {
		f.f.Close()
	}
	s.files = nil
}

// ConnectionCount reports the open connections, stream and datagram, client
// and server (EventMachine's connection_count). Call only from the loop
// goroutine.
func (l *Loop) ConnectionCount() int { return l.net.nconns }

// dispatch handles one completion reported by the backend.
func (l *Loop) dispatch(c *completion) {
	if l.clockStale {
		// The first completion after a wait: handlers that read Now or arm
		// timers must not measure from before the wait (libuv refreshes its
		// time right after epoll_wait too). Once per poll, not per completion.
		l.clockStale = false
		l.updateTime()
	}
	k, slot, gen := splitToken(c.tok)
	if k == opHandoffIn || k == opHandoffOut {
		l.dispatchHandoff(k, c)
		return
	}
	n := &l.net
	if int(slot) >= len(n.socks) || n.socks[slot] == nil || n.socks[slot].gen != gen {
		n.stale++
		return
	}
	s := n.socks[slot]
	final := !c.more
	if final {
		s.ops--
	}
	switch k {
	case opAccept:
		l.onAccept(s, c, final)
	case opRecv:
		l.onRecv(s, c, final)
	case opSend:
		l.onSend(s, c)
	case opConnect:
		l.onConnect(s, c)
	case opRecvFrom:
		l.onRecvFrom(s, c)
	case opSendTo:
		l.onSendTo(s, c)
	case opSendFile:
		l.onSendFile(s, c)
	case opClose:
		l.freeSock(s)
		return
	default:
		n.stale++
	}
	l.maybeCloseFD(s)
}

func errnoOf(res int32) error { return unix.Errno(-res) }

// errRetry reports whether res is -EAGAIN: the operation did nothing and is
// to be submitted again. The epoll backend waits for readiness and never
// reports it, but io_uring can: it polls a socket for a request only a bounded
// number of times (struct io_poll's retries), and when wake-ups that do not
// make the request ready use them up — a send waiting for room while the peer
// streams into the same socket, whose wait queue both directions share — it
// issues the request once more from a worker, where on our non-blocking
// sockets it fails with EAGAIN. Taken for a failure, that closed healthy
// connections with their replies half sent.
func errRetry(res int32) bool { return res == -int32(unix.EAGAIN) }

func (l *Loop) opError(op string, s *sock, err error) error {
	var addr net.Addr
	if s != nil && !s.fdClosing() {
		addr = s.raddr
	}
	return &conn.OpError{Op: op, Backend: l.be.kind().String(), Addr: addr, Err: err}
}

// report hands a non-fatal error (an accept failure, say) to the
// ErrorHandler; without one it is dropped (the library does not log), and,
// unlike a panic, it does not stop the loop.
func (l *Loop) report(err error) {
	if l.opts.ErrorHandler != nil {
		l.handlePanic(err)
	}
}

// closeSock closes s with reason: Unbind is queued for runCloses, every
// operation in flight is cancelled, and the fd is closed once they are all
// reaped. Closing twice does nothing.
func (l *Loop) closeSock(s *sock, reason error) {
	if s.closed() {
		return
	}
	s.advance(lifeClosed)
	s.reason = reason
	s.inactTimer.Cancel()
	if s.cl != nil {
		s.cl.connTimer.Cancel()
	}
	if s.kind != sockListener {
		l.net.nconns--
		l.net.closing = append(l.net.closing, s)
	}
	if s.ops > 0 && s.fd >= 0 {
		if err := l.be.cancelFD(s.fd); err != nil {
			l.fail(fmt.Errorf("loop: cancel: %w", err))
		}
	}
	l.maybeCloseFD(s)
}

// maybeCloseFD closes the fd of a closed socket once nothing is in flight
// on it, and frees the record when there is no fd.
func (l *Loop) maybeCloseFD(s *sock) {
	if !s.closed() || s.ops > 0 || s.fdClosing() {
		return
	}
	s.advance(lifeFDClosing)
	if s.fd < 0 {
		l.freeSock(s)
		return
	}
	if err := l.be.closeFD(s.fd, s.tok(opClose)); err != nil {
		unix.Close(s.fd)
		l.freeSock(s)
		return
	}
	s.ops++
}

// runCloses delivers the Unbinds of connections closed during the phase
// that just ended, each exactly once.
func (l *Loop) runCloses() {
	n := &l.net
	for i := 0; i < len(n.closing); i++ {
		s := n.closing[i]
		n.closing[i] = nil
		if s.h != nil && s.c != nil {
			h, c, r := s.h, s.c, s.reason
			l.call(func() { h.Unbind(c, r) })
		}
	}
	n.closing = n.closing[:0]
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
			if s.rdEOF && s.heldLen() == 0 && !s.closed() {
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
		l.submitSendFile(s)
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
	err := l.be.send(s.fd, bufs, s.tok(opSend))
	clear(bufs)
	l.net.sendBufs = bufs[:0]
	if err != nil {
		l.closeSock(s, l.opError("send", s, err))
		return
	}
	s.ops++
	s.sendInFlight = true
}

func (l *Loop) onSend(s *sock, c *completion) {
	s.sendInFlight = false
	if s.closed() {
		return
	}
	res := c.res
	if errRetry(res) {
		res = 0 // nothing was written: afterSend sends it all again
	}
	if res < 0 {
		l.closeSock(s, l.opError("send", s, errnoOf(res)))
		return
	}
	s.out.Consume(int(res))
	s.sentSeq += int64(res)
	s.stats.BytesOut += uint64(res)
	if res > 0 {
		s.lastAct = l.monotonic()
	}
	l.afterSend(s)
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
	if s.out.Len() > 0 || len(s.files) > 0 || s.sendInFlight {
		return
	}
	if s.drain {
		l.closeSock(s, s.reason) // nil, or io.EOF when the peer's EOF asked for it (peerEOF)
		return
	}
	if s.shutPending {
		s.shutPending = false
		if err := unix.Shutdown(s.fd, unix.SHUT_WR); err != nil && err != unix.ENOTCONN {
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
	return !s.closed() && !s.connecting() && !s.paused && !s.aboveHigh && s.fd >= 0 && s.kind != sockListener
}

// wantRead reports whether s should have a receive armed.
func (l *Loop) wantRead(s *sock) bool {
	return l.readable(s) && !s.rdEOF
}

// updateRead arms or cancels the receive of s to match wantRead, or queues
// the delivery of bytes held during a pause.
func (l *Loop) updateRead(s *sock) {
	if s.rdEOF {
		// Nothing more to receive; bytes held before the EOF still go to the
		// handler on Resume (flushSends), then peerEOF.
		if l.readable(s) && s.heldLen() > 0 && !s.resumeQ {
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
	case !want && s.recvArmed && !s.recvCancel && !s.closed():
		k := opRecv
		if s.kind == sockDgram {
			k = opRecvFrom
		}
		if err := l.be.cancel(s.tok(k)); err != nil {
			l.fail(fmt.Errorf("loop: cancel: %w", err))
		}
		s.recvCancel = true
	}
}

// deliver hands data to the handler, then poisons it if asked to.
func (l *Loop) deliver(s *sock, data []byte) {
	s.stats.BytesIn += uint64(len(data))
	s.lastAct = l.monotonic()
	h, c := s.h, s.c
	l.call(func() { h.ReceiveData(c, data) })
	if l.opts.DebugPoisonReceive {
		for i := range data {
			data[i] = 0xDB
		}
	}
}

func (l *Loop) onRecv(s *sock, c *completion, final bool) {
	if final {
		s.recvArmed = false
		s.recvCancel = false
	}
	if c.res > 0 && l.singleShot() {
		// The loop's own buffer (recvSingleShot): back to the pool once
		// delivered (held bytes are copies).
		defer l.putRecvBuf(c.buf)
	}
	switch {
	case c.res > 0:
		if s.closed() {
			break
		}
		if !l.wantRead(s) || s.heldLen() > 0 {
			// Paused after the kernel took the bytes: keep them, in order,
			// for Resume.
			l.holdBytes(s, c.buf)
			break
		}
		l.deliver(s, c.buf)
	case c.res == 0:
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
		switch err := errnoOf(c.res); err {
		case unix.ECANCELED, unix.ENOBUFS, unix.EAGAIN:
			// Paused, closed, out of buffers, or no longer polled (see
			// errRetry): re-armed below if wanted (the buffers came back
			// right after their dispatch).
		default:
			l.closeSock(s, l.opError("recv", s, err))
			return
		}
	}
	if final {
		l.updateRead(s)
	}
}

func (l *Loop) onConnect(s *sock, c *completion) {
	if s.closed() {
		return
	}
	if c.res == -int32(unix.ETIME) && s.cl.connBound {
		// The backend's bound ran out (see backend.connect): the same
		// Unbind reason as the loop's timer gives.
		l.closeSock(s, conn.ErrConnectTimeout)
		return
	}
	if c.res < 0 {
		l.closeSock(s, l.opError("connect", s, errnoOf(c.res)))
		return
	}
	s.advance(lifeOpen) // connected
	s.cl.connTimer.Cancel()
	s.lastAct = l.monotonic()
	if s.inact > 0 && !s.inactTimer.Pending() {
		l.armInactivity(s, s.inact)
	}
	h, cn := s.h, s.c
	l.call(func() { h.ConnectionCompleted(cn) })
	if s.closed() {
		return
	}
	l.updateRead(s)
	if s.out.Len() > 0 || len(s.files) > 0 {
		l.markDirty(s)
	} else {
		l.afterSend(s)
	}
}

// armInternalTimer arms t, a timer of the loop's own (not counted against
// Options.MaxTimers), to run fn after d.
func (l *Loop) armInternalTimer(t *Timer, d time.Duration, fn func()) {
	l.armInternalTimerAt(t, l.monotonic()+int64(max(d, 0)), fn)
}

// armInternalTimerAt arms t for the loop time deadline.
func (l *Loop) armInternalTimerAt(t *Timer, deadline int64, fn func()) {
	t.l = l
	t.fn = fn
	t.e.Value = t
	if err := l.timerHeap.Push(&t.e, deadline); err != nil {
		t.fn = nil
		l.fail(fmt.Errorf("loop: arm timer: %w", err))
		return
	}
	l.nTimers++
}

// armInactivity arms the inactivity timer of s. Activity only stores
// lastAct; the timer re-arms itself for the remainder when it fires early,
// so traffic costs no heap operation.
func (l *Loop) armInactivity(s *sock, d time.Duration) {
	// inactivitySlack makes the timeout never early as measured by a caller
	// that reads the clock just after the activity (or the
	// SetInactivityTimeout) the loop stamped; it stays well within the
	// documented d plus one loop iteration.
	const inactivitySlack = time.Millisecond
	if s.inactTimer == nil {
		s.inactTimer = new(Timer)
	}
	l.armInternalTimerAt(s.inactTimer, s.lastAct+int64(d+inactivitySlack), func() {
		if s.closed() || s.inact == 0 {
			return
		}
		if idle := time.Duration(l.now - s.lastAct); idle < s.inact {
			l.armInactivity(s, s.inact)
			return
		}
		l.closeSock(s, conn.ErrInactivityTimeout)
	})
}

// sockaddrToAddr converts a kernel address to a net.Addr of network.
func sockaddrToAddr(sa unix.Sockaddr, network string) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		ap := netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
		if network == "udp" {
			return net.UDPAddrFromAddrPort(ap)
		}
		return net.TCPAddrFromAddrPort(ap)
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(a.Addr)
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				ip = ip.WithZone(ifi.Name)
			}
		}
		ap := netip.AddrPortFrom(ip, uint16(a.Port))
		if network == "udp" {
			return net.UDPAddrFromAddrPort(ap)
		}
		return net.TCPAddrFromAddrPort(ap)
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return nil
}

// addrToSockaddr converts a net.Addr (UDP, TCP, IP:port string) for sendto.
func addrToSockaddr(a net.Addr) (unix.Sockaddr, error) {
	var ap netip.AddrPort
	switch v := a.(type) {
	case *net.UDPAddr:
		ap = v.AddrPort()
	case *net.TCPAddr:
		ap = v.AddrPort()
	default:
		var err error
		ap, err = netip.ParseAddrPort(a.String())
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", conn.ErrInvalidAddr, a.String(), err)
		}
	}
	return ipSockaddr(ap.Addr(), int(ap.Port())), nil
}

// ipSockaddr builds the sockaddr of ip:port.
func ipSockaddr(ip netip.Addr, port int) unix.Sockaddr {
	if ip.Is4() || ip.Is4In6() {
		return &unix.SockaddrInet4{Addr: ip.Unmap().As4(), Port: port}
	}
	sa := &unix.SockaddrInet6{Addr: ip.As16(), Port: port}
	if z := ip.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa
}

func familyOf(sa unix.Sockaddr) int {
	switch sa.(type) {
	case *unix.SockaddrInet4:
		return unix.AF_INET
	case *unix.SockaddrInet6:
		return unix.AF_INET6
	}
	return unix.AF_UNIX
}

var errNoPeer = errors.New("loop: datagram has no destination: no datagram received yet")

// closesPending reports work that must not wait for a blocking poll: Unbinds
// due, or held data to deliver.
func (l *Loop) closesPending() bool {
	return len(l.net.closing) > 0 || len(l.net.resumed) > 0
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
		if s != nil && !s.closed() {
			l.closeSock(s, nil)
		}
	}
	l.runCloses()
	deadline := time.Now().Add(5 * time.Second)
	for l.net.live > 0 && time.Now().Before(deadline) {
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
	l.net = netState{stale: l.net.stale, socks: l.net.socks[:0], gens: l.net.gens, free: l.net.free[:0]}
	for i := range l.net.gens {
		l.net.gens[i] = (l.net.gens[i] + 1) & tokGenMask
	}
	l.net.socks = append(l.net.socks, make([]*sock, len(l.net.gens))...)
	for i := len(l.net.gens) - 1; i >= 0; i-- {
		l.net.free = append(l.net.free, uint32(i))
	}
	return errors.Join(errs...)
}
