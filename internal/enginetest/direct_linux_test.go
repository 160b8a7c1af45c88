package enginetest

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/uring/engine"
)

// This file holds the behaviours only direct descriptors have (the
// io_uring engine's registered file table, engine.Options.DirectFiles):
// they run on the direct rows and skip the others. Everything the other
// rows do with accepted connections runs on the direct rows too, through
// the rest of the table.

// forEachDirectRow runs body as a subtest per engine, with the engine open,
// skipping the rows whose accepts take process fds.
func forEachDirectRow(t *testing.T, body func(t *testing.T, u *uringEng)) {
	t.Helper()
	forEachEngine(t, func(t *testing.T, e eng) {
		u, ok := e.(*uringEng)
		if !ok || e.directFiles() == 0 {
			t.Skip("no table of direct descriptors on this row: its accepts take process fds")
		}
		body(t, u)
	})
}

// fullNotice reports whether c is the notice that a direct accept found the
// table full and goes on waiting for a slot: a non-final -ENFILE, once per
// episode (a freed slot ends one), on whichever accept met it.
func fullNotice(c completion) bool { return c.More && c.Res == -int32(unix.ENFILE) }

// acceptN waits for n connections of the multishot accept ud and returns
// their descriptors, each closed at the end of the test unless the test
// closes it, and how many full-table notices came with them. Any other
// completion, or the accept's end, fails the test.
func acceptN(t *testing.T, e eng, ud uint64, n int) (accepted []*acceptedFD, notices int) {
	t.Helper()
	conns := func(cs []completion) (k int) {
		for _, c := range cs {
			if !fullNotice(c) {
				k++
			}
		}
		return k
	}
	cs := reap(t, e, 16, func(cs []completion) bool { return conns(cs) >= n || finals(ud)(cs) })
	for _, c := range cs {
		if c.UserData == ud && c.Res >= 0 {
			accepted = append(accepted, closeAccepted(t, e, int(c.Res)))
		}
	}
	for _, c := range cs {
		require.Equal(t, ud, c.UserData, "completions of the accept: %s", describe(cs))
		if fullNotice(c) {
			notices++
			continue
		}
		require.True(t, c.More, "the accept ended: %s", describe(cs))
		requireAcceptedKind(t, e, int(c.Res))
	}
	require.Len(t, accepted, n, "completions of the accept: %s", describe(cs))
	return accepted, notices
}

// waitFull waits d with the multishot accept ud armed on a full table:
// nothing may complete but full-table notices of ud. It returns how many
// came.
func waitFull(t *testing.T, e eng, ud uint64, d time.Duration) (notices int) {
	t.Helper()
	dst := make([]completion, 8)
	end := time.Now().Add(d)
	for left := d; left > 0; left = time.Until(end) {
		n, err := e.Wait(left, dst)
		require.NoError(t, err)
		for _, c := range dst[:n] {
			require.True(t, c.UserData == ud && fullNotice(c), "completions with the table full: %s", describe(dst[:n]))
			notices++
		}
	}
	return notices
}

// finalAfterNotices waits for the final completion of the multishot accept
// ud, which only full-table notices may precede, and returns it and how
// many notices came.
func finalAfterNotices(t *testing.T, e eng, ud uint64) (fin completion, notices int) {
	t.Helper()
	cs := reap(t, e, 4, finals(ud))
	fin = finalOf(t, cs, ud)
	for _, c := range cs[:len(cs)-1] {
		require.True(t, c.UserData == ud && fullNotice(c), "completions before the accept's end: %s", describe(cs))
		notices++
	}
	return fin, notices
}

// closeDirect closes the accepted descriptor a with CloseFD (token ud) and
// waits for the completion: Res 0.
func closeDirect(t *testing.T, e eng, a *acceptedFD, ud uint64) {
	t.Helper()
	require.NoError(t, e.CloseFD(a.fd, ud))
	a.closed = true
	cs := reap(t, e, 4, finals(ud))
	require.Len(t, cs, 1, "completions of the CloseFD: %s", describe(cs))
	require.Equal(t, int32(0), cs[0].Res, "CloseFD of %#x: %v", a.fd, cs[0].Err())
}

