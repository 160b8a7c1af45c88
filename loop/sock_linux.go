package loop

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/connio"
	"github.com/ringmachine/ringmachine/uring/engine"
	"golang.org/x/sys/unix"
)

type sockKind uint8

const (
	sockListener sockKind = iota + 1
	sockStream
	sockDgram
	sockPidfd // a WatchProcess: the watched process's pidfd
	sockWatch // a Watch: a descriptor its owner reads and writes
	sockChild // a Popen child's pidfd
	// sockInotify is the inotify instance of the loop's WatchFile watches.
	sockInotify
)

// sock is the loop's record of one socket: a server's listener, a stream
// connection or a datagram socket. It implements connio.Driver. It owns the
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
	pipe         pipeEnd // a pipe or FIFO (Attach): read and write, not recv and send
	detached     bool    // Detach: the fd is its caller's, never closed here

	network string // "tcp", "unix", "udp"
	h       conn.Handler
	c       *conn.Conn
	srv     *Server // listener: its server
	reason  error

	out connio.Outbound
	fl  *flowState   // set by SetOutboundLimits or when paused data is held
	dg  *dgramState  // datagram sockets only
	cl  *clientState // outbound connections only

	// SendFile segments, each sent once the bytes queued before it are.
	files   []*fileSeg
	sentSeq int64 // bytes of out sent so far
	outSeq  int64 // bytes of out written so far

	lastAct int64       // l.now of the last byte in or out (inactivity timeouts)
	inact   *inactivity // allocated by the first SetInactivityTimeout

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

// inactivity is a connection's inactivity timeout and its timer, out of
// line: most connections have none, and the record stays in its size class.
type inactivity struct {
	d time.Duration
	t Timer
}

// flowState holds, out of line, what most connections never use: the
// outbound limits, the bytes received while reading was paused, the
// NotifyDrained function and the TLS session.
type flowState struct {
	held            []byte    // received after a pause, delivered on Resume
	low, high, hard int       // SetOutboundLimits
	tl              *tlsState // after StartTLS (tls_linux.go)
	drainLow        int       // NotifyDrained: run drainFn at or below drainLow
	drainFn         func()
	drainGen        uint32 // counts NotifyDrained calls

	// Proxying (proxy_linux.go). As a source: its proxy, the bytes it
	// sent on, and the spliceIn in flight with its pipe. As a target: the
	// sources feeding it, the bytes in its queued pipes, and the sources
	// to tell of its Unbind.
	px       *proxyState
	proxied  uint64
	splicing *proxyState
	inPipe   *proxyPipe
	feeders  []*sock
	pipeQ    int
	unbound  []*sock

	pw *ProcessWatch // a sockPidfd's watch (process_linux.go)
	fw *Watch        // a sockWatch's watch (watch_linux.go)

	child *child // a Popen connection's child, or a sockChild's (popen_linux.go)

	sendErr error // EPIPE from a send: the Unbind reason once the peer's EOF comes (peerStoppedReading)
}

// tls returns s's TLS session, nil without StartTLS.
func (s *sock) tls() *tlsState {
	if s.fl == nil {
		return nil
	}
	return s.fl.tl
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
	chunks   connio.ChunkCache // outbound chunks shared by the loop's connections
	zcChunks connio.ChunkCache // the same for zero-copy sends: slab chunks only (newSock)
	tlsBuf   []byte            // plaintext of one TLS record (tlsDrain)
	sendBufs [][]byte          // scratch for the buffers of one send (the engine copies it)
	recvBufs [][]byte          // free single-shot receive buffers (see getRecvBuf)
	heldBufs [][]byte          // free buffers for bytes held during a pause (see holdBytes)
	pipes    []*proxyPipe      // free pipes for proxies (see getPipe)
	allPipes map[*proxyPipe]struct{}

	ino         *inotifyState // WatchFile's instance (watchfile_linux.go)
	fileUnbinds []*FileWatch  // file watches whose Unbind is due
}

func (s *sock) tok(k opKind) uint64 { return makeToken(k, s.slot, s.gen) }

// newSock allocates a record in the slot table.
// outboundChunksMax bounds the outbound chunks a loop keeps for reuse: 4 MiB
// of 16 KiB chunks (and as many in the io_uring engine's pinned send slabs).
const outboundChunksMax = 256

// chunkSource is implemented by backends whose sends want outbound chunks
// from memory of their own (the io_uring engine's pinned send slabs).
type chunkSource interface {
	sendChunks() connio.ChunkSource
}

