package loop

import (
	"fmt"
	"net"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/connio"
	"github.com/ringmachine/ringmachine/uring/engine"
	"golang.org/x/sys/unix"
)

var _ connio.Driver = (*sock)(nil)

func (s *sock) SendData(b []byte) error {
	if s.kind != sockStream {
		return conn.ErrNotStream
	}
	if s.closing() || s.wrClosed || s.closed() {
		return s.sendRefused()
	}
	if s.fl != nil && s.fl.hard > 0 && s.out.Len()+len(b) > s.fl.hard {
		return conn.ErrOutboundFull
	}
	if len(b) == 0 {
		return nil
	}
	if s.tls() != nil {
		return s.tlsSend(b)
	}
	s.sendRaw(b)
	return nil
}

// sendRaw queues b as is (SendData without its checks; TLS records).
func (s *sock) sendRaw(b []byte) {
	s.out.Write(b)
	s.outSeq += int64(len(b))
	if !s.connecting() {
		s.l.markDirty(s)
	}
	if s.fl != nil && s.fl.high > 0 && !s.aboveHigh && s.out.Len() > s.fl.high {
		s.aboveHigh = true
		s.l.updateRead(s)
	}
}

func (s *sock) Close(afterWriting bool) error {
	if s.closed() || s.detached {
		return nil // (a detached fd is its new owner's to close)
	}
	if s.fl != nil && len(s.fl.feeders) > 0 {
		s.l.proxyTargetClosed(s) // nothing more may join the queue
	}
	if afterWriting && s.tls() != nil && !s.tls().hs && !s.drain {
		_ = s.tls().c.CloseWrite() // close_notify, queued after the data
	}
	if afterWriting && s.tls() != nil && s.tls().hs {
		s.drain = true // the handshake goes on; close_notify and close after it
		return nil
	}
	if afterWriting && s.kind == sockStream && (s.out.Len() > 0 || len(s.files) > 0 || s.sendInFlight) {
		s.drain = true
		return nil
	}
	if afterWriting && s.kind == sockDgram && (len(s.dg.dgrams) > 0 || s.sendInFlight) {
		s.drain = true
		return nil
	}
	s.l.closeSock(s, nil)
	return nil
}

func (s *sock) CloseWrite() error {
	if s.kind != sockStream {
		return conn.ErrNotStream
	}
	if s.closed() || s.closing() {
		return conn.ErrClosed
	}
	if s.wrClosed {
		return nil
	}
	if s.fl != nil && len(s.fl.feeders) > 0 {
		s.l.proxyTargetClosed(s) // nothing more may join the queue
	}
	if s.tls() != nil && !s.tls().hs {
		_ = s.tls().c.CloseWrite() // close_notify before the FIN
	}
	s.wrClosed, s.shutPending = true, true
	if !s.connecting() && s.fd >= 0 {
		s.l.afterSend(s)
	}
	return nil
}

func (s *sock) Pause() {
	s.paused = true
	s.l.updateRead(s)
}

func (s *sock) Resume() {
	s.paused = false
	s.l.updateRead(s)
}

func (s *sock) Paused() bool { return s.paused || s.aboveHigh }

func (s *sock) OutboundSize() int {
	if s.kind == sockDgram {
		return s.dgramBytes()
	}
	return s.queued()
}

// queued is a stream's OutboundSize: the bytes queued, and the plaintext
// waiting for a TLS handshake to end.
func (s *sock) queued() int {
	n := s.out.Len()
	if fl := s.fl; fl != nil {
		n += fl.pipeQ // a proxy's bytes waiting in pipes
		if fl.tl != nil {
			n += fl.tl.pendN
		}
	}
	return n
}

func (s *sock) SetOutboundLimits(low, high, hardCap int) error {
	if low < 0 || high < low || hardCap < 0 || (hardCap > 0 && hardCap < high) {
		return fmt.Errorf("loop: bad outbound limits low=%d high=%d hardCap=%d", low, high, hardCap)
	}
	fl := s.flow()
	fl.low, fl.high, fl.hard = low, high, hardCap
	if s.aboveHigh && (high == 0 || s.out.Len() <= low) {
		s.aboveHigh = false
		s.l.updateRead(s)
	}
	return nil
}

func (s *sock) LocalAddr() net.Addr {
	if s.laddr == nil && s.fd >= 0 && !s.fdClosing() && s.pipe == 0 {
		s.loadAddrs()
	}
	return s.laddr
}

func (s *sock) RemoteAddr() net.Addr {
	if s.raddr == nil && s.fd >= 0 && !s.fdClosing() && s.kind == sockStream && !s.connecting() && s.pipe == 0 {
		s.loadAddrs()
	}
	return s.raddr
}

// loadAddrs fills in the addresses of s not known yet: from the engine for
// an io_uring direct descriptor (one round trip for both), with
// getsockname(2)/getpeername(2) otherwise.
func (s *sock) loadAddrs() {
	if engine.IsDirect(s.fd) {
		local, peer, err := s.l.be.addrs(s.fd)
		if local != nil && s.laddr == nil {
			s.laddr = sockaddrToAddr(local, s.network)
		}
		if err == nil && peer != nil && s.raddr == nil && s.kind == sockStream {
			s.raddr = sockaddrToAddr(peer, s.network)
		}
		return
	}
	if s.laddr == nil {
		if sa, err := unix.Getsockname(s.fd); err == nil {
			s.laddr = sockaddrToAddr(sa, s.network)
		}
	}
	if s.raddr == nil && s.kind == sockStream && !s.connecting() {
		if sa, err := unix.Getpeername(s.fd); err == nil {
			s.raddr = sockaddrToAddr(sa, s.network)
		}
	}
}

func (s *sock) Closing() bool { return s.closed() || s.closing() }

func (s *sock) Counters() (in, out uint64) { return s.stats.BytesIn, s.stats.BytesOut }

func (s *sock) Owner() any { return s.l }

func (s *sock) Control(fn func(fd int) error) error {
	if s.closed() || s.fdClosing() || s.detached {
		return conn.ErrClosed
	}
	if s.fd < 0 {
		// A client whose socket is not made yet: run fn before its connect.
		s.cl.pending = append(s.cl.pending, fn)
		return nil
	}
	return s.l.be.control(s.fd, fn)
}

func (s *sock) NotifyDrained(low int, fn func()) error {
	if s.kind != sockStream {
		return conn.ErrNotStream
	}
	if s.closed() || s.closing() {
		return conn.ErrClosed
	}
	fl := s.flow()
	fl.drainLow, fl.drainFn = low, fn
	fl.drainGen++
	if s.queued() <= low {
		s.l.notifyDrainedLater(s)
	}
	return nil
}