// closeAndTake closes the accepted descriptor a with CloseFD (token ud)
// while connections wait for a slot of the full table, and returns the
// connection the multishot accept acceptUD takes once the close has freed
// one, and the full-table notices that came meanwhile (the table is full
// again once it is taken).
func closeAndTake(t *testing.T, e eng, a *acceptedFD, ud, acceptUD uint64) (taken *acceptedFD, notices int) {
	t.Helper()
	require.NoError(t, e.CloseFD(a.fd, ud))
	a.closed = true
	cs := reap(t, e, 4, func(cs []completion) bool {
		return finals(ud)(cs) && slices.ContainsFunc(of(cs, acceptUD), func(c completion) bool { return !fullNotice(c) })
	})
	require.Equal(t, int32(0), finalOf(t, cs, ud).Res, "CloseFD: %v", finalOf(t, cs, ud).Err())
	var took []completion
	for _, c := range cs {
		switch {
		case c.UserData == ud:
		case c.UserData == acceptUD && fullNotice(c):
			notices++
		default:
			if c.UserData == acceptUD && c.Res >= 0 {
				taken = closeAccepted(t, e, int(c.Res))
			}
			took = append(took, c)
		}
	}
	require.Len(t, took, 1, "completions after a slot was freed: %s", describe(cs))
	require.Equal(t, acceptUD, took[0].UserData, "completions after a slot was freed: %s", describe(cs))
	require.True(t, took[0].More, "the accept ended: %v", took[0].Err())
	require.GreaterOrEqual(t, took[0].Res, int32(0), "accept: %v", took[0].Err())
	requireAcceptedKind(t, e, taken.fd)
	return taken, notices
}

// peerPort returns the port of the peer of the accepted connection fd,
// read through the engine.
func peerPort(t *testing.T, e eng, fd int) uint16 {
	t.Helper()
	_, peer, err := e.Addrs(fd)
	require.NoError(t, err, "Addrs of %#x", fd)
	return addrPort(peer).Port()
}

// localPort returns the port the client socket fd is bound to.
func localPort(t *testing.T, fd int) uint16 {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	return addrPort(sa).Port()
}

// TestDirectNoProcessFD accepts 50 connections into direct descriptors:
// the process's descriptor count rises by the 50 client sockets the test
// creates and by nothing else, while every accepted connection is there
// (its peer, read with Addrs, is one of the clients, each once). Closing
// them takes nothing back from the process either.
func TestDirectNoProcessFD(t *testing.T) {
	forEachDirectRow(t, func(t *testing.T, u *uringEng) {
		const conns = 50
		ln, sa := listenTCP(t, "127.0.0.1", conns+8)
		require.NoError(t, u.AcceptMultishot(ln, 1))
		quiet(t, u, 10*time.Millisecond) // the accept reaches the kernel
		before := fdCount(t)

		clients := make(map[uint16]int) // client port -> index
		for i := range conns {
			fd := dialTCP(t, sa)
			require.True(t, pollFD(fd, unix.POLLOUT, deadline), "connect timed out")
			clients[localPort(t, fd)] = i
		}
		accepted, notices := acceptN(t, u, 1, conns)
		require.Zero(t, notices, "full-table notices with %d connections in a table of %d", conns, u.directFiles())
		assert.Equal(t, before+conns, fdCount(t),
			"descriptors before the %d connects and after their accepts: only the clients' may be new", conns)

		seen := make(map[int]bool)
		for _, a := range accepted {
			i, ok := clients[peerPort(t, u, a.fd)]
			require.True(t, ok, "accepted %#x is connected to none of the clients", a.fd)
			require.False(t, seen[i], "client %d accepted twice", i)
			seen[i] = true
		}
		assert.Equal(t, before+conns, fdCount(t), "descriptors after an Addrs on each connection")

		require.NoError(t, u.Cancel(1))
		assert.Equal(t, -int32(unix.ECANCELED), finalOf(t, reap(t, u, 4, finals(1)), 1).Res)
		for i, a := range accepted {
			closeDirect(t, u, a, uint64(100+i))
		}
		assert.Equal(t, before+conns, fdCount(t), "descriptors after the connections' CloseFD")
		assert.Zero(t, u.InFlight())
	})
}

