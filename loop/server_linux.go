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
	"github.com/ringmachine/ringmachine/uring/engine"
	"golang.org/x/sys/unix"
)

// A server that runs out of file descriptors (EMFILE, ENFILE) or kernel
// memory (ENOBUFS, ENOMEM) stops accepting and tries again after
// acceptRetryMin, doubling the pause on each failure in a row up to
// acceptRetryMax, and back to acceptRetryMin once an accept succeeds.
// Meanwhile existing connections are served as usual (closing them is what
// frees descriptors) and new ones wait in the listen backlog; once it is
// full the kernel drops further SYNs, so clients see a slow or refused
// connect, never a server that hangs.
const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
)

// Server is a listening socket made by [Loop.StartServer]. Call its methods
// only from the loop goroutine.
type Server struct {
	l       *Loop
	s       *sock
	factory func() conn.Handler
	addr    net.Addr
	path    string // unix socket file to remove on Stop
	stopped bool
	retry   Timer
	backoff time.Duration // current accept retry delay after EMFILE and co.
	gs      *GroupServer  // the group server this is one loop's part of
	direct  bool          // accepts io_uring direct descriptors (see URingOptions.ProcessFDs)
}

// Addr returns the address the server is bound to: the real port when port
// 0 was asked for.
func (srv *Server) Addr() net.Addr { return srv.addr }

