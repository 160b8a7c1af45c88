package loop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/connio"
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
	s.c = connio.NewConn(s, h).(*conn.Conn)
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

// startConnect creates the socket of s and submits the connect. On
// io_uring the socket is a direct descriptor (unless
// URingOptions.ProcessFDs), which the ring creates: the connect follows
// its completion (onSocket).
func (l *Loop) startConnect(s *sock, sa unix.Sockaddr) error {
	if !l.opts.URing.ProcessFDs && !testHookProcessFDs && !s.cl.processFD {
		err := l.be.socketDirect(familyOf(sa), s.tok(opSocket))
		if err == nil {
			s.cl.sa = sa
			s.ops++
			return nil
		}
		if !errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, unix.ENFILE) {
			return err
		}
		// No table, or a full one: a process fd.
	}
	fd, err := unix.Socket(familyOf(sa), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	return l.connectFD(s, fd, sa)
}

// onSocket handles the creation of a client's direct socket: the connect
// goes on with it, or with a process fd when the table filled meanwhile.
func (l *Loop) onSocket(s *sock, c *completion) {
	sa := s.cl.sa
	s.cl.sa = nil
	if c.res >= 0 {
		s.fd = int(c.res) // closed by maybeCloseFD if s was closed meanwhile
	}
	if s.closed() {
		return
	}
	var err error
	switch {
	case c.res >= 0:
		err = l.connectFD(s, int(c.res), sa)
	case c.res == -int32(unix.ENFILE):
		s.cl.processFD = true
		err = l.startConnect(s, sa)
	default:
		err = os.NewSyscallError("socket", errnoOf(c.res))
	}
	if err != nil {
		l.closeSock(s, l.opError("connect", s, err))
	}
}

// connectFD submits the connect of s on its new socket fd.
func (l *Loop) connectFD(s *sock, fd int, sa unix.Sockaddr) error {
	if s.network == "tcp" {
		_ = l.be.setNoDelay(fd)
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

// clientState is the part of a sock only outbound connections need, kept
// out of line so accepted connections stay small.
type clientState struct {
	connTo    time.Duration
	connStart int64
	connTimer Timer         // the connect timeout unless connBound
	connBound bool          // the backend bounds the connect (io_uring LINK_TIMEOUT)
	processFD bool          // make a process fd: the direct table was full
	sa        unix.Sockaddr // the address to connect to once the direct socket exists
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
	if s.inact != nil && s.inact.d > 0 && !s.inact.t.Pending() {
		l.armInactivity(s, s.inact.d)
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