// TestDirectTableFull accepts into a table of 4 slots. Four connections
// take them; the fifth, as the engine documents (AcceptMultishotDirect),
// waits in the listener's queue with the accept still armed: not ended
// (its one completion is a notice, a non-final -ENFILE, once per episode
// of a full table), and not dropped by the kernel (which takes a
// connection off the queue before it looks for a slot, so an accept into a
// full table resets its peer). After one CloseFD and its completion, the
// same accept takes the waiting connection by itself, and an echo over it
// carries every byte both ways. While the table is full again, a Cancel of
// the accept, and a CancelFD of its listener, end it with -ECANCELED.
func TestDirectTableFull(t *testing.T) {
	forEachDirectRow(t, func(t *testing.T, u *uringEng) {
		const slots = 4
		v := u.reopen(t, func(o *engine.Options) { o.DirectFiles = slots })
		require.Equal(t, slots, v.directFiles())
		ln, sa := listenTCP(t, "127.0.0.1", 16)
		require.NoError(t, v.AcceptMultishot(ln, 1))

		clients := make(map[uint16]int) // client port -> fd
		for range slots + 1 {
			fd := dialTCP(t, sa)
			require.True(t, pollFD(fd, unix.POLLOUT, deadline), "connect timed out")
			clients[localPort(t, fd)] = fd
		}
		accepted, notices := acceptN(t, v, 1, slots)
		for _, a := range accepted {
			delete(clients, peerPort(t, v, a.fd))
		}
		require.Len(t, clients, 1, "clients not accepted")
		var waiting int
		for _, fd := range clients {
			waiting = fd
		}
		notices += waitFull(t, v, 1, 100*time.Millisecond) // no fifth connection, no end of the accept
		require.Equal(t, 1, notices, "full-table notices (-ENFILE with FlagMore) when the table first fills")
		require.Equal(t, 1, v.InFlight(), "the accept must stay armed while the table is full")
		if pollFD(waiting, unix.POLLIN|unix.POLLRDHUP, 10*time.Millisecond) {
			n, err := unix.Read(waiting, make([]byte, 1))
			require.Fail(t, "the connection that met the full table was closed",
				"its client's read returns %d, %v (0, nil: end of stream): an accept took it off the listener's queue and dropped it", n, err)
		}

		taken, notices := closeAndTake(t, v, accepted[0], 2, 1)
		require.Equal(t, localPort(t, waiting), peerPort(t, v, taken.fd), "the accept took another connection")
		echo(t, v, waiting, taken.fd, pattern(300001, 31))

		// Full again, with a connection waiting: Cancel ends the accept.
		late := dialTCP(t, sa)
		require.True(t, pollFD(late, unix.POLLOUT, deadline), "connect timed out")
		notices += waitFull(t, v, 1, 20*time.Millisecond)
		require.NoError(t, v.Cancel(1))
		fin, more := finalAfterNotices(t, v, 1)
		assert.Equal(t, -int32(unix.ECANCELED), fin.Res, "cancel of the accept: %v", fin.Err())
		require.LessOrEqual(t, notices+more, 1, "full-table notices of one episode")

		// And a CancelFD of the listener ends an accept armed on a full
		// table.
		require.NoError(t, v.AcceptMultishot(ln, 4))
		notices = waitFull(t, v, 4, 20*time.Millisecond)
		require.NoError(t, v.CancelFD(ln))
		fin, more = finalAfterNotices(t, v, 4)
		assert.Equal(t, -int32(unix.ECANCELED), fin.Res, "CancelFD of the listener: %v", fin.Err())
		require.LessOrEqual(t, notices+more, 1, "full-table notices of one episode")
		assert.Zero(t, v.InFlight())
	})
}

