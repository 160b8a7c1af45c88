package loop

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"golang.org/x/sys/unix"
)

// GroupServer is a server of a [Group], made by [Group.StartServer]: one
// [Server] per loop with SO_REUSEPORT ([AcceptReusePort]), or one on the
// first loop handing connections to all ([AcceptHandoff]). Its methods are
// safe for concurrent use.
type GroupServer struct {
	g       *Group
	addr    net.Addr
	la      listenAddr
	factory func(l *Loop) conn.Handler
	handoff bool
	next    atomic.Uint32 // round-robin cursor of the hand-off

	mu      sync.Mutex
	fds     []int // per loop: the listening fd not yet adopted by its loop, or -1
	stopped bool

	// srvs[i] is loop i's Server; written and read only on loop i.
	srvs []*Server
}

// StartServer listens on addr on every loop of g and accepts connections,
// making one handler per connection with factory, called on the loop that
// serves the connection with that loop (so the handler can keep it, for
// timers and the like; see [Loop.StartServer] for addr and the callbacks).
// Options.Accept chooses how connections are spread: with [AcceptReusePort]
// (the default) each loop gets its own SO_REUSEPORT socket bound to the same
// address (port 0 picks one free port for all of them); with [AcceptHandoff]
// — and always for "unix:" addresses — one socket on loop 0 accepts and hands
// the connections to the loops in turn.
//
// The sockets are bound and listening when StartServer returns, so
// [GroupServer.Addr] is known and clients may connect at once; each loop
// starts accepting in its next tick phase. StartServer may be called before
// [Group.Run] (the loops start accepting when they run) or while the group
// runs, from any goroutine including a loop callback. The server lives until
// [GroupServer.Stop] or the end of the group's Run.
//
// It returns ErrNilFunc, an error wrapping conn.ErrInvalidAddr, or an
// *conn.OpError wrapping the errno of socket, bind or listen.
func (g *Group) StartServer(addr string, factory func(l *Loop) conn.Handler) (*GroupServer, error) {
	if factory == nil {
		return nil, ErrNilFunc
	}
	la, err := parseListenAddr(addr)
	if err != nil {
		return nil, err
	}
	n := len(g.loops)
	gs := &GroupServer{g: g, la: la, factory: factory, fds: make([]int, n), srvs: make([]*Server, n)}
	gs.handoff = n > 1 && (g.opts.Accept == AcceptHandoff || la.network != "tcp")
	for i := range gs.fds {
		gs.fds[i] = -1
	}
	listeners := n
	if gs.handoff || n == 1 {
		listeners = 1
	}
	sa := la.sa
	for i := range listeners {
		fd, err := listenFD(la.network, sa, listeners > 1, g.opts.ListenBacklog, &g.opts.Socket)
		if err != nil {
			gs.closeFDs()
			return nil, &conn.OpError{Op: "listen", Addr: la.netAddr(), Err: err}
		}
		gs.fds[i] = fd
		if i == 0 {
			lsa, err := unix.Getsockname(fd)
			if err != nil {
				gs.closeFDs()
				return nil, &conn.OpError{Op: "listen", Addr: la.netAddr(), Err: os.NewSyscallError("getsockname", err)}
			}
			gs.addr = sockaddrToAddr(lsa, la.network)
			if la.network == "unix" {
				gs.addr = &net.UnixAddr{Name: la.address, Net: "unix"}
			} else {
				sa = lsa // the port the kernel picked, for the other loops
			}
		}
	}
	g.mu.Lock()
	g.servers = append(g.servers, gs)
	g.mu.Unlock()
	for i := range listeners {
		l := g.loops[i]
		_ = l.NextTick(func() { gs.adopt(i, l) })
	}
	return gs, nil
}

// adopt makes loop l serve its listening socket (on l's goroutine). A
// hand-off server waits until every loop of the group runs: a direct
// descriptor accepted for a loop without a ring yet could not wait for it
// and would stay with the acceptor.
func (gs *GroupServer) adopt(i int, l *Loop) {
	if gs.handoff && int(gs.g.up.Load()) < len(gs.g.loops) {
		if _, err := l.AddTimer(time.Millisecond, func() { gs.adopt(i, l) }); err == nil {
			return
		}
	}
	gs.mu.Lock()
	fd := gs.fds[i]
	gs.fds[i] = -1
	stopped := gs.stopped
	gs.mu.Unlock()
	if fd < 0 {
		return
	}
	if stopped {
		unix.Close(fd)
		return
	}
	la := gs.la
	if i > 0 {
		la.path = "" // the socket file is loop 0's to remove
	}
	srv, err := l.serveFD(fd, la, func() conn.Handler { return gs.factory(l) }, gs)
	if err != nil {
		l.report(err)
		return
	}
	gs.srvs[i] = srv
}

// nextLoop picks the loop for the next handed-off connection.
func (gs *GroupServer) nextLoop() *Loop {
	n := uint32(len(gs.g.loops))
	return gs.g.loops[(gs.next.Add(1)-1)%n]
}

// Addr returns the address the server is bound to (the real port when port
// 0 was asked for). Safe for concurrent use.
func (gs *GroupServer) Addr() net.Addr { return gs.addr }

// Stop stops accepting on every loop (EventMachine's stop_server); each loop
// does so in its next tick phase. Connections already accepted live on.
// Stopping twice does nothing. Safe for concurrent use.
func (gs *GroupServer) Stop() {
	gs.mu.Lock()
	if gs.stopped {
		gs.mu.Unlock()
		return
	}
	gs.stopped = true
	gs.mu.Unlock()
	gs.closeFDs()
	for i, l := range gs.g.loops {
		_ = l.NextTick(func() {
			if srv := gs.srvs[i]; srv != nil {
				if err := srv.Stop(); err != nil {
					l.report(err)
				}
			}
		})
	}
}

// closeFDs closes the listening sockets no loop has adopted.
func (gs *GroupServer) closeFDs() {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	for i, fd := range gs.fds {
		if fd >= 0 {
			unix.Close(fd)
			gs.fds[i] = -1
		}
	}
}

// cleanup ends the server after the group's Run: the loops have stopped
// their Servers; sockets never adopted are closed here.
func (gs *GroupServer) cleanup() {
	gs.mu.Lock()
	gs.stopped = true
	gs.mu.Unlock()
	gs.closeFDs()
	clear(gs.srvs)
	if gs.la.path != "" {
		// Loop 0's Server.Stop removed it unless that loop never adopted
		// the socket.
		_ = os.Remove(gs.la.path)
	}
}

// closeFD closes a descriptor nobody else refers to.
func closeFD(fd int) { _ = unix.Close(fd) }
