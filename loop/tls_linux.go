package loop

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringmachine/ringmachine/conn"
)

// TLS (conn.Conn.StartTLS): crypto/tls over an in-memory transport.
//
// crypto/tls only offers a blocking net.Conn API. The handshake, whose
// state cannot be resumed after an error from its transport, runs on a
// goroutine of its own: its reads wait on the transport for the
// ciphertext the loop receives, and its writes reach the socket through
// NextTick, in order. The goroutine ends with the handshake (or when the
// connection closes, which closes the transport), so only handshaking
// connections have one. From then on the loop owns the tls.Conn: received
// ciphertext is appended to the transport and the loop calls Read until
// the transport says it would block, an error crypto/tls treats as
// temporary, so the record state stays intact for the next bytes; Write
// encrypts on the loop and its records go straight to the outbound queue.
// The handshake's CPU cost is off the loop thread; a record costs the loop
// one decryption or encryption and one copy.

// tlsState is a sock's TLS session.
type tlsState struct {
	c       *tls.Conn
	tr      *tlsTransport
	hs      bool     // handshaking: the goroutine owns c
	started bool     // the handshake goroutine runs (a client starts it once connected)
	pending [][]byte // plaintext sent during the handshake
	pendN   int
	timer   *Timer
}

// errWouldBlock is the transport's "no ciphertext yet" once the loop reads:
// a temporary net.Error, which crypto/tls returns without failing the
// connection.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "loop: TLS transport would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// tlsTransport is the net.Conn under a tls.Conn.
type tlsTransport struct {
	mu     sync.Mutex
	cond   sync.Cond
	in     []byte // ciphertext received and not read by crypto/tls
	lent   bool   // in is the caller's buffer (lend), not ours
	eof    bool   // the peer closed its side
	closed bool
	onLoop atomic.Bool // the handshake is over: the loop reads and writes
	l      *Loop
	s      *sock

	// Record framing of what Read hands out: crypto/tls is never given
	// bytes past the record it is reading, so once Read stops, whatever it
	// has not decrypted is still here (and is held for Resume), never
	// inside crypto/tls where nothing would make the loop read it.
	hdr  [5]byte
	hdrN int // bytes of the next record's header handed out
	left int // bytes of the current record's body still to hand out
}

func newTLSTransport(l *Loop, s *sock) *tlsTransport {
	t := &tlsTransport{l: l, s: s}
	t.cond.L = &t.mu
	return t
}

// Read hands crypto/tls received ciphertext: during the handshake it waits
// for some; afterwards it returns errWouldBlock when there is none.
func (t *tlsTransport) Read(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.in) == 0 {
		switch {
		case t.closed:
			return 0, net.ErrClosed
		case t.eof:
			return 0, io.EOF
		case t.onLoop.Load():
			return 0, errWouldBlock
		}
		t.cond.Wait()
	}
	// Up to the end of the current record's header or body.
	limit := t.left
	if limit == 0 {
		limit = len(t.hdr) - t.hdrN
	}
	n := copy(b[:min(len(b), limit)], t.in)
	if t.left > 0 {
		t.left -= n
	} else {
		copy(t.hdr[t.hdrN:], t.in[:n])
		if t.hdrN += n; t.hdrN == len(t.hdr) {
			t.hdrN, t.left = 0, int(t.hdr[3])<<8|int(t.hdr[4])
		}
	}
	t.in = t.in[n:]
	if len(t.in) == 0 && !t.lent {
		t.in = t.in[:0:0] // drop the buffer once read: idle sessions hold none
	}
	return n, nil
}

// Write queues crypto/tls's records on the socket: directly on the loop,
// through NextTick from the handshake goroutine.
func (t *tlsTransport) Write(b []byte) (int, error) {
	if t.onLoop.Load() {
		t.s.sendRaw(b)
		return len(b), nil
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	cp := append([]byte(nil), b...)
	s := t.s
	if err := t.l.NextTick(func() {
		if !s.closed() {
			s.sendRaw(cp)
		}
	}); err != nil {
		return 0, err
	}
	return len(b), nil
}

// feed appends received ciphertext and wakes the handshake goroutine.
func (t *tlsTransport) feed(b []byte) {
	t.mu.Lock()
	t.in = append(t.in, b...)
	t.mu.Unlock()
	t.cond.Signal()
}

// lend hands the transport b, which the caller keeps valid until keep:
// when nothing is buffered it is read in place (no copy).
func (t *tlsTransport) lend(b []byte) {
	t.mu.Lock()
	if len(t.in) == 0 {
		t.in, t.lent = b, true
	} else {
		t.in = append(t.in, b...)
	}
	t.mu.Unlock()
}

// keep copies what is left of a lent buffer, which its owner reuses.
// crypto/tls reads up to the end of the record it is on, and a pause takes
// the rest (tlsDrain), so normally nothing is left: this is the guard for
// the bytes of a drain that stopped otherwise.
func (t *tlsTransport) keep() {
	t.mu.Lock()
	if t.lent {
		t.lent = false
		if len(t.in) > 0 {
			t.in = append([]byte(nil), t.in...)
		} else {
			t.in = nil
		}
	}
	t.mu.Unlock()
}

// take removes and returns the ciphertext not read yet.
func (t *tlsTransport) take() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.in
	t.in, t.lent = nil, false // the caller copies b before its owner reuses it
	return b
}