// TestDirectFailedClose checks that a CloseFD of a direct descriptor that
// fails frees no slot: a second close of one (-EBADF: the slot is empty)
// and a close of a slot beyond the table leave the engine's count of free
// slots alone, so once the table of 2 is full again a third connection
// still waits in the listener's queue, and is taken only when a slot is
// really freed. (Counting a failed close as a freed slot makes the engine
// accept into a full table, which drops the connection.)
func TestDirectFailedClose(t *testing.T) {
	forEachDirectRow(t, func(t *testing.T, u *uringEng) {
		const slots = 2
		v := u.reopen(t, func(o *engine.Options) { o.DirectFiles = slots })
		ln, sa := listenTCP(t, "127.0.0.1", 16)
		require.NoError(t, v.AcceptMultishot(ln, 1))

		first := dialTCP(t, sa)
		as, _ := acceptN(t, v, 1, 1)
		a := as[0]
		require.Equal(t, localPort(t, first), peerPort(t, v, a.fd))
		closeDirect(t, v, a, 2)
		require.NoError(t, v.CloseFD(a.fd, 3))
		c := finalOf(t, reap(t, v, 4, finals(3)), 3)
		require.Equal(t, -int32(unix.EBADF), c.Res, "a second close of a direct descriptor: %v", c.Err())
		require.NoError(t, v.CloseFD(engine.DirectBase+slots, 4))
		c = finalOf(t, reap(t, v, 4, finals(4)), 4)
		require.Negative(t, c.Res, "a close of a slot beyond the table of %d", slots)
		t.Logf("close beyond the table: %v", c.Err())

		clients := make(map[uint16]int) // client port -> fd
		for range slots {
			fd := dialTCP(t, sa)
			require.True(t, pollFD(fd, unix.POLLOUT, deadline), "connect timed out")
			clients[localPort(t, fd)] = fd
		}
		accepted, _ := acceptN(t, v, 1, slots)
		for _, a := range accepted {
			delete(clients, peerPort(t, v, a.fd))
		}
		require.Empty(t, clients, "clients not accepted")

		// The table is full: the next connections wait.
		var waiting []int
		for range 2 {
			fd := dialTCP(t, sa)
			require.True(t, pollFD(fd, unix.POLLOUT, deadline), "connect timed out")
			waiting = append(waiting, fd)
		}
		waitFull(t, v, 1, 100*time.Millisecond)
		for i, fd := range waiting {
			if pollFD(fd, unix.POLLIN|unix.POLLRDHUP, 10*time.Millisecond) {
				n, err := unix.Read(fd, make([]byte, 1))
				assert.Fail(t, "a connection that met the full table was closed",
					"waiting client %d: its read returns %d, %v (0, nil: end of stream): the failed CloseFDs counted as freed slots, so the engine accepted into a full table", i, n, err)
			}
		}
		require.False(t, t.Failed())

		taken, _ := closeAndTake(t, v, accepted[0], 5, 1)
		require.Equal(t, localPort(t, waiting[0]), peerPort(t, v, taken.fd), "the accept took another connection")
		echo(t, v, waiting[0], taken.fd, pattern(20001, 41))
		require.NoError(t, v.Cancel(1))
		fin, _ := finalAfterNotices(t, v, 1)
		assert.Equal(t, -int32(unix.ECANCELED), fin.Res, "cancel of the accept: %v", fin.Err())
		assert.Zero(t, v.InFlight())
	})
}

// echo writes data from the client socket in odd-sized chunks; the engine
// receives it on the accepted connection fd and sends back what it got;
// the client reads it back. Every byte is checked, both ways.
func echo(t *testing.T, e eng, client, fd int, data []byte) {
	t.Helper()
	w := background(t, func(stop <-chan struct{}) error { return writeChunks(client, data, oddSizes, stop) })
	var back []byte
	r := background(t, func(stop <-chan struct{}) (err error) {
		back, err = readN(client, len(data), 65536, stop)
		return err
	})
	var got []byte
	for len(got) < len(data) {
		require.NoError(t, e.Recv(fd, make([]byte, 65536), 50))
		c := finalOf(t, reap(t, e, 4, finals(50)), 50)
		require.Positive(t, c.Res, "receive after %d of %d bytes: %d %v", len(got), len(data), c.Res, c.Err())
		got = append(got, c.Buf...)
		sendAll(t, e, fd, [][]byte{c.Buf}, 51)
	}
	result(t, w)
	result(t, r)
	requireBytes(t, data, got, "bytes the engine received")
	requireBytes(t, data, back, "bytes echoed back")
}

