package loop_test

import (
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

// sockOpts reads the options the socket-option tests check.
type sockOpts struct {
	noDelay, keepAlive, idle, intvl, cnt, rcvbuf int
}

func readSockOpts(t *testing.T, c *conn.Conn) sockOpts {
	t.Helper()
	var o sockOpts
	for _, x := range []struct {
		level, name int
		v           *int
	}{
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, &o.noDelay},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, &o.keepAlive},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, &o.idle},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, &o.intvl},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, &o.cnt},
		{unix.SOL_SOCKET, unix.SO_RCVBUF, &o.rcvbuf},
	} {
		v, err := c.GetSockOpt(x.level, x.name)
		require.NoError(t, err)
		*x.v = v
	}
	return o
}

// testSocketOptions: Options.Socket reaches accepted connections (through
// the listener) and clients (before they connect); the per-connection
// setters change one connection; errors name the option; a closed
// connection refuses them.
func testSocketOptions(t *testing.T, b loop.Backend) {
	opts := loop.Options{Socket: loop.SocketOptions{
		KeepAlive:  net.KeepAliveConfig{Enable: true, Idle: 77 * time.Second, Interval: 7 * time.Second, Count: 3},
		ReadBuffer: 64 << 10,
	}}
	g := startLoop(t, b, opts)
	ev := make(chan event, 64)
	addr := g.serveRecorded(ev, nil)
	c := dial(t, addr)
	pi := expectKind(t, ev, "post_init")
	g.do(func(*loop.Loop) {
		want := sockOpts{noDelay: 1, keepAlive: 1, idle: 77, intvl: 7, cnt: 3, rcvbuf: 128 << 10}
		assert.Equal(t, want, readSockOpts(t, pi.c), "accepted: the server's options")

		sc := pi.c
		assert.NoError(t, sc.SetNoDelay(false))
		assert.NoError(t, sc.SetKeepAlive(net.KeepAliveConfig{Enable: true, Idle: 1500 * time.Millisecond, Interval: -1, Count: 0}))
		assert.NoError(t, sc.SetReadBuffer(32<<10))
		assert.NoError(t, sc.SetWriteBuffer(32<<10))
		assert.NoError(t, sc.SetLinger(5*time.Second))
		want = sockOpts{noDelay: 0, keepAlive: 1, idle: 2, intvl: 7, cnt: 9, rcvbuf: 64 << 10}
		assert.Equal(t, want, readSockOpts(t, sc), "set per connection (Idle rounds up, Interval < 0 kept, Count 0 is 9)")
		assert.NoError(t, sc.SetKeepAlive(net.KeepAliveConfig{}))
		v, err := sc.GetSockOpt(unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		assert.NoError(t, err)
		assert.Zero(t, v, "keep-alive off")
		assert.NoError(t, sc.SetSockOpt(unix.IPPROTO_TCP, unix.TCP_NODELAY, 1))
		v, _ = sc.GetSockOpt(unix.IPPROTO_TCP, unix.TCP_NODELAY)
		assert.Equal(t, 1, v)

		assert.Error(t, sc.SetReadBuffer(0))
		assert.ErrorContains(t, sc.SetKeepAlive(net.KeepAliveConfig{Enable: true, Idle: 10 * time.Hour}), "idle")
		err = sc.SetSockOpt(unix.IPPROTO_TCP, 9999, 1)
		assert.ErrorIs(t, err, syscall.ENOPROTOOPT)
		assert.ErrorContains(t, err, "level 6 option 9999", "the error names the option")
		_, err = sc.GetSockOpt(unix.SOL_SOCKET, 9999)
		assert.ErrorContains(t, err, "level 1 option 9999")
		assert.Error(t, sc.Control(nil))
		var fd int
		assert.NoError(t, sc.Control(func(f int) error { fd = f; return nil }))
		assert.GreaterOrEqual(t, fd, 0)
		assert.ErrorIs(t, sc.Control(func(int) error { return io.ErrClosedPipe }), io.ErrClosedPipe, "fn's error, as is")
	})
	require.NoError(t, c.Close())
	u := expectKind(t, ev, "unbind")
	g.do(func(*loop.Loop) {
		assert.ErrorIs(t, u.c.SetNoDelay(true), conn.ErrClosed)
		_, err := u.c.GetSockOpt(unix.IPPROTO_TCP, unix.TCP_NODELAY)
		assert.ErrorIs(t, err, conn.ErrClosed)
	})

	// A client: the loop's options, then what PostInit sets, before the
	// connect; read back once connected.
	h := newHandler(t)
	h.postInit = func(c *conn.Conn) {
		assert.NoError(t, c.SetReadBuffer(16<<10))
		assert.NoError(t, c.SetNoDelay(false))
	}
	got := make(chan sockOpts, 1)
	h.completed = func(c *conn.Conn) { got <- readSockOpts(t, c) }
	g.do(func(l *loop.Loop) {
		_, err := l.Connect(addr.String(), h)
		assert.NoError(t, err)
	})
	select {
	case o := <-got:
		assert.Equal(t, sockOpts{noDelay: 0, keepAlive: 1, idle: 77, intvl: 7, cnt: 3, rcvbuf: 32 << 10}, o)
	case <-time.After(wait):
		t.Fatal("client did not connect")
	}
	expectKind(t, ev, "post_init")
	require.NoError(t, g.stop())
}

// testSocketOptionsPending: on a client whose socket does not exist yet
// (a host name being resolved), Control keeps the function for the
// socket, GetSockOpt says ErrNotConnected, and a kept function's error
// ends the connection with it.
func testSocketOptionsPending(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 64)
	addr := g.serveRecorded(ev, nil)
	port := strconv.Itoa(addr.(*net.TCPAddr).Port)
	h := newHandler(t)
	h.postInit = func(c *conn.Conn) {
		_, err := c.GetSockOpt(unix.SOL_SOCKET, unix.SO_RCVBUF)
		assert.ErrorIs(t, err, conn.ErrNotConnected)
		assert.NoError(t, c.SetReadBuffer(16<<10), "kept for the socket")
	}
	got := make(chan int, 1)
	h.completed = func(c *conn.Conn) {
		v, err := c.GetSockOpt(unix.SOL_SOCKET, unix.SO_RCVBUF)
		assert.NoError(t, err)
		got <- v
		_ = c.Close()
	}
	g.do(func(l *loop.Loop) {
		_, err := l.Connect("localhost:"+port, h)
		assert.NoError(t, err)
	})
	select {
	case v := <-got:
		assert.Equal(t, 32<<10, v)
	case <-time.After(wait):
		t.Fatal("client did not connect")
	}

	// A kept function that fails: Unbind with its error, no connect.
	failed := errors.New("no such option here")
	h2 := newHandler(t)
	h2.postInit = func(c *conn.Conn) {
		assert.NoError(t, c.Control(func(int) error { return failed }))
	}
	g.do(func(l *loop.Loop) {
		_, err := l.Connect("localhost:"+port, h2)
		assert.NoError(t, err)
	})
	expectKind(t, h2.ev, "post_init")
	u := expectKind(t, h2.ev, "unbind")
	assert.ErrorIs(t, u.err, failed)
	var op *conn.OpError
	if assert.ErrorAs(t, u.err, &op) {
		assert.Equal(t, "setsockopt", op.Op)
	}
	require.NoError(t, g.stop())
}