func (t *tlsTransport) setEOF() {
	t.mu.Lock()
	t.eof = true
	t.mu.Unlock()
	t.cond.Broadcast()
}

// Close ends the transport: a handshake waiting for bytes fails.
func (t *tlsTransport) Close() error {
	t.mu.Lock()
	t.closed = true
	t.in = nil
	t.mu.Unlock()
	t.cond.Broadcast()
	return nil
}

func (t *tlsTransport) LocalAddr() net.Addr  { return tlsAddr{} }
func (t *tlsTransport) RemoteAddr() net.Addr { return tlsAddr{} }

// The deadlines are the loop's (the handshake timeout, inactivity).
func (t *tlsTransport) SetDeadline(time.Time) error      { return nil }
func (t *tlsTransport) SetReadDeadline(time.Time) error  { return nil }
func (t *tlsTransport) SetWriteDeadline(time.Time) error { return nil }

type tlsAddr struct{}

func (tlsAddr) Network() string { return "ringmachine" }
func (tlsAddr) String() string  { return "ringmachine" }

func (s *sock) StartTLS(cfg *tls.Config) error {
	if s.kind != sockStream {
		return conn.ErrNotStream
	}
	if s.closed() || s.closing() || s.wrClosed {
		return conn.ErrClosed
	}
	if s.tls() != nil {
		return errors.New("loop: StartTLS: TLS started already")
	}
	if fl := s.fl; fl != nil && (fl.px != nil || fl.splicing != nil || len(fl.feeders) > 0 || fl.pipeQ > 0) {
		return errors.New("loop: StartTLS: the connection is a proxy's source or target (StopProxy first)")
	}
	l := s.l
	tr := newTLSTransport(l, s)
	tl := &tlsState{tr: tr, hs: true}
	if s.cl != nil {
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			cfg = cfg.Clone()
			cfg.ServerName = s.cl.host
		}
		tl.c = tls.Client(tr, cfg)
	} else {
		if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
			return errors.New("loop: StartTLS: a server's tls.Config needs a certificate (Certificates, GetCertificate or GetConfigForClient)")
		}
		tl.c = tls.Server(tr, cfg)
	}
	if !s.connecting() {
		if err := l.tlsTimer(s, tl); err != nil {
			return err
		}
	}
	s.flow().tl = tl
	if !s.connecting() {
		l.tlsStart(s)
	}
	return nil
}

// tlsTimer arms the handshake timeout of s (from the start of the
// handshake: a client's connect has a timeout of its own).
func (l *Loop) tlsTimer(s *sock, tl *tlsState) error {
	t, err := l.AddTimer(l.opts.TLSHandshakeTimeout, func() {
		if s.tls() == tl && tl.hs && !s.closed() {
			l.closeSock(s, conn.ErrTLSHandshakeTimeout)
		}
	})
	tl.timer = t
	return err
}

// tlsStart starts the handshake goroutine of s (a client's once it is
// connected).
func (l *Loop) tlsStart(s *sock) {
	tl := s.tls()
	if tl.started {
		return
	}
	if tl.timer == nil {
		if err := l.tlsTimer(s, tl); err != nil {
			l.closeSock(s, err)
			return
		}
	}
	tl.started = true
	l.readiedWorkers = true
	l.tlsGoroutines.Add(1)
	go func() {
		defer l.tlsGoroutines.Done()
		err := tl.c.Handshake()
		if l.NextTick(func() { l.tlsHandshakeDone(s, tl, err) }) != nil {
			_ = tl.tr.Close() // the loop stopped: nothing will read it
		}
	}()
}