// TestDirectAddrs reads the addresses of accepted direct descriptors with
// Addrs: the local one is the client's peer and the peer the client's own
// address. Addrs installs the descriptor as a process fd for the time of
// the call and leaves none behind, and a completion that arrives meanwhile
// waits for the next Wait. On an empty slot it fails with EBADF.
func TestDirectAddrs(t *testing.T) {
	forEachDirectRow(t, func(t *testing.T, u *uringEng) {
		client, server := enginePairOwned(t, u, "127.0.0.1")
		clientLocal, err := unix.Getsockname(client.fd)
		require.NoError(t, err)
		clientPeer, err := unix.Getpeername(client.fd)
		require.NoError(t, err)

		before := fdCount(t)
		for range 100 {
			local, peer, err := u.Addrs(server.fd)
			require.NoError(t, err)
			require.Equal(t, addrPort(clientPeer), addrPort(local), "local address of the accepted connection")
			require.Equal(t, addrPort(clientLocal), addrPort(peer), "peer address of the accepted connection")
		}
		assert.Equal(t, before, fdCount(t), "descriptors before and after 100 Addrs")

		// A receive whose data arrives before Addrs: Addrs's own round trip
		// to the kernel may meet its completion, which the next Wait must
		// report all the same, once.
		buf := make([]byte, 64)
		require.NoError(t, u.Recv(server.fd, buf, 5))
		quiet(t, u, 10*time.Millisecond)
		msg := pattern(40, 5)
		_, err = unix.Write(client.fd, msg)
		require.NoError(t, err)
		waitAcked(t, client.fd)
		time.Sleep(10 * time.Millisecond)
		_, _, err = u.Addrs(server.fd)
		require.NoError(t, err)
		cs := reap(t, u, 4, finals(5))
		quiet(t, u, 20*time.Millisecond)
		require.Len(t, cs, 1, "completions: %s", describe(cs))
		require.Equal(t, int32(len(msg)), cs[0].Res, "the receive: %v", cs[0].Err())
		requireBytes(t, msg, cs[0].Buf, "the receive around Addrs")

		fd := server.fd
		closeDirect(t, u, server, 6)
		before = fdCount(t)
		_, _, err = u.Addrs(fd)
		assert.ErrorIs(t, err, unix.EBADF, "Addrs of an empty slot")
		assert.Equal(t, before, fdCount(t), "descriptors before and after a failed Addrs")
		assert.Zero(t, u.InFlight())
	})
}

// TestDirectSetSockOpt sets socket options on a direct descriptor with
// SetSockOptInt, a socket command whose result the engine does not report:
// no error, no completion, nothing in flight after the next Wait; the
// engine cannot read the option back, so what is checked is that the
// command leaves nothing behind, and that the connection works after it.
// More commands than the submission queue holds are absorbed too, and an
// option the kernel refuses changes nothing either.
func TestDirectSetSockOpt(t *testing.T) {
	forEachDirectRow(t, func(t *testing.T, u *uringEng) {
		client, server := enginePair(t, u, "127.0.0.1")
		require.True(t, engine.IsDirect(server))
		require.NoError(t, u.SetSockOptInt(server, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1))
		assert.Zero(t, u.InFlight(), "a socket command is no operation of the caller")
		quiet(t, u, 20*time.Millisecond)
		assert.Zero(t, u.InFlight(), "after the next Wait")

		for i := range 2 * engine.DefaultEntries {
			require.NoError(t, u.SetSockOptInt(server, unix.IPPROTO_TCP, unix.TCP_NODELAY, i%2))
		}
		require.NoError(t, u.SetSockOptInt(server, unix.SOL_SOCKET, 0x7fff, 1)) // no such option
		quiet(t, u, 20*time.Millisecond)
		assert.Zero(t, u.InFlight())

		msg := pattern(1000, 8)
		sendAll(t, u, server, [][]byte{msg}, 1)
		got, err := readN(client, len(msg), 4096, nil)
		require.NoError(t, err)
		requireBytes(t, msg, got, "bytes sent after the socket commands")
		quiet(t, u, 20*time.Millisecond)
		assert.Zero(t, u.InFlight())
	})
}

