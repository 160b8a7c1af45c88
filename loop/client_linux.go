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
	return l.connect("", addr, h, nil)
}

// BindConnect is Connect from the local address local ("host:port", an IP
// literal; port 0 lets the kernel choose it), EventMachine's bind_connect:
// the socket is bound to it before it connects. It returns the errors of
// Connect, and an error wrapping conn.ErrInvalidAddr for a local address
// that is not an IP literal with a port, or whose family differs from an
// IP-literal addr. A bind that fails (the address is in use or not local)
// is an Unbind with an *conn.OpError of Op "bind". Call only from the loop
// goroutine.
func (l *Loop) BindConnect(local, addr string, h conn.Handler) (*conn.Conn, error) {
	if local == "" {
		return nil, fmt.Errorf("%w: empty local address", conn.ErrInvalidAddr)
	}
	return l.connect(local, addr, h, nil)
}

// Reconnect dials addr again for a client connection that has ended,
// keeping its Conn, handler and context (EventMachine's reconnect): it is
// typically called from the handler's Unbind to retry. PostInit does not
// run again; ConnectionCompleted runs when the new connection is
// established, or Unbind again if it fails, as for Connect. Neither the
// options set with Control or SetSockOpt nor TLS carry over to the new
// socket: call StartTLS again right after Reconnect, and set options in
// ConnectionCompleted (or with Control after Reconnect, which applies them
// before the connect). The byte counters start again from zero.
//
// It returns ErrNilFunc for a nil c, an error for a Conn that is not an
// ended client connection of this loop (still open, accepted by a server,
// a datagram socket, or of another loop), and the errors of Connect. After
// an error the connection stays ended. Call only from the loop goroutine.
func (l *Loop) Reconnect(c *conn.Conn, addr string) error {
	if c == nil {
		return ErrNilFunc
	}
	old, ok := connio.DriverOf(c).(*sock)
	switch {
	case !ok || old.l != l:
		return errors.New("loop: Reconnect of a connection of another loop")
	case old.kind != sockStream || old.cl == nil:
		return errors.New("loop: Reconnect of a connection that is not a client")
	case !old.closed():
		return errors.New("loop: Reconnect of a connection that has not ended (Close it, or call Reconnect from Unbind)")
	}
	_, err := l.connect(old.cl.local, addr, old.h, c)
	return err
}

// connect is Connect, BindConnect (local != "") and Reconnect (c != nil:
// the Conn to give the new socket, whose PostInit already ran).
func (l *Loop) connect(local, addr string, h conn.Handler, c *conn.Conn) (*conn.Conn, error) {
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
	var lsa unix.Sockaddr
	if local != "" {
		if lsa, err = localSockaddr(local); err != nil {
			return nil, err
		}
		if network != "tcp" {
			return nil, fmt.Errorf("%w: a local address for a unix socket %q", conn.ErrInvalidAddr, addr)
		}
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
			if lsa != nil && familyOf(sa) != familyOf(lsa) {
				return nil, fmt.Errorf("%w: local address %q and %q are not of one family", conn.ErrInvalidAddr, local, addr)
			}
		}
	}
	s := l.newSock(sockStream, -1, network)
	s.h = h
	if c == nil {
		s.c = connio.NewConn(s, h).(*conn.Conn)
	} else {
		s.c = c
	}
	s.life = lifeConnecting // an outbound connection's first state
	s.cl = &clientState{connTo: conn.DefaultConnectTimeout, connStart: l.monotonic(), local: local, lsa: lsa, failedOp: "connect", host: host}
	if sa != nil {
		if err := l.startConnect(s, sa, false); err != nil {
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
			ip := preferIPv4(ips)
			if lsa != nil {
				ip = preferFamily(ips, familyOf(lsa))
			}
			if err := l.startConnect(s, ipSockaddr(ip, port), true); err != nil {
				l.closeSock(s, l.opError(s.cl.failedOp, s, err))
			}
		})
		if err != nil {
			s.advance(lifeFDClosing)
			l.freeSock(s)
			return nil, err
		}
	}
	if c != nil {
		connio.Rebind(c, s)
	}
	l.net.nconns++
	if !s.cl.connBound {
		l.armConnectTimer(s, s.cl.connTo)
	}
	cn := s.c
	if c == nil {
		l.call(func() { h.PostInit(cn) })
	}
	// A process fd made above connects now, after PostInit, so that the
	// options PostInit set apply before the connect.
	if !s.closed() && s.fd >= 0 && s.cl.sa != nil {
		sa := s.cl.sa
		s.cl.sa = nil
		if err := l.connectFD(s, s.fd, sa); err != nil {
			l.closeSock(s, l.opError(s.cl.failedOp, s, err))
		}
	}
	return cn, nil
}

// preferFamily returns the first of ips in the address family (a local
// address's), or the first of all.
func preferFamily(ips []netip.Addr, family int) netip.Addr {
	for _, ip := range ips {
		if (family == unix.AF_INET) == (ip.Is4() || ip.Is4In6()) {
			return ip
		}
	}
	return ips[0]
}