// testBindConnect: the connection comes from the chosen local address and
// port; a local address in use is an Unbind of Op "bind"; bad local
// addresses are refused at once.
func testBindConnect(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 64)
	addr := g.serveRecorded(ev, nil)
	// A free port on 127.0.0.2 (all of 127/8 is local on Linux).
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	local := ln.Addr().String()
	require.NoError(t, ln.Close())

	h := newHandler(t)
	g.do(func(l *loop.Loop) {
		_, err := l.BindConnect(local, addr.String(), h)
		assert.NoError(t, err)
	})
	expectKind(t, h.ev, "post_init")
	cc := expectKind(t, h.ev, "completed")
	pi := expectKind(t, ev, "post_init")
	g.do(func(*loop.Loop) {
		assert.Equal(t, local, pi.c.RemoteAddr().String(), "the server sees the bound address")
		assert.Equal(t, local, cc.c.LocalAddr().String())
		_ = cc.c.Close()
	})
	expectKind(t, h.ev, "unbind")
	expectKind(t, ev, "unbind")

	// In use: a listener holds the port.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	h2 := newHandler(t)
	g.do(func(l *loop.Loop) {
		_, err := l.BindConnect(busy.Addr().String(), addr.String(), h2)
		assert.NoError(t, err, "reported through Unbind")
	})
	expectKind(t, h2.ev, "post_init")
	u := expectKind(t, h2.ev, "unbind")
	assert.ErrorIs(t, u.err, syscall.EADDRINUSE)
	var op *conn.OpError
	if assert.ErrorAs(t, u.err, &op) {
		assert.Equal(t, "bind", op.Op)
	}

	g.do(func(l *loop.Loop) {
		for _, bad := range []string{"", "localhost:0", "127.0.0.1", "[::1]:0"} {
			_, err := l.BindConnect(bad, addr.String(), newHandler(t))
			assert.ErrorIs(t, err, conn.ErrInvalidAddr, "%q", bad)
		}
		_, err := l.BindConnect("127.0.0.1:0", "unix:/nowhere", newHandler(t))
		assert.ErrorIs(t, err, conn.ErrInvalidAddr, "no local address for a unix socket")
	})
	require.NoError(t, g.stop())
}