// TestDirectShutdown shuts down the sending side of a direct descriptor
// with Shutdown(SHUT_WR): the peer reads every byte sent before it, then
// end of stream; the connection still receives, until the peer shuts down
// too.
func TestDirectShutdown(t *testing.T) {
	forEachDirectRow(t, func(t *testing.T, u *uringEng) {
		client, server := enginePair(t, u, "127.0.0.1")
		data := pattern(1<<20+7, 12)
		var got []byte
		r := background(t, func(stop <-chan struct{}) (err error) {
			got, err = readN(client, len(data)+1, 65536, stop) // stops at end of stream
			return err
		})
		shorts := sendAll(t, u, server, [][]byte{data}, 1)
		require.NoError(t, u.Shutdown(server, unix.SHUT_WR))
		quiet(t, u, 20*time.Millisecond) // the shutdown goes with this Wait
		result(t, r)
		requireBytes(t, data, got, "bytes before the shutdown, then end of stream")
		t.Logf("%d bytes sent with %d short completions", len(data), shorts)

		msg := pattern(5000, 13)
		_, err := unix.Write(client, msg)
		require.NoError(t, err)
		requireBytes(t, msg, recvN(t, u, server, len(msg), 4096, 2), "bytes received after the shutdown")
		require.NoError(t, unix.Shutdown(client, unix.SHUT_WR))
		assert.Empty(t, recvN(t, u, server, 1, 16, 3), "end of stream")
		assert.Zero(t, u.InFlight())
	})
}

// TestDirectShutdownNoProcessFD shuts down a direct descriptor while the
// process has no descriptor to spare (RLIMIT_NOFILE lowered to the lowest
// free one for the call), so the engine cannot install the slot as a
// process fd for shutdown(2) and waits for IORING_OP_SHUTDOWN instead: the
// peer reads every byte sent, then end of stream, once Shutdown has
// returned, with no Wait between.
func TestDirectShutdownNoProcessFD(t *testing.T) {
	forEachDirectRow(t, func(t *testing.T, u *uringEng) {
		client, server := enginePairOwned(t, u, "127.0.0.1")
		data := pattern(3000, 14)
		sendAll(t, u, server.fd, [][]byte{data}, 1)

		var lim unix.Rlimit
		require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &lim))
		free, err := unix.Dup(0) // the lowest free descriptor number
		require.NoError(t, err)
		require.NoError(t, unix.Close(free))
		low := lim
		low.Cur = uint64(free)
		require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &low))
		_, dupErr := unix.Dup(0)
		err = u.Shutdown(server.fd, unix.SHUT_WR)
		require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &lim))
		require.ErrorIs(t, dupErr, unix.EMFILE, "no descriptor to spare while Shutdown ran")
		require.NoError(t, err)

		// Done when Shutdown returned: no Wait has run since, and the
		// connection is still open.
		got, err := readN(client.fd, len(data)+1, 4096, nil) // stops at end of stream
		require.NoError(t, err)
		requireBytes(t, data, got, "bytes before the shutdown, then end of stream")
		closeDirect(t, u, server, closeUD)
		assert.Zero(t, u.InFlight())
	})
}