// useBackendChunks makes outbound chunks come from be's memory when it has
// some (chunkSource), for this run.
func (l *Loop) useBackendChunks(be backend) {
	l.net.chunks.Src, l.net.zcChunks.Src = nil, nil
	if cs, ok := be.(chunkSource); ok {
		l.net.chunks.Src = cs.sendChunks()
		l.net.zcChunks.Src = l.net.chunks.Src
	}
}

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
		n.chunks.Max = outboundChunksMax
	}
	if l.opts.URing.SendZC == 0 || l.be.kind() != URing {
		s.out.SetCache(&n.chunks)
	} else {
		// With zero-copy sends the kernel reads sent chunks until a
		// notification that comes after the send's completion (see
		// URingOptions.SendZC). A chunk of the engine's send slabs goes
		// back to them at once: the engine holds it until the
		// notification (uring.Slabs.Hold), and the slabs hand it out
		// again only then. A chunk of the Go heap goes to the garbage
		// collector, which the engine's reference holds off, rather than
		// back to a cache (zcChunks keeps none: its Max is 0).
		s.out.SetCache(&n.zcChunks)
	}
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
	if s.fl != nil && s.fl.child != nil {
		s.fl = &flowState{child: s.fl.child} // PID and ExitStatus outlive the record
	} else {
		s.fl = nil
	}
	s.dg = nil
	l.dropFiles(s)
}

// dropFiles releases s's SendFile segments, sent or not.
func (l *Loop) dropFiles(s *sock) {
	for _, f := range s.files {
		if f.pipe != nil {
			l.releaseSegment(f)
		} else {
			f.f.Close()
		}
	}
	s.files = nil
}

// dropFD closes fd, which belongs to no socket record (an accepted
// connection nobody takes): with close(2), or through the engine for an
// io_uring direct descriptor, which no system call can close.
func (l *Loop) dropFD(fd int) {
	if !engine.IsDirect(fd) {
		unix.Close(fd)
		return
	}
	if err := l.be.closeFD(fd, makeToken(opDropFD, 0, 0)); err != nil {
		l.report(fmt.Errorf("loop: close direct descriptor %d: %w", fd-engine.DirectBase, err))
	}
}

// ConnectionCount reports the open connections, stream and datagram, client
// and server (EventMachine's connection_count). Call only from the loop
// goroutine, or once Run has returned (0 then: every connection was closed).
func (l *Loop) ConnectionCount() int { return l.net.nconns }

// dispatch handles one completion reported by the backend.
func (l *Loop) dispatch(c *completion) {
	if l.clockStale {
		// The first completion of a poll: handlers that read Now or arm
		// timers must not measure from before the wait (libuv refreshes its
		// time right after epoll_wait too). Once per poll, not per completion.
		l.refreshAfterWait()
	}
	k, slot, gen := splitToken(c.UserData)
	if k == opDropFD {
		return // dropFD's close: no record waits for it
	}
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
	final := !c.More()
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
	case opSocket:
		l.onSocket(s, c)
	case opRecvFrom:
		l.onRecvFrom(s, c)
	case opSendTo:
		l.onSendTo(s, c)
	case opSendFile:
		l.onSendFile(s, c)
	case opSpliceIn:
		l.onSpliceIn(s, c)
	case opSpliceOut:
		l.onSpliceOut(s, c)
	case opPoll:
		switch s.kind {
		case sockWatch:
			l.onWatchReady(s, c, false)
		case sockChild:
			l.onChildReady(s, c)
		case sockInotify:
			l.onInotifyReady(s, c)
		default:
			l.onProcessExit(s, c)
		}
	case opWaitid:
		l.onChildWait(s, c)
	case opPollOut:
		l.onWatchReady(s, c, true)
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
	if reason == io.EOF && s.fl != nil && s.fl.sendErr != nil {
		reason = s.fl.sendErr // the peer had stopped reading (peerStoppedReading)
	}
	s.reason = reason
	if s.kind == sockInotify {
		l.inotifyClosed(s) // its file watches end
	}
	if s.tls() != nil {
		s.tlsClose()
	}
	if s.fl != nil {
		if s.fl.px != nil {
			l.proxyEnd(s, nil)
		}
		if len(s.fl.feeders) > 0 {
			l.proxyTargetClosed(s)
		}
	}
	if s.inact != nil {
		s.inact.t.Cancel()
	}
	if s.cl != nil {
		s.cl.connTimer.Cancel()
	}
	if s.kind == sockStream || s.kind == sockDgram {
		l.net.nconns--
		l.net.closing = append(l.net.closing, s)
	}
	switch {
	case s.ops == 0 || s.fd < 0:
	case s.ops == 1 && s.recvArmed && (s.kind == sockStream || s.kind == sockDgram):
		// Only the receive is in flight, as in most closes of a connection
		// (nothing left to send; a listener's armed op is its accept):
		// cancel it by its token, which io_uring finds by hash,
		// rather than by fd, which walks every armed poll and io-wq queue
		// until a walk finds nothing more (5-6 % of the server's CPU under
		// connection churn; bench/README "Connection churn").
		l.cancelRecv(s)
	default:
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
	if s.fd < 0 || s.kind == sockWatch || (s.detached && !engine.IsDirect(s.fd)) {
		l.freeSock(s) // (a watched or detached fd is its owner's to close)
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
		if s.fl != nil && len(s.fl.unbound) > 0 {
			l.proxyTellUnbound(s)
		}
		if s.fl != nil && s.fl.child != nil {
			l.childClosed(s)
			continue
		}
		if s.h != nil && s.c != nil {
			h, c, r := s.h, s.c, s.reason
			l.call(func() { h.Unbind(c, r) })
		}
	}
	n.closing = n.closing[:0]
	l.runFileUnbinds()
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