// testReconnect: a client that reconnects from Unbind keeps its Conn, its
// handler and its context; PostInit runs once, ConnectionCompleted once
// per connection; a refused reconnect is an Unbind again; Reconnect
// refuses what is not an ended client.
func testReconnect(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	ev := make(chan event, 64)
	addr := g.serveRecorded(ev, func(h *handler) {
		h.receive = func(c *conn.Conn, data []byte) {
			_ = c.SendData(append([]byte("bye "), data...))
			_ = c.CloseAfterWriting()
		}
	})
	refused := closedPort(t)
	h := newHandler(t)
	var first *conn.Conn
	posts, completes, unbinds := 0, 0, 0
	var reconnectErr error
	h.postInit = func(c *conn.Conn) {
		posts++
		first = c
		c.SetContext("kept")
	}
	h.completed = func(c *conn.Conn) {
		completes++
		assert.Same(t, first, c, "the same Conn")
		assert.Equal(t, "kept", c.Context())
		_ = c.SendData([]byte(strconv.Itoa(completes)))
	}
	h.unbind = func(c *conn.Conn, err error) {
		unbinds++
		h.unbinds.Store(0) // more than one Unbind is the point here
		assert.Same(t, first, c)
		switch unbinds {
		case 1:
			reconnectErr = loop.Of(c).Reconnect(c, addr.String())
		case 2:
			reconnectErr = loop.Of(c).Reconnect(c, refused)
		}
	}
	g.do(func(l *loop.Loop) {
		_, err := l.Connect(addr.String(), h)
		assert.NoError(t, err)
	})
	var got string
	for {
		e := next(t, h.ev)
		if e.kind == "data" {
			got += e.data
		}
		if e.kind == "unbind" && errors.Is(e.err, syscall.ECONNREFUSED) {
			break
		}
	}
	assert.Equal(t, "bye 1bye 2", got)
	g.do(func(l *loop.Loop) {
		assert.NoError(t, reconnectErr)
		assert.Equal(t, 1, posts, "PostInit once")
		assert.Equal(t, 2, completes)
		assert.Equal(t, 3, unbinds)
		assert.Same(t, l, loop.Of(first))

		assert.ErrorIs(t, l.Reconnect(nil, addr.String()), loop.ErrNilFunc)
		open, err := l.Connect(addr.String(), newHandler(t))
		assert.NoError(t, err)
		assert.ErrorContains(t, l.Reconnect(open, addr.String()), "has not ended")
		_ = open.Close()
	})
	pi := expectKind(t, ev, "post_init")
	g.do(func(l *loop.Loop) {
		assert.ErrorContains(t, l.Reconnect(pi.c, addr.String()), "not a client")
	})
	require.NoError(t, g.stop())
}
