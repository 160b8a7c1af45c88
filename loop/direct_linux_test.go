package loop_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// TestDirectTableFull serves 24 clients at once from a table of 4 direct
// descriptors. The kernel takes a connection off the listen queue before it
// looks for a slot, so an accept into a full table resets its peer: the
// engine must never submit one. The clients beyond the table wait in the
// listen queue, as with EMFILE, and as served connections close their slots
// come back: every client gets its own reply, byte for byte, none is reset,
// at no time are more than 4 connections open, and the full table is
// reported (ENFILE) as a full descriptor table (EMFILE) is.
func TestDirectTableFull(t *testing.T) {
	testutil.RequireURing(t)
	if loop.ProcessFDSuite() {
		t.Skip("the suite runs on process fds (RINGMACHINE_TEST_PROCESS_FDS=1)")
	}
	testutil.CheckLeaks(t)
	defer loop.SetTestDirectFiles(4)()
	const clients = 24
	var reported []error
	served, open, most := 0, 0, 0
	var remote []string
	_, err := runLoop(t, loop.URing, loop.Options{ErrorHandler: func(err error) { reported = append(reported, err) }}, 30*time.Second, func(l *loop.Loop) {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
			return &hazardFunc{post: func(*conn.Conn) {
				open++
				most = max(most, open)
			}, recv: func(c *conn.Conn, data []byte) {
				remote = append(remote, c.RemoteAddr().String())
				_ = c.SendData(append([]byte("echo "), data...))
				_ = c.CloseAfterWriting()
			}, unbind: func(*conn.Conn, error) {
				open--
				if served++; served == clients {
					l.Stop()
				}
			}}
		})
		require.NoError(t, err)
		addr := srv.Addr().String()
		for i := range clients {
			go func() {
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if !assert.NoError(t, err) {
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				msg := fmt.Sprintf("client %02d", i)
				_, err = c.Write([]byte(msg))
				assert.NoError(t, err)
				got, err := io.ReadAll(c)
				assert.NoError(t, err)
				assert.Equal(t, "echo "+msg, string(got))
			}()
		}
	})
	require.NoError(t, err)
	assert.Equal(t, clients, served)
	assert.LessOrEqual(t, most, 4, "connections open at once in a table of 4")
	t.Logf("at most %d connections open at once", most)
	// A full table is reported as EMFILE is (once per episode), and
	// connections wait in the listen queue meanwhile.
	require.NotEmpty(t, reported, "the full table is reported")
	var op *conn.OpError
	require.ErrorAs(t, reported[0], &op)
	assert.Equal(t, "accept", op.Op)
	assert.ErrorIs(t, reported[0], syscall.ENFILE)
	for _, r := range remote {
		host, _, err := net.SplitHostPort(r)
		require.NoError(t, err)
		assert.Equal(t, "127.0.0.1", host, "RemoteAddr of a direct descriptor")
	}
}

// TestDirectClients connects 200 clients to a server on the same loop:
// both ends are direct descriptors, so the process's descriptor table does
// not grow, and every client gets its own echo, byte for byte.
func TestDirectClients(t *testing.T) {
	testutil.RequireURing(t)
	if loop.ProcessFDSuite() {
		t.Skip("the suite runs on process fds (RINGMACHINE_TEST_PROCESS_FDS=1)")
	}
	testutil.CheckLeaks(t)
	const clients = 200
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(ents)
	}
	before, most, done := fds(), 0, 0
	_, err := runLoop(t, loop.URing, loop.Options{}, 30*time.Second, func(l *loop.Loop) {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
			return &hazardFunc{recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
		})
		require.NoError(t, err)
		for i := range clients {
			msg := fmt.Sprintf("client %03d", i)
			var got []byte
			_, err := l.Connect(srv.Addr().String(), &hazardFunc{
				done: func(c *conn.Conn) { _ = c.SendData([]byte(msg)) },
				recv: func(c *conn.Conn, data []byte) {
					if got = append(got, data...); len(got) == len(msg) {
						assert.Equal(t, msg, string(got))
						most = max(most, fds()-before)
						_ = c.Close()
					}
				},
				unbind: func(*conn.Conn, error) {
					if done++; done == clients {
						l.Stop()
					}
				},
			})
			require.NoError(t, err)
		}
	})
	require.NoError(t, err)
	assert.Equal(t, clients, done)
	assert.Less(t, most, 10, "descriptors taken while %d connections (both ends) were open", 2*clients)
}