// TestDirectPeerReset resets the peer of a direct descriptor under an
// armed multishot receive, 200 times over fresh connections with a
// different timing each: nothing written, bytes then the reset, the reset
// before the receive reaches the kernel, and bytes and reset racing the
// Wait. Every time the receive ends (re-armed after the -ENOBUFS or
// -ECANCELED the engine documents) with end of stream or -ECONNRESET
// before the deadline, with a prefix of the bytes sent; the hang-up watch
// the engine arms per connection ends with it.
func TestDirectPeerReset(t *testing.T) {
	forEachDirectRow(t, func(t *testing.T, u *uringEng) {
		const rounds = 200
		ln, sa := listenTCP(t, "127.0.0.1", 16)
		require.NoError(t, u.AcceptMultishot(ln, 1))
		linger := &unix.Linger{Onoff: 1, Linger: 0}
		rearms := make(map[string]int)
		for i := range rounds {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			require.NoError(t, err)
			client := own(t, fd)
			if err := unix.Connect(fd, sa); err != unix.EINPROGRESS {
				require.NoError(t, err)
			}
			as, notices := acceptN(t, u, 1, 1)
			require.Zero(t, notices, "round %d: full-table notices with one connection", i)
			server := as[0]
			require.True(t, pollFD(fd, unix.POLLOUT, deadline), "round %d: connect timed out", i)
			require.NoError(t, unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, linger))

			ud := uint64(1000 + i)
			sent := pattern(100*(i%7), uint32(i+1))
			require.NoError(t, u.RecvMultishot(server.fd, ud))
			switch i % 4 {
			case 0: // nothing written; the receive is in the kernel
				_, err := u.Wait(0, make([]completion, 1))
				require.NoError(t, err)
			case 1: // bytes, then the reset, under the receive
				_, err := u.Wait(0, make([]completion, 1))
				require.NoError(t, err)
				_, err = unix.Write(fd, sent)
				require.NoError(t, err)
			case 2: // the reset before the receive reaches the kernel
				_, err := unix.Write(fd, sent)
				require.NoError(t, err)
			case 3: // bytes and reset racing the Wait
				w := background(t, func(<-chan struct{}) error {
					if _, err := unix.Write(fd, sent); err != nil {
						return err
					}
					return client.close()
				})
				got, fin, re := recvStream(t, u, server.fd, ud, true)
				result(t, w)
				checkReset(t, i, sent, got, fin)
				addRearms(rearms, re)
				closeDirect(t, u, server, 2)
				continue
			}
			require.NoError(t, client.close())
			got, fin, re := recvStream(t, u, server.fd, ud, true)
			checkReset(t, i, sent, got, fin)
			addRearms(rearms, re)
			closeDirect(t, u, server, 2)
		}
		t.Logf("%d resets; re-armed after %v", rounds, rearms)
		require.NoError(t, u.Cancel(1))
		assert.Equal(t, -int32(unix.ECANCELED), finalOf(t, reap(t, u, 4, finals(1)), 1).Res)
		quiet(t, u, 20*time.Millisecond)
		assert.Zero(t, u.InFlight())
	})
}

// checkReset checks round i of TestDirectPeerReset: the final completion is
// end of stream or -ECONNRESET, and the bytes received a prefix of sent
// (SO_LINGER 0 discards what the sender had not sent yet).
func checkReset(t *testing.T, i int, sent, got []byte, fin completion) {
	t.Helper()
	require.True(t, fin.Res == 0 || fin.Res == -int32(unix.ECONNRESET),
		"round %d: final completion after a reset: %d %v (want 0 or -ECONNRESET)", i, fin.Res, fin.Err())
	require.LessOrEqual(t, len(got), len(sent), "round %d", i)
	requireBytes(t, sent[:len(got)], got, "bytes before the reset")
}

func addRearms(total, round map[string]int) {
	for k, n := range round {
		total[k] += n
	}
}

// TestDirectSplice splices a 5 MB file to a direct descriptor whose send
// buffer is small (SetSockOptInt) and whose reader starts late and reads in
// small pieces, so that the socket takes the pipe a part at a time and the
// splice waits for it (a poll on the direct descriptor): every byte
// arrives, in order.
func TestDirectSplice(t *testing.T) {
	forEachDirectRow(t, func(t *testing.T, u *uringEng) {
		const size = 5 << 20
		data := pattern(size, 77)
		path := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(path, data, 0o600))
		in, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		closeLater(t, in)
		client, server := enginePair(t, u, "127.0.0.1")
		require.True(t, engine.IsDirect(server))
		require.NoError(t, u.SetSockOptInt(server, unix.SOL_SOCKET, unix.SO_SNDBUF, 64<<10))

		var got []byte
		r := background(t, func(stop <-chan struct{}) (err error) {
			select {
			case <-stop:
				return errStopped
			case <-time.After(100 * time.Millisecond): // slow to start
			}
			got, err = readN(client, size, 4096, stop)
			return err
		})
		sent := spliceAll(t, u, server, in, 0, size, 1)
		require.Equal(t, size, sent, "bytes spliced")
		result(t, r)
		assert.Equal(t, sha256.Sum256(data), sha256.Sum256(got), "sha256")
		requireBytes(t, data, got, "5 MB spliced to a direct descriptor")
		assert.Zero(t, u.InFlight())
	})
}