// Stop stops accepting connections (EventMachine's stop_server). Connections
// already accepted live on. A Unix socket file is removed. Stopping twice
// returns nil. It returns the error of removing the socket file, if any.
func (srv *Server) Stop() error {
	if srv.stopped {
		return nil
	}
	srv.stopped = true
	srv.retry.Cancel()
	// Stop listening now, as EventMachine's stop_server does: a shut down
	// listener refuses new connections at once, although its fd is closed
	// only after the accept in flight on it is reaped.
	_ = unix.Shutdown(srv.s.fd, unix.SHUT_RDWR)
	srv.l.closeSock(srv.s, nil)
	for i, x := range srv.l.net.servers {
		if x == srv {
			srv.l.net.servers = append(srv.l.net.servers[:i], srv.l.net.servers[i+1:]...)
			break
		}
	}
	if srv.path != "" {
		if err := os.Remove(srv.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// StartServer listens on addr and accepts connections, making one handler
// per connection with factory (EventMachine's start_server; the factory is
// where the "init block" state goes). Each accepted connection gets
// PostInit, then ReceiveData for its data, then one Unbind.
//
// addr is "host:port" (an IPv4 or IPv6 literal, "localhost", or empty for
// every address; port 0 picks a free port, see Server.Addr), "unix:/path"
// or "unix:@abstract". A host name other than an IP literal is resolved
// synchronously. It returns ErrNilFunc, ErrLoopStopped when the loop is not
// running or stopping, an error wrapping conn.ErrInvalidAddr, or an
// *conn.OpError wrapping the errno of socket, bind or listen
// (errors.Is(err, syscall.EADDRINUSE)). Call only from the loop goroutine.
func (l *Loop) StartServer(addr string, factory func() conn.Handler) (*Server, error) {
	if factory == nil {
		return nil, ErrNilFunc
	}
	if !l.running.Load() || l.stopping || l.be == nil {
		return nil, ErrLoopStopped
	}
	la, err := parseListenAddr(addr)
	if err != nil {
		return nil, err
	}
	fd, err := listenFD(la.network, la.sa, l.opts.ReusePort, l.opts.ListenBacklog, &l.opts.Socket)
	if err != nil {
		return nil, &conn.OpError{Op: "listen", Backend: l.be.kind().String(), Addr: la.netAddr(), Err: err}
	}
	return l.serveFD(fd, la, factory, nil)
}

// listenAddr is a parsed server address.
type listenAddr struct {
	network string // "tcp" or "unix"
	address string // as given after the network prefix
	sa      unix.Sockaddr
	path    string // unix socket file to remove on Stop
}

// netAddr is la as a net.Addr, for errors.
func (la listenAddr) netAddr() net.Addr {
	if la.network == "unix" {
		return &net.UnixAddr{Name: la.address, Net: "unix"}
	}
	return sockaddrToAddr(la.sa, la.network)
}

// parseListenAddr parses and resolves a StartServer address.
func parseListenAddr(addr string) (listenAddr, error) {
	network, address, err := conn.ParseAddr(addr)
	if err != nil {
		return listenAddr{}, err
	}
	la := listenAddr{network: network, address: address}
	if network == "unix" {
		la.sa = &unix.SockaddrUnix{Name: address}
		if address[0] != '@' {
			la.path = address
		}
		return la, nil
	}
	la.sa, err = listenSockaddr(address)
	return la, err
}

// serveFD makes a Server of the listening socket fd and starts accepting on
// it; it owns fd from then on (closing it on failure). gs is the group
// server it belongs to, if any.
func (l *Loop) serveFD(fd int, la listenAddr, factory func() conn.Handler, gs *GroupServer) (*Server, error) {
	if !l.running.Load() || l.stopping || l.be == nil {
		unix.Close(fd)
		return nil, ErrLoopStopped
	}
	s := l.newSock(sockListener, fd, la.network)
	srv := &Server{l: l, s: s, factory: factory, path: la.path, gs: gs}
	// A hand-off group moves direct descriptors between rings
	// (handOffDirect); the MPSC queue a test may force carries process fds.
	srv.direct = !l.opts.URing.ProcessFDs && !testHookProcessFDs && (gs == nil || !gs.handoff || !testHookHandoffQueue)
	s.srv = srv
	if lsa, err := unix.Getsockname(fd); err == nil {
		srv.addr = sockaddrToAddr(lsa, la.network)
	}
	if la.network == "unix" {
		srv.addr = &net.UnixAddr{Name: la.address, Net: "unix"}
	}
	if err := l.armAccept(srv); err != nil {
		l.closeSock(s, nil)
		return nil, &conn.OpError{Op: "accept", Backend: l.be.kind().String(), Addr: srv.addr, Err: err}
	}
	l.net.servers = append(l.net.servers, srv)
	return srv, nil
}

// listenSockaddr resolves a host:port for listening.
func listenSockaddr(address string) (unix.Sockaddr, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", conn.ErrInvalidAddr, err)
	}
	port, _ := strconv.Atoi(portStr)
	if host == "" {
		return &unix.SockaddrInet4{Port: port}, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil || len(ips) == 0 {
			return nil, fmt.Errorf("%w: %q: %w", conn.ErrInvalidAddr, host, errors.Join(lerr, err))
		}
		ip = preferIPv4(ips)
	}
	return ipSockaddr(ip, port), nil
}

func preferIPv4(ips []netip.Addr) netip.Addr {
	for _, ip := range ips {
		if ip.Is4() || ip.Is4In6() {
			return ip
		}
	}
	return ips[0]
}

// listenFD makes a non-blocking listening socket bound to sa. It is a plain
// system call sequence, usable from any goroutine (Group.StartServer binds
// every loop's socket before handing them over).
func listenFD(network string, sa unix.Sockaddr, reusePort bool, backlog int, so *SocketOptions) (int, error) {
	fd, err := unix.Socket(familyOf(sa), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if network == "tcp" {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt", err)
		}
		if reusePort {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				unix.Close(fd)
				return -1, os.NewSyscallError("setsockopt", err)
			}
		}
		// Accepted sockets inherit the listener's options (TestSocketOptions
		// checks it), TCP_NODELAY included.
		if err := so.apply(fd); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("listen", err)
	}
	return fd, nil
}

func (l *Loop) armAccept(srv *Server) error {
	s := srv.s
	if srv.direct {
		err := l.be.acceptDirect(s.fd, s.tok(opAccept))
		if errors.Is(err, errors.ErrUnsupported) {
			srv.direct = false // the engine has no table: process fds
		} else if err != nil {
			return err
		}
	}
	if !srv.direct {
		if err := l.be.acceptMultishot(s.fd, s.tok(opAccept)); err != nil {
			return err
		}
	}
	s.ops++
	s.recvArmed = true
	return nil
}

func (l *Loop) onAccept(s *sock, c *completion, final bool) {
	srv := s.srv
	if c.Res >= 0 {
		srv.backoff = 0
		l.accepted(srv, int(c.Res))
	}
	if !final {
		if c.Res < 0 {
			// The direct descriptor table is full (ENFILE): the accept
			// waits for a slot by itself, connections wait in the listen
			// queue; reported as EMFILE is.
			l.report(&conn.OpError{Op: "accept", Backend: l.be.kind().String(), Addr: srv.addr, Err: errnoOf(c.Res)})
		}
		return
	}
	s.recvArmed = false
	if s.closed() || srv.stopped || l.stopping {
		return
	}
	delay := time.Duration(0)
	if c.Res < 0 {
		err := errnoOf(c.Res)
		if err == unix.ECANCELED {
			return
		}
		if err == unix.ECONNABORTED || err == unix.EPROTO || err == unix.EAGAIN {
			// The peer gave up before the accept, or the kernel stopped
			// polling the listener (see errRetry): nothing is wrong with
			// the server. The epoll backend retries these inside accept;
			// here the multishot accept ended, so arm it again at once.
			if err := l.armAccept(srv); err != nil {
				l.report(&conn.OpError{Op: "accept", Backend: l.be.kind().String(), Addr: srv.addr, Err: err})
			}
			return
		}
		// EMFILE, ENFILE, ENOBUFS, ...: the server stays up and tries again
		// after a pause; the error is reported.
		srv.backoff = min(max(2*srv.backoff, acceptRetryMin), acceptRetryMax)
		delay = srv.backoff
		l.report(&conn.OpError{Op: "accept", Backend: l.be.kind().String(), Addr: srv.addr, Err: err})
	}
	if delay == 0 {
		if err := l.armAccept(srv); err != nil {
			l.report(&conn.OpError{Op: "accept", Backend: l.be.kind().String(), Addr: srv.addr, Err: err})
		}
		return
	}
	l.armInternalTimer(&srv.retry, delay, func() {
		if srv.stopped || s.closed() || s.recvArmed {
			return
		}
		if err := l.armAccept(srv); err != nil {
			l.report(&conn.OpError{Op: "accept", Backend: l.be.kind().String(), Addr: srv.addr, Err: err})
		}
	})
}

// accepted makes a connection of a freshly accepted fd, or hands it to
// another loop of the group (AcceptHandoff).
func (l *Loop) accepted(srv *Server, fd int) {
	if srv.stopped || l.stopping {
		l.dropFD(fd)
		return
	}
	if gs := srv.gs; gs != nil && gs.handoff {
		if target := gs.nextLoop(); target != l {
			l.handOff(target, handoff{fd: fd, network: srv.s.network, factory: gs.factory})
			return
		}
	}
	l.startConn(fd, srv.s.network, srv.factory)
}

// adoptConn serves a connection another loop of the group accepted (from
// the tick phase).
func (l *Loop) adoptConn(h handoff) {
	l.serveHandoff(h)
	l.runCloses()
}

// serveHandoff serves on l a connection accepted for a group, or closes it
// when l is stopping.
func (l *Loop) serveHandoff(h handoff) {
	if l.stopping || l.be == nil {
		if l.be != nil || !engine.IsDirect(h.fd) {
			l.dropFD(h.fd)
		}
		return
	}
	l.startConn(h.fd, h.network, func() conn.Handler { return h.factory(l) })
}

// startConn makes a connection of the accepted fd with a handler from
// factory, and calls PostInit.
func (l *Loop) startConn(fd int, network string, factory func() conn.Handler) {
	var h conn.Handler
	l.call(func() { h = factory() })
	if h == nil {
		l.dropFD(fd)
		return
	}
	l.serveConn(fd, network, h)
}

// serveConn makes a connection of the connected stream socket fd with the
// handler h, calls PostInit and starts reading.
func (l *Loop) serveConn(fd int, network string, h conn.Handler) *conn.Conn {
	return l.openConn(l.newSock(sockStream, fd, network), h)
}

// openConn gives the stream connection s its handler h, runs PostInit and
// starts receiving.
func (l *Loop) openConn(s *sock, h conn.Handler) *conn.Conn {
	s.h = h
	s.c = connio.NewConn(s, h).(*conn.Conn)
	s.lastAct = l.monotonic()
	l.net.nconns++
	c := s.c
	l.call(func() { h.PostInit(c) })
	l.updateRead(s)
	return c
}
