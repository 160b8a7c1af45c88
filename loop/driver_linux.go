package loop

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"golang.org/x/sys/unix"
)

var _ conn.Driver = (*sock)(nil)

func (s *sock) SendData(b []byte) error {
	if s.kind != sockStream {
		return conn.ErrNotStream
	}
	if s.closing() || s.wrClosed || s.closed() {
		return conn.ErrClosed
	}
	if s.fl != nil && s.fl.hard > 0 && s.out.Len()+len(b) > s.fl.hard {
		return conn.ErrOutboundFull
	}
	if len(b) == 0 {
		return nil
	}
	s.out.Write(b)
	s.outSeq += int64(len(b))
	if !s.connecting() {
		s.l.markDirty(s)
	}
	if s.fl != nil && s.fl.high > 0 && !s.aboveHigh && s.out.Len() > s.fl.high {
		s.aboveHigh = true
		s.l.updateRead(s)
	}
	return nil
}

func (s *sock) SendFile(path string, offset, n int64) error {
	if s.kind != sockStream {
		return conn.ErrNotStream
	}
	if s.closing() || s.wrClosed || s.closed() {
		return conn.ErrClosed
	}
	if offset < 0 {
		return fmt.Errorf("loop: SendFile: negative offset %d", offset)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	size := st.Size() - offset
	if n >= 0 && n < size {
		size = n
	}
	if size <= 0 {
		f.Close()
		return nil
	}
	s.files = append(s.files, &fileSeg{f: f, at: s.outSeq, off: offset, n: size})
	if !s.connecting() {
		s.l.markDirty(s)
	}
	return nil
}

// submitSendFile sends the next part of the first file segment.
func (l *Loop) submitSendFile(s *sock) {
	f := s.files[0]
	n := int(min(f.n, 1<<30))
	if err := l.be.sendFile(s.fd, int(f.f.Fd()), f.off, n, s.tok(opSendFile)); err != nil {
		l.closeSock(s, l.opError("sendfile", s, err))
		return
	}
	s.ops++
	s.sendInFlight = true
}

func (l *Loop) onSendFile(s *sock, c *completion) {
	s.sendInFlight = false
	if s.closed() {
		return
	}
	if errRetry(c.res) {
		l.afterSend(s) // nothing sent (see errRetry): the segment goes again
		return
	}
	if c.res < 0 {
		l.closeSock(s, l.opError("sendfile", s, errnoOf(c.res)))
		return
	}
	f := s.files[0]
	f.off += int64(c.res)
	f.n -= int64(c.res)
	s.stats.BytesOut += uint64(c.res)
	s.lastAct = l.monotonic()
	if f.n <= 0 || c.res == 0 { // done, or the file shrank
		f.f.Close()
		s.files[0] = nil
		s.files = s.files[1:]
		if len(s.files) == 0 {
			s.files = nil
		}
	}
	l.afterSend(s)
}

func (s *sock) SendDatagram(b []byte, addr net.Addr) error {
	if s.kind != sockDgram {
		return conn.ErrNotDatagram
	}
	if s.closing() || s.closed() {
		return conn.ErrClosed
	}
	var to unix.Sockaddr
	if addr == nil {
		if s.dg.lastFrom == nil {
			return errNoPeer
		}
		to = s.dg.lastFrom
	} else {
		var err error
		if to, err = addrToSockaddr(addr); err != nil {
			return err
		}
	}
	if s.fl != nil && s.fl.hard > 0 && s.dgramBytes()+len(b) > s.fl.hard {
		return conn.ErrOutboundFull
	}
	s.dg.dgrams = append(s.dg.dgrams, dgram{b: append([]byte(nil), b...), to: to})
	s.l.markDirty(s)
	return nil
}

func (s *sock) dgramBytes() int {
	n := 0
	for _, d := range s.dg.dgrams {
		n += len(d.b)
	}
	return n
}

func (s *sock) Close(afterWriting bool) error {
	if s.closed() {
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

func (s *sock) SetInactivityTimeout(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("loop: negative inactivity timeout %v", d)
	}
	s.inact = d
	s.lastAct = s.l.monotonic()
	s.inactTimer.Cancel()
	if d > 0 && !s.closed() && !s.connecting() {
		s.l.armInactivity(s, d)
	}
	return nil
}

func (s *sock) InactivityTimeout() time.Duration { return s.inact }

func (s *sock) SetConnectTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("loop: connect timeout %v must be positive", d)
	}
	if s.cl == nil {
		return nil // an accepted connection: connected already
	}
	s.cl.connTo = d
	if s.connecting() && !s.closed() {
		left := d - time.Duration(s.l.monotonic()-s.cl.connStart)
		// A connect the backend bounds (io_uring) gets its bound moved; if
		// that cannot be submitted, the loop's timer takes over (the old
		// bound stays armed, so it only works to shorten the timeout).
		if s.cl.connBound && s.l.be.updateConnectTimeout(s.tok(opConnect), left) == nil {
			return nil
		}
		s.cl.connTimer.Cancel()
		s.l.armConnectTimer(s, left)
	}
	return nil
}

