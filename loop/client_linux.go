package loop

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"golang.org/x/sys/unix"
)

// resolveTimeout bounds a host name lookup of Connect.
const resolveTimeout = 30 * time.Second

// Connect opens a connection to addr with handler h (EventMachine's
// EM.connect and connect_unix_domain). addr is "host:port" or a "unix:"
// address as for StartServer.
//
// As in EventMachine, h.PostInit runs inside Connect, just before it
// returns the Conn; data sent then is queued until the connection is
// established. Then ConnectionCompleted runs, or, if the connection fails,
// Unbind alone, with an *conn.OpError wrapping the errno
// (errors.Is(reason, syscall.ECONNREFUSED)) or conn.ErrConnectTimeout after
// the connect timeout (conn.DefaultConnectTimeout, see
// conn.Conn.SetConnectTimeout). IP literals and unix addresses are connected
// at once; host names are resolved on the Defer pool (a failed lookup is an
// Unbind with an *conn.OpError of Op "resolve"), so the loop never blocks.
//
// It returns ErrNilFunc for a nil h, ErrLoopStopped when the loop is not
// running or is stopping, an error wrapping conn.ErrInvalidAddr, or the
// error of creating the socket; after an error no callback runs. Call only
// from the loop goroutine.
func (l *Loop) Connect(addr string, h conn.Handler) (*conn.Conn, error) {
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
	var sa unix.Sockaddr
	var host string
	var port int
	if network == "unix" {
		sa = &unix.SockaddrUnix{Name: address}
	} else {
		var portStr string
		host, portStr, _ = net.SplitHostPort(address)
		port, _ = strconv.Atoi(portStr)
		if host == "" {
			host = "127.0.0.1"
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			sa = ipSockaddr(ip, port)
		}
	}
	s := l.newSock(sockStream, -1, network)
	s.h = h
	s.c = conn.New(s, h)
	s.life = lifeConnecting // an outbound connection's first state
	s.cl = &clientState{connTo: conn.DefaultConnectTimeout, connStart: l.monotonic()}
	if sa != nil {
		if err := l.startConnect(s, sa); err != nil {
			s.advance(lifeFDClosing)
			if s.fd >= 0 {
				unix.Close(s.fd)
			}
			l.freeSock(s)
			return nil, err
		}
	} else {
		gen, slot := s.gen, s.slot
		err := DeferErr(l, func() ([]netip.Addr, error) {
			ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
			defer cancel()
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}, func(ips []netip.Addr, err error) {
			if l.net.socks[slot] != s || s.gen != gen || s.closed() {
				return
			}
			if err == nil && len(ips) == 0 {
				err = fmt.Errorf("no addresses for %q", host)
			}
			if err != nil {
				l.closeSock(s, l.opError("resolve", s, err))
				return
			}
			if err := l.startConnect(s, ipSockaddr(preferIPv4(ips), port)); err != nil {
				l.closeSock(s, l.opError("connect", s, err))
			}
		})
		if err != nil {
			s.advance(lifeFDClosing)
			l.freeSock(s)
			return nil, err
		}
	}
	l.net.nconns++
	if !s.cl.connBound {
		l.armConnectTimer(s, s.cl.connTo)
	}
	c := s.c
	l.call(func() { h.PostInit(c) })
	return c, nil
}

// startConnect creates the socket of s and submits the connect.
func (l *Loop) startConnect(s *sock, sa unix.Sockaddr) error {
	fd, err := unix.Socket(familyOf(sa), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	if s.network == "tcp" {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	s.fd = fd
	s.raddr = sockaddrToAddr(sa, s.network)
	// The backend may bound the connect itself (io_uring's LINK_TIMEOUT);
	// the deadline counts from Connect, host name lookup included.
	left := max(s.cl.connTo-time.Duration(l.monotonic()-s.cl.connStart), time.Nanosecond)
	bounded, err := l.be.connect(fd, sa, left, s.tok(opConnect))
	if err != nil {
		return err
	}
	s.ops++
	if bounded {
		s.cl.connBound = true
		s.cl.connTimer.Cancel() // armed during a host name lookup
	}
	return nil
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
		return nil, &conn.OpError{Op: "listen", Backend: l.be.kind().String(), Err: os.NewSyscallError("bind", err)}
	}
	s := l.newSock(sockDgram, fd, "udp")
	s.h = h
	s.c = conn.New(s, h)
	s.dg = &dgramState{dbuf: make([]byte, 64<<10)}
	s.lastAct = l.monotonic()
	l.net.nconns++
	c := s.c
	l.call(func() { h.PostInit(c) })
	l.updateRead(s)
	return c, nil
}
