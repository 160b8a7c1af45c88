package loop

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/connio"
	"golang.org/x/sys/unix"
)

// Datagram sockets: OpenDatagram, SendDatagram and their completions.

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

var errNoPeer = errors.New("loop: datagram has no destination: no datagram received yet")

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
	if errRetry(c.Res) && !s.closed() {
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
	if c.Res >= 0 {
		s.stats.BytesOut += uint64(c.Res)
		s.lastAct = l.now
	} else if err := errnoOf(c.Res); err != unix.ECANCELED {
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
	if c.Res >= 0 {
		s.stats.BytesIn += uint64(len(c.Buf))
		s.lastAct = l.now
		if !l.wantRead(s) {
			// Paused while the receive was in flight: keep the datagram for
			// Resume, as stream bytes are kept (both backends).
			s.dg.held = append(s.dg.held, dgram{b: bytes.Clone(c.Buf), to: c.From})
			l.updateRead(s)
			return
		}
		l.deliverDatagram(s, c.Buf, c.From)
	} else if err := errnoOf(c.Res); errors.Is(err, unix.EBADF) || errors.Is(err, unix.ENOTSOCK) {
		l.closeSock(s, l.opError("recvfrom", s, err))
		return
	}
	// Other errors are ICMP reports (ECONNREFUSED, ...) for an earlier
	// datagram, or a cancel: as with EventMachine, the socket goes on
	// receiving.
	l.updateRead(s)
}

// OpenDatagram opens a UDP socket bound to addr ("host:port"; port 0 picks
// a free one, see conn.Conn.LocalAddr) with handler h (EventMachine's
// open_datagram_socket). PostInit runs before it returns; each datagram
// then goes to h.ReceiveDatagram with its sender when h implements
// conn.DatagramReceiver, to h.ReceiveData otherwise. Reply with
// c.SendDatagram(b, nil) (to the last sender) or to any address.
//
// Errors are as for StartServer. Call only from the loop goroutine.
func (l *Loop) OpenDatagram(addr string, h conn.Handler) (*conn.Conn, error) {
	if h == nil {
		return nil, ErrNilFunc
	}
	if !l.running.Load() || l.stopping || l.be == nil {
		return nil, ErrLoopStopped
	}
	network, address, err := conn.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if network != "tcp" {
		return nil, fmt.Errorf("%w: %q: datagram sockets take host:port", conn.ErrInvalidAddr, addr)
	}
	sa, err := listenSockaddr(address)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(familyOf(sa), unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &conn.OpError{Op: "socket", Backend: l.be.kind().String(), Err: os.NewSyscallError("socket", err)}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, &conn.OpError{Op: "listen", Backend: l.be.kind().String(), Addr: sockaddrToAddr(sa, "udp"), Err: os.NewSyscallError("bind", err)}
	}
	if dm, ok := l.be.(directMover); ok && dm.directFiles() > 0 && !l.opts.URing.ProcessFDs && !testHookProcessFDs {
		// Made and bound with system calls, then moved into the ring's
		// table: the socket holds no process descriptor. With no slot
		// free it keeps its process fd.
		if dfd, err := dm.registerDirect(fd); err == nil {
			fd = dfd
		}
	}
	s := l.newSock(sockDgram, fd, "udp")
	s.h = h
	s.c = connio.NewConn(s, h).(*conn.Conn)
	s.dg = &dgramState{dbuf: make([]byte, 64<<10)}
	s.lastAct = l.monotonic()
	l.net.nconns++
	c := s.c
	l.call(func() { h.PostInit(c) })
	l.updateRead(s)
	return c, nil
}