// tlsHandshakeDone runs on the loop once the handshake goroutine is done.
func (l *Loop) tlsHandshakeDone(s *sock, tl *tlsState, err error) {
	if s.tls() != tl || s.closed() {
		return
	}
	tl.timer.Cancel()
	if err != nil {
		l.closeSock(s, &conn.OpError{Op: "tls handshake", Backend: l.be.kind().String(), Addr: s.raddr, Err: err})
		return
	}
	tl.hs = false
	tl.tr.onLoop.Store(true)
	if th, ok := s.h.(conn.TLSHandshaker); ok {
		c := s.c
		l.call(func() { th.HandshakeCompleted(c) })
		if s.closed() {
			return
		}
	}
	pending := tl.pending
	tl.pending, tl.pendN = nil, 0
	for _, b := range pending {
		if _, err := tl.c.Write(b); err != nil {
			l.closeSock(s, &conn.OpError{Op: "tls write", Backend: l.be.kind().String(), Addr: s.raddr, Err: err})
			return
		}
	}
	if (s.drain || s.shutPending) && !s.closed() {
		// CloseAfterWriting or CloseWrite during the handshake: close_notify
		// now, then the close or the shutdown once it is sent.
		_ = tl.c.CloseWrite()
		l.afterSend(s)
	}
	l.tlsDrain(s)
	if s.rdEOF && !s.closed() && s.heldLen() == 0 {
		l.peerEOF(s) // the peer closed during the handshake
	}
}

// tlsSend encrypts b (SendData on a TLS connection).
func (s *sock) tlsSend(b []byte) error {
	tl := s.tls()
	if tl.hs {
		tl.pending = append(tl.pending, append([]byte(nil), b...))
		tl.pendN += len(b)
		return nil
	}
	if _, err := tl.c.Write(b); err != nil {
		return &conn.OpError{Op: "tls write", Backend: s.l.be.kind().String(), Addr: s.raddr, Err: err}
	}
	return nil
}

// tlsFeed takes received ciphertext (deliver on a TLS connection).
func (l *Loop) tlsFeed(s *sock, data []byte) {
	tl := s.tls()
	if tl.hs {
		tl.tr.feed(data) // the handshake goroutine reads it later: a copy
		l.readiedWorkers = true
		return
	}
	// Decrypted in place while data is valid; what is left is copied.
	tl.tr.lend(data)
	l.tlsDrain(s)
	tl.tr.keep()
}

// tlsBufSize holds the plaintext of a whole TLS record, so Read never
// leaves part of one inside crypto/tls.
const tlsBufSize = 16<<10 + 1024

// tlsDrain decrypts what the transport holds and delivers the plaintext,
// until crypto/tls needs more ciphertext, the handler pauses (the rest of
// the ciphertext is held for Resume), or the connection ends.
func (l *Loop) tlsDrain(s *sock) {
	tl := s.tls()
	if l.net.tlsBuf == nil {
		l.net.tlsBuf = make([]byte, tlsBufSize)
	}
	buf := l.net.tlsBuf
	for !s.closed() && s.tls() == tl {
		if !l.wantRead(s) {
			if rest := tl.tr.take(); len(rest) > 0 {
				l.holdBytes(s, rest) // fed again on Resume
			}
			return
		}
		n, err := tl.c.Read(buf)
		data := buf[:n]
		if n > 0 && s.fl.px != nil {
			data = l.proxyForward(s, data)
		}
		if len(data) > 0 {
			h, c := s.h, s.c
			l.call(func() { h.ReceiveData(c, data) })
			if l.opts.DebugPoisonReceive {
				for i := range data {
					data[i] = 0xDB
				}
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, errWouldBlock):
			return
		case errors.Is(err, io.EOF):
			// close_notify (or EOF at a record boundary): the peer's end
			// of the stream, as a plain connection's EOF.
			if !s.closed() && !s.rdEOF {
				s.rdEOF = true
				l.updateRead(s)
				l.peerEOF(s)
			}
			return
		default:
			if !s.closed() {
				l.closeSock(s, &conn.OpError{Op: "tls read", Backend: l.be.kind().String(), Addr: s.raddr, Err: err})
			}
			return
		}
	}
}

// tlsClose ends s's TLS session when s closes: a handshake goroutine
// waiting for bytes returns.
func (s *sock) tlsClose() {
	if tl := s.tls(); tl != nil {
		if tl.timer != nil {
			tl.timer.Cancel()
		}
		_ = tl.tr.Close()
	}
}

func (s *sock) TLSState() (tls.ConnectionState, bool) {
	if s.tls() == nil || s.tls().hs {
		return tls.ConnectionState{}, false
	}
	return s.tls().c.ConnectionState(), true
}