// TestDirectClientsTableFull connects 12 clients from a loop whose table
// has 4 slots: the first sockets are direct, the others fall back to
// process fds, and every client is served.
func TestDirectClientsTableFull(t *testing.T) {
	testutil.RequireURing(t)
	if loop.ProcessFDSuite() {
		t.Skip("the suite runs on process fds (RINGMACHINE_TEST_PROCESS_FDS=1)")
	}
	testutil.CheckLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	defer loop.SetTestDirectFiles(4)()
	const clients = 12
	done := 0
	_, err = runLoop(t, loop.URing, loop.Options{}, 30*time.Second, func(l *loop.Loop) {
		for i := range clients {
			msg := fmt.Sprintf("client %02d", i)
			var got []byte
			_, err := l.Connect(ln.Addr().String(), &hazardFunc{
				done: func(c *conn.Conn) { _ = c.SendData([]byte(msg)) },
				recv: func(c *conn.Conn, data []byte) {
					if got = append(got, data...); len(got) == len(msg) {
						assert.Equal(t, msg, string(got))
						assert.NotNil(t, c.LocalAddr())
						_ = c.Close()
					}
				},
				unbind: func(_ *conn.Conn, reason error) {
					assert.NoError(t, reason)
					if done++; done == clients {
						l.Stop()
					}
				},
			})
			require.NoError(t, err)
		}
	})
	require.NoError(t, err)
	assert.Equal(t, clients, done)
}

// TestDirectDatagrams opens 8 UDP sockets on a loop whose table has 4
// slots: the first 4 are moved into the table (no process descriptor), the
// others keep their process fds, and every one of them echoes a datagram
// to its sender, byte for byte, with the sender's address.
func TestDirectDatagrams(t *testing.T) {
	testutil.RequireURing(t)
	if loop.ProcessFDSuite() {
		t.Skip("the suite runs on process fds (RINGMACHINE_TEST_PROCESS_FDS=1)")
	}
	testutil.CheckLeaks(t)
	defer loop.SetTestDirectFiles(4)()
	const sockets = 8
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(ents)
	}
	var taken int
	senders := make(chan string, 2*sockets)
	_, err := runLoop(t, loop.URing, loop.Options{}, 30*time.Second, func(l *loop.Loop) {
		before := fds()
		var addrs []string
		for range sockets {
			dc, err := l.OpenDatagram("127.0.0.1:0", dgramEcho{from: senders})
			require.NoError(t, err)
			addrs = append(addrs, dc.LocalAddr().String())
		}
		taken = fds() - before
		go func() {
			defer l.Stop()
			for i, a := range addrs {
				c, err := net.Dial("udp", a)
				if !assert.NoError(t, err) {
					return
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				msg := make([]byte, 1000+i)
				for j := range msg {
					msg[j] = byte(i + j)
				}
				_, err = c.Write(msg)
				assert.NoError(t, err)
				got := make([]byte, 2048)
				n, err := c.Read(got)
				assert.NoError(t, err)
				assert.Equal(t, msg, got[:n], "socket %d", i)
				assert.Equal(t, c.LocalAddr().String(), <-senders, "socket %d saw its sender", i)
				c.Close()
			}
		}()
	})
	require.NoError(t, err)
	assert.Equal(t, sockets-4, taken, "descriptors taken by %d sockets with a table of 4", sockets)
}

// dgramEcho sends each datagram back to its sender and reports who that was.
type dgramEcho struct {
	conn.Base
	from chan<- string
}

func (h dgramEcho) ReceiveDatagram(c *conn.Conn, data []byte, from net.Addr) {
	h.from <- from.String()
	_ = c.SendDatagram(data, from)
}