func (l *Loop) armConnectTimer(s *sock, d time.Duration) {
	l.armInternalTimer(&s.cl.connTimer, d, func() {
		if s.connecting() && !s.closed() {
			l.closeSock(s, conn.ErrConnectTimeout)
		}
	})
}

func (s *sock) OutboundSize() int {
	if s.kind == sockDgram {
		return s.dgramBytes()
	}
	return s.out.Len()
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
	if s.laddr == nil && s.fd >= 0 && !s.fdClosing() {
		if sa, err := unix.Getsockname(s.fd); err == nil {
			s.laddr = sockaddrToAddr(sa, s.network)
		}
	}
	return s.laddr
}

func (s *sock) RemoteAddr() net.Addr {
	if s.raddr == nil && s.fd >= 0 && !s.fdClosing() && s.kind == sockStream && !s.connecting() {
		if sa, err := unix.Getpeername(s.fd); err == nil {
			s.raddr = sockaddrToAddr(sa, s.network)
		}
	}
	return s.raddr
}

func (s *sock) Closing() bool { return s.closed() || s.closing() }

func (s *sock) Stats() conn.Stats { return s.stats }

// submitDatagram sends the first queued datagram.
func (l *Loop) submitDatagram(s *sock) {
	if len(s.dg.dgrams) == 0 {
		return
	}
	d := s.dg.dgrams[0]
	if err := l.be.sendTo(s.fd, d.b, d.to, s.tok(opSendTo)); err != nil {
		s.dg.dgrams = s.dg.dgrams[1:]
		l.report(l.opError("sendto", s, err))
		if len(s.dg.dgrams) > 0 {
			l.markDirty(s)
		}
		return
	}
	s.ops++
	s.sendInFlight = true
}

func (l *Loop) onSendTo(s *sock, c *completion) {
	s.sendInFlight = false
	if errRetry(c.res) && !s.closed() {
		l.markDirty(s) // not sent (see errRetry): the same datagram goes again
		return
	}
	if len(s.dg.dgrams) > 0 {
		s.dg.dgrams[0] = dgram{}
		s.dg.dgrams = s.dg.dgrams[1:]
	}
	if s.closed() {
		return
	}
	if c.res >= 0 {
		s.stats.BytesOut += uint64(c.res)
		s.lastAct = l.monotonic()
	} else if err := errnoOf(c.res); err != unix.ECANCELED {
		// Reported like a failure at submission, so both backends tell the
		// handler the same (io_uring fails some sends earlier than epoll).
		l.report(l.opError("sendto", s, err))
	}
	if len(s.dg.dgrams) > 0 {
		l.markDirty(s)
		return
	}
	s.dg.dgrams = nil
	if s.drain {
		l.closeSock(s, nil)
	}
}

// deliverDatagram hands one datagram to the handler: ReceiveDatagram with
// its sender when the handler has it, ReceiveData otherwise.
func (l *Loop) deliverDatagram(s *sock, data []byte, from unix.Sockaddr) {
	if from != nil {
		s.dg.lastFrom = from
	}
	h, cn := s.h, s.c
	if r, ok := h.(conn.DatagramReceiver); ok {
		addr := sockaddrToAddr(from, "udp")
		l.call(func() { r.ReceiveDatagram(cn, data, addr) })
	} else {
		l.call(func() { h.ReceiveData(cn, data) })
	}
	if l.opts.DebugPoisonReceive {
		for i := range data {
			data[i] = 0xDB
		}
	}
}

func (l *Loop) onRecvFrom(s *sock, c *completion) {
	s.recvArmed = false
	s.recvCancel = false
	if s.closed() {
		return
	}
	if c.res >= 0 {
		s.stats.BytesIn += uint64(len(c.buf))
		s.lastAct = l.monotonic()
		if !l.wantRead(s) {
			// Paused while the receive was in flight: keep the datagram for
			// Resume, as stream bytes are kept (both backends).
			s.dg.held = append(s.dg.held, dgram{b: bytes.Clone(c.buf), to: c.from})
			l.updateRead(s)
			return
		}
		l.deliverDatagram(s, c.buf, c.from)
	} else if err := errnoOf(c.res); errors.Is(err, unix.EBADF) || errors.Is(err, unix.ENOTSOCK) {
		l.closeSock(s, l.opError("recvfrom", s, err))
		return
	}
	// Other errors are ICMP reports (ECONNREFUSED, ...) for an earlier
	// datagram, or a cancel: as with EventMachine, the socket goes on
	// receiving.
	l.updateRead(s)
}