// localSockaddr parses BindConnect's local address: an IP literal and a
// port.
func localSockaddr(local string) (unix.Sockaddr, error) {
	ap, err := netip.ParseAddrPort(local)
	if err != nil {
		return nil, fmt.Errorf("%w: local address %q: want an IP literal and a port: %v", conn.ErrInvalidAddr, local, err)
	}
	return ipSockaddr(ap.Addr(), int(ap.Port())), nil
}

// startConnect creates the socket of s and, when now is set, submits the
// connect (otherwise the caller does, after PostInit: s.cl.sa is set and
// s.fd is the socket). On io_uring the socket is a direct descriptor
// (unless URingOptions.ProcessFDs), which the ring creates: the connect
// follows its completion (onSocket).
func (l *Loop) startConnect(s *sock, sa unix.Sockaddr, now bool) error {
	if !l.opts.URing.ProcessFDs && !testHookProcessFDs && !s.cl.processFD {
		err := l.be.socketDirect(familyOf(sa), s.tok(opSocket))
		if err == nil {
			s.cl.sa = sa
			s.raddr = sockaddrToAddr(sa, s.network)
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
	if err := l.initSocket(s, fd); err != nil {
		unix.Close(fd)
		return err
	}
	if !now {
		s.fd, s.cl.sa = fd, sa
		s.raddr = sockaddrToAddr(sa, s.network)
		return nil
	}
	return l.connectFD(s, fd, sa)
}

// onSocket handles the creation of a client's direct socket: the connect
// goes on with it, or with a process fd when the table filled meanwhile.
func (l *Loop) onSocket(s *sock, c *completion) {
	sa := s.cl.sa
	s.cl.sa = nil
	if c.Res >= 0 {
		s.fd = int(c.Res) // closed by maybeCloseFD if s was closed meanwhile
	}
	if s.closed() {
		return
	}
	var err error
	switch {
	case c.Res >= 0:
		if err = l.initSocket(s, int(c.Res)); err == nil {
			err = l.connectFD(s, int(c.Res), sa)
		}
	case c.Res == -int32(unix.ENFILE):
		s.cl.processFD = true
		err = l.startConnect(s, sa, true)
	default:
		err = os.NewSyscallError("socket", errnoOf(c.Res))
	}
	if err != nil {
		l.closeSock(s, l.opError(s.cl.failedOp, s, err))
	}
}

// initSocket gives a client's new socket the loop's options
// (Options.Socket), before any the handler sets.
func (l *Loop) initSocket(s *sock, fd int) error {
	if s.network != "tcp" {
		return nil
	}
	if so := &l.opts.Socket; so.onlyNoDelay() {
		_ = l.be.setNoDelay(fd) // no round trip for a direct descriptor
		return nil
	}
	s.cl.failedOp = "setsockopt"
	return l.be.control(fd, l.opts.Socket.apply)
}

// connectFD submits the connect of s on its new socket fd, after binding it
// (BindConnect) and running the Control functions kept while it did not
// exist. On an error s.cl.failedOp names the step.
func (l *Loop) connectFD(s *sock, fd int, sa unix.Sockaddr) error {
	s.fd = fd
	s.raddr = sockaddrToAddr(sa, s.network)
	s.cl.failedOp = "bind"
	if s.cl.lsa != nil {
		if err := l.be.control(fd, func(fd int) error { return unix.Bind(fd, s.cl.lsa) }); err != nil {
			return os.NewSyscallError("bind", err)
		}
	}
	s.cl.failedOp = "setsockopt"
	for len(s.cl.pending) > 0 {
		fn := s.cl.pending[0]
		s.cl.pending = s.cl.pending[1:]
		if err := l.be.control(fd, fn); err != nil {
			return err
		}
	}
	s.cl.pending = nil
	s.cl.failedOp = "connect"
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
	sa        unix.Sockaddr // the address to connect to once the socket exists
	local     string        // BindConnect's local address, for Reconnect
	lsa       unix.Sockaddr // the same, parsed: bound before the connect
	pending   []func(fd int) error
	failedOp  string // the step of connectFD that failed: bind, setsockopt, connect
	host      string // the host Connect was given (a TLS client's ServerName)
}

func (l *Loop) onConnect(s *sock, c *completion) {
	if s.closed() {
		return
	}
	if c.Res == -int32(unix.ETIME) && s.cl.connBound {
		// The backend's bound ran out (see backend.connect): the same
		// Unbind reason as the loop's timer gives.
		l.closeSock(s, conn.ErrConnectTimeout)
		return
	}
	if c.Res < 0 {
		l.closeSock(s, l.opError("connect", s, errnoOf(c.Res)))
		return
	}
	s.advance(lifeOpen) // connected
	s.cl.connTimer.Cancel()
	s.lastAct = l.monotonic()
	if s.inact != nil && s.inact.d > 0 && !s.inact.t.Pending() {
		l.armInactivity(s, s.inact.d)
	}
	if s.tls() != nil {
		l.tlsStart(s) // StartTLS was called while connecting
		if s.closed() {
			return
		}
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
