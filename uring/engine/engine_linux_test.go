package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/uring"
)

// The behaviours both engines share are tested against both in
// internal/enginetest; these are the io_uring engine's own: its operation
// table, ring messages, zero-copy sends, provided-buffer growth and Close
// with linked operations in flight.

// open returns an engine on the test's goroutine, locked to its thread for
// the test's duration, closed at the end.
func open(t testing.TB, o Options) *Engine {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	e, err := New(o)
	if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("io_uring engine unavailable: %v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() {
		if !e.closed {
			assert.NoError(t, e.Close())
		}
	})
	return e
}

// waitFor waits for the final completion of ud, collecting every
// completion seen meanwhile (their Buf copied); it fails the test after 10 s.
func waitFor(t *testing.T, e *Engine, ud uint64) (Completion, []Completion) {
	t.Helper()
	var seen []Completion
	cs := make([]Completion, 16)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, err := e.Wait(100*time.Millisecond, cs)
		require.NoError(t, err)
		for _, c := range cs[:n] {
			c.Buf = bytes.Clone(c.Buf)
			seen = append(seen, c)
			if c.UserData == ud && !c.More() {
				return c, seen
			}
		}
	}
	t.Fatalf("no final completion for %#x; seen %+v", ud, seen)
	return Completion{}, nil
}

// tcpPair returns a connected pair of non-blocking TCP sockets on
// 127.0.0.1, closed at the end of the test unless already closed.
func tcpPair(t *testing.T) (a, b int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	s, err := ln.Accept()
	require.NoError(t, err)
	a, b = dupFD(t, c.(*net.TCPConn)), dupFD(t, s.(*net.TCPConn))
	c.Close()
	s.Close()
	return a, b
}

func dupFD(t testing.TB, c interface{ File() (*os.File, error) }) int {
	t.Helper()
	f, err := c.File()
	require.NoError(t, err)
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	require.NoError(t, err)
	require.NoError(t, unix.SetNonblock(fd, true))
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// readAll reads n bytes from the blocking-polled fd within 10 s.
func readAll(t *testing.T, fd, n int) []byte {
	t.Helper()
	out := make([]byte, 0, n)
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		k, err := unix.Read(fd, buf)
		if err == unix.EAGAIN {
			time.Sleep(time.Millisecond)
			continue
		}
		require.NoError(t, err)
		if k == 0 {
			break
		}
		out = append(out, buf[:k]...)
	}
	return out
}

// TestTableReusesRows sends thousands of times, one send in flight per
// socket at a time over several sockets: rows are reused (the table stays
// as small as the sends in flight) and every byte arrives in order.
func TestTableReusesRows(t *testing.T) {
	e := open(t, Options{})
	const socks, rounds = 4, 2000
	var outs, ins [socks]int
	want := make([][]byte, socks)
	for i := range socks {
		outs[i], ins[i] = tcpPair(t)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	cs := make([]Completion, 64)
	for r := range rounds {
		for i := range socks {
			p := make([]byte, 1+rng.IntN(100))
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			want[i] = append(want[i], p...)
			require.NoError(t, e.Send(outs[i], [][]byte{p[:len(p)/2], p[len(p)/2:]}, uint64(i)))
		}
		got := 0
		for got < socks {
			n, err := e.Wait(time.Second, cs)
			require.NoError(t, err)
			for _, c := range cs[:n] {
				require.GreaterOrEqual(t, c.Res, int32(0), "round %d", r)
				got++
			}
		}
	}
	assert.LessOrEqual(t, len(e.rows), socks, "rows are reused")
	assert.Zero(t, e.InFlight())
	for i := range socks {
		assert.True(t, bytes.Equal(want[i], readAll(t, ins[i], len(want[i]))), "socket %d", i)
	}
}

// TestMsgRing sends a message from one engine's ring to another's: the
// target sees it as a completion in the message range, not an operation of
// its own, and data outside the range is refused.
func TestMsgRing(t *testing.T) {
	e := open(t, Options{})
	// The target lives on its own locked thread (SINGLE_ISSUER).
	type result struct {
		c   Completion
		err error
	}
	ready := make(chan int)
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tgt, err := New(Options{})
		if err != nil {
			ready <- -1
			done <- result{err: err}
			return
		}
		defer tgt.Close()
		ready <- tgt.RingFD()
		cs := make([]Completion, 4)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			n, err := tgt.Wait(100*time.Millisecond, cs)
			if err != nil || n > 0 {
				done <- result{c: cs[0], err: err}
				assert.Zero(t, tgt.InFlight(), "a message is no operation of the target's")
				return
			}
		}
		done <- result{err: errors.New("no message")}
	}()
	fd := <-ready
	require.GreaterOrEqual(t, fd, 0, "target ring without MSG_RING")
	assert.ErrorIs(t, e.MsgRing(fd, 7, 1, 5), unix.EINVAL, "data below MsgTokens")
	assert.ErrorIs(t, e.MsgRing(fd, 7, Reserved, 5), unix.EINVAL, "data in the reserved range")
	require.NoError(t, e.MsgRing(fd, 42, MsgTokens|99, 5))
	c, _ := waitFor(t, e, 5)
	assert.Equal(t, int32(0), c.Res)
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, MsgTokens|99, r.c.UserData)
	assert.Equal(t, int32(42), r.c.Res)
}

// TestReservedTokens checks that every submission refuses a token the
// engine keeps for itself.
func TestReservedTokens(t *testing.T) {
	e := open(t, Options{})
	a, _ := tcpPair(t)
	for _, ud := range []uint64{MsgTokens, Reserved, tokWake, tokIgnore} {
		assert.ErrorIs(t, e.RecvMultishot(a, ud), unix.EINVAL)
		assert.ErrorIs(t, e.Send(a, [][]byte{{1}}, ud), unix.EINVAL)
		assert.ErrorIs(t, e.CloseFD(a, ud), unix.EINVAL)
	}
	assert.Zero(t, e.InFlight())
}

// TestSendZeroCopy sends large buffers with Options.SendZC over TCP (zero
// copy, reported once, at the notification) and over AF_UNIX (refused by
// the kernel: sent the ordinary way without an error), checking every byte.
func TestSendZeroCopy(t *testing.T) {
	e := open(t, Options{SendZC: 1024})
	payload := make([]byte, 256<<10)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	a, b := tcpPair(t)
	uds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(uds[0]); unix.Close(uds[1]) })
	for _, tc := range []struct {
		name    string
		out, in int
		zc      bool
	}{{"tcp", a, b, true}, {"unix", uds[0], uds[1], false}} {
		before := e.Stats().ZeroCopySends
		got := make(chan []byte)
		go func() { got <- readAll(t, tc.in, len(payload)) }()
		sent := 0
		for sent < len(payload) {
			require.NoError(t, e.Send(tc.out, [][]byte{payload[sent:]}, 9))
			c, seen := waitFor(t, e, 9)
			require.Positive(t, c.Res, tc.name)
			for _, s := range seen {
				assert.Zero(t, s.Flags, "%s: one completion per send, no notification leaks", tc.name)
			}
			sent += int(c.Res)
		}
		assert.True(t, bytes.Equal(payload, <-got), tc.name)
		assert.Equal(t, tc.zc, e.Stats().ZeroCopySends > before, tc.name)
	}
}

// TestRecvBuffersGrow starts with two provided buffers: receives on many
// sockets run out (ENOBUFS), the ring doubles up to RecvBuffersMax, and
// after re-arming every byte arrives.
func TestRecvBuffersGrow(t *testing.T) {
	e := open(t, Options{RecvBuffers: 2, RecvBuffersMax: 16, RecvBufferSize: 4096})
	const socks = 8
	var outs, ins [socks]int
	msg := bytes.Repeat([]byte("0123456789abcdef"), 512) // 8 KiB: two buffers each
	for i := range socks {
		ins[i], outs[i] = tcpPair(t)
		_, err := unix.Write(outs[i], msg)
		require.NoError(t, err)
		require.NoError(t, e.RecvMultishot(ins[i], uint64(i)))
	}
	got := make([][]byte, socks)
	cs := make([]Completion, 32)
	deadline := time.Now().Add(10 * time.Second)
	for done := 0; done < socks && time.Now().Before(deadline); {
		n, err := e.Wait(100*time.Millisecond, cs)
		require.NoError(t, err)
		for _, c := range cs[:n] {
			i := c.UserData
			if c.Res > 0 {
				got[i] = append(got[i], c.Buf...)
			}
			if !c.More() {
				require.Equal(t, -int32(unix.ENOBUFS), c.Res, "socket %d", i)
				require.NoError(t, e.RecvMultishot(ins[i], i))
			}
			if len(got[i]) == len(msg) && c.Res > 0 {
				done++
			}
		}
	}
	for i := range socks {
		assert.True(t, bytes.Equal(msg, got[i]), "socket %d: %d bytes", i, len(got[i]))
	}
	assert.Greater(t, e.Stats().RecvBuffers, 2, "the ring grew")
	assert.LessOrEqual(t, e.Stats().RecvBuffers, 16)
	for i := range socks {
		require.NoError(t, e.Cancel(uint64(i)))
	}
	for finals := 0; finals < socks && time.Now().Before(deadline.Add(10*time.Second)); {
		n, err := e.Wait(100*time.Millisecond, cs)
		require.NoError(t, err)
		for _, c := range cs[:n] {
			if !c.More() {
				finals++
			}
		}
	}
	assert.Zero(t, e.InFlight())
}

// TestUpdateConnectTimeout bounds a connect that cannot complete (a
// listener whose backlog is full drops the SYNs), moves the bound, and
// checks -ETIME; an update for a connect that is not bounded is ENOENT.
func TestUpdateConnectTimeout(t *testing.T) {
	e := open(t, Options{})
	assert.ErrorIs(t, e.UpdateConnectTimeout(77, time.Second), unix.ENOENT)
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(lfd) })
	require.NoError(t, unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(lfd, 0))
	sa, err := unix.Getsockname(lfd)
	require.NoError(t, err)
	// Fill the backlog without accepting.
	for range 4 {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		t.Cleanup(func() { unix.Close(fd) })
		_ = unix.Connect(fd, sa)
	}
	time.Sleep(50 * time.Millisecond)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	start := time.Now()
	require.NoError(t, e.ConnectTimeout(fd, sa, time.Hour, 3))
	require.NoError(t, e.UpdateConnectTimeout(3, 100*time.Millisecond))
	c, _ := waitFor(t, e, 3)
	if c.Res == 0 {
		t.Skip("the kernel accepted the connect despite the full backlog")
	}
	assert.Equal(t, -int32(unix.ETIME), c.Res)
	assert.Less(t, time.Since(start), 30*time.Minute, "the updated bound fired, not the first")
	assert.ErrorIs(t, e.UpdateConnectTimeout(3, time.Second), unix.ENOENT, "over")
	assert.Zero(t, e.InFlight())
}

// TestCloseWithLinkedOpsInFlight closes the engine with a bounded connect,
// a splice waiting on a full socket and a multishot receive in flight: Close
// reaps them all, leaks no descriptor (the ring's, the eventfd and the
// splice's pipe), and later calls fail with ErrClosed.
func TestCloseWithLinkedOpsInFlight(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a, b := tcpPair(t)
	f, err := os.CreateTemp(t.TempDir(), "splice")
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write(bytes.Repeat([]byte{'x'}, 8<<20))
	require.NoError(t, err)
	cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(cfd)
	before := countFDs(t)

	e, err := New(Options{})
	if err != nil {
		t.Skipf("io_uring engine unavailable: %v", err)
	}
	require.NoError(t, e.RecvMultishot(b, 1))
	// Nobody reads b: the splice fills the socket buffers and waits.
	require.NoError(t, e.Splice(a, int(f.Fd()), 0, 8<<20, 2))
	require.NoError(t, e.ConnectTimeout(cfd, &unix.SockaddrInet4{Addr: [4]byte{10, 255, 255, 1}, Port: 9}, time.Hour, 3))
	cs := make([]Completion, 16)
	_, err = e.Wait(50*time.Millisecond, cs)
	require.NoError(t, err)
	require.Positive(t, e.InFlight())
	require.NoError(t, e.Close())
	assert.Zero(t, e.InFlight())
	assert.ErrorIs(t, e.Send(a, [][]byte{{1}}, 4), ErrClosed)
	_, err = e.Wait(0, cs)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, e.Close(), ErrClosed)
	assert.Equal(t, before, countFDs(t), "descriptors leaked by Close")
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// TestDirectAcceptTableFull accepts into a table of 4 slots: the fifth
// connection waits in the listen queue (never reset), the accept reports
// the full table once with a non-final -ENFILE, and after a CloseFD frees a
// slot the waiting connection is accepted by the same operation.
func TestDirectAcceptTableFull(t *testing.T) {
	e := open(t, Options{DirectFiles: 4})
	require.Equal(t, 4, e.DirectFiles())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	lfd := dupFD(t, ln.(*net.TCPListener))
	require.NoError(t, e.AcceptMultishotDirect(lfd, 1))
	var clients []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		clients = append(clients, c)
	}
	var fds []int
	full := 0
	cs := make([]Completion, 16)
	deadline := time.Now().Add(10 * time.Second)
	for (len(fds) < 4 || full == 0) && time.Now().Before(deadline) {
		n, err := e.Wait(100*time.Millisecond, cs)
		require.NoError(t, err)
		for _, c := range cs[:n] {
			require.True(t, c.More(), "the accept goes on: %+v", c)
			if c.Res == -int32(unix.ENFILE) {
				full++
				continue
			}
			require.True(t, IsDirect(int(c.Res)), "res %d", c.Res)
			fds = append(fds, int(c.Res))
		}
	}
	require.Len(t, fds, 4)
	require.Equal(t, 1, full, "the full table is reported once")
	require.NoError(t, e.CloseFD(fds[0], 2))
	var fifth int
	for fifth == 0 && time.Now().Before(deadline) {
		n, err := e.Wait(100*time.Millisecond, cs)
		require.NoError(t, err)
		for _, c := range cs[:n] {
			if c.UserData == 1 && c.Res >= 0 {
				fifth = int(c.Res)
			}
		}
	}
	require.NotZero(t, fifth, "the waiting connection is accepted once a slot is free")
	_, peer, err := e.Addrs(fifth)
	require.NoError(t, err)
	local := clients[4].LocalAddr().(*net.TCPAddr)
	assert.Equal(t, local.Port, peer.(*unix.SockaddrInet4).Port, "the fifth client, not a reset one")
}

// TestAddrsKeepsCompletions calls Addrs, whose install waits for its own
// CQE, while a receive's completion is posted: the receive's completion is
// kept and reported by the next Wait, which must not block for it.
func TestAddrsKeepsCompletions(t *testing.T) {
	e := open(t, Options{DirectFiles: 8})
	_, c, direct := acceptOneDirect(t, e)
	cs := make([]Completion, 8)
	require.NoError(t, e.RecvMultishot(direct, 2))
	_, err := e.Wait(0, cs) // submit the receive
	require.NoError(t, err)
	_, err = c.Write([]byte("stashed"))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // the receive's CQE is posted meanwhile
	_, peer, err := e.Addrs(direct)
	require.NoError(t, err)
	assert.Equal(t, c.LocalAddr().(*net.TCPAddr).Port, peer.(*unix.SockaddrInet4).Port)
	woken := make(chan struct{})
	timer := time.AfterFunc(10*time.Second, func() { close(woken); _ = e.Wake() })
	defer timer.Stop()
	var got []byte
	for len(got) < len("stashed") {
		n, err := e.Wait(-1, cs)
		require.NoError(t, err)
		select {
		case <-woken:
			t.Fatal("Wait blocked with a stashed completion")
		default:
		}
		for _, x := range cs[:n] {
			if x.UserData == 2 && x.Res > 0 {
				got = append(got, x.Buf...)
			}
		}
	}
	assert.Equal(t, "stashed", string(got))
}

// TestSendDirect moves an accepted direct descriptor to another engine's
// table: the target adopts it from the message's slot and serves it (every
// byte both ways checked), the sender closes its own slot, and the
// target's promise of slots (ReserveDirect) is what the move consumes.
func TestSendDirect(t *testing.T) {
	e := open(t, Options{DirectFiles: 4})
	type result struct {
		got []byte
		err error
	}
	ready := make(chan int, 1)
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tgt, err := New(Options{DirectFiles: 4})
		if err != nil {
			ready <- -1
			done <- result{err: err}
			return
		}
		defer tgt.Close()
		if n := tgt.ReserveDirect(10); n != 4 {
			ready <- -1
			done <- result{err: fmt.Errorf("ReserveDirect(10) of 4 free slots promised %d", n)}
			return
		}
		if n := tgt.ReserveDirect(1); n != 0 {
			ready <- -1
			done <- result{err: fmt.Errorf("ReserveDirect on a full table promised %d", n)}
			return
		}
		ready <- tgt.RingFD()
		cs := make([]Completion, 8)
		var got []byte
		fd := -1
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			n, err := tgt.Wait(100*time.Millisecond, cs)
			if err != nil {
				done <- result{err: err}
				return
			}
			for _, c := range cs[:n] {
				switch {
				case c.UserData == MsgTokens|7:
					if fd, err = tgt.AdoptDirect(c.Res, true); err == nil {
						err = tgt.RecvMultishot(fd, 1)
					}
				case c.UserData == 1 && c.Res > 0:
					got = append(got, c.Buf...)
					if len(got) == len("moved") {
						err = tgt.Send(fd, [][]byte{[]byte("back")}, 2)
					}
				case c.UserData == 2:
					done <- result{got: got, err: errors.Join(err, tgt.CloseFD(fd, 3))}
					return
				}
				if err != nil {
					done <- result{err: err}
					return
				}
			}
		}
		done <- result{got: got, err: errors.New("no round trip on the moved descriptor")}
	}()
	ringFD := <-ready
	if ringFD < 0 {
		t.Fatal((<-done).err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, e.AcceptMultishotDirect(dupFD(t, ln.(*net.TCPListener)), 1))
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	var fd int
	cs := make([]Completion, 8)
	for deadline := time.Now().Add(10 * time.Second); fd == 0 && time.Now().Before(deadline); {
		n, err := e.Wait(100*time.Millisecond, cs)
		require.NoError(t, err)
		for _, c := range cs[:n] {
			if c.UserData == 1 && c.Res >= 0 {
				fd = int(c.Res)
			}
		}
	}
	require.True(t, IsDirect(fd), "accepted %d", fd)
	assert.ErrorIs(t, e.SendDirect(ringFD, fd, 1, 5), unix.EINVAL, "data below MsgTokens")
	assert.ErrorIs(t, e.SendDirect(ringFD, 3, MsgTokens|7, 5), unix.EINVAL, "a process fd")
	assert.ErrorIs(t, e.SendDirect(ringFD, DirectBase+4, MsgTokens|7, 5), unix.EINVAL, "a slot outside the table")
	require.NoError(t, e.SendDirect(ringFD, fd, MsgTokens|7, 5))
	c, _ := waitFor(t, e, 5)
	require.GreaterOrEqual(t, c.Res, int32(0), "moved: %v", unix.Errno(-c.Res))
	require.NoError(t, e.CloseFD(fd, 6))
	c, _ = waitFor(t, e, 6)
	require.Equal(t, int32(0), c.Res)

	_, err = client.Write([]byte("moved"))
	require.NoError(t, err)
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, "moved", string(r.got))
	require.NoError(t, client.SetReadDeadline(time.Now().Add(10*time.Second)))
	back, err := io.ReadAll(client)
	require.NoError(t, err, "the target closes it after replying: EOF, not a reset")
	assert.Equal(t, "back", string(back))
}

// TestDatagramDirect registers a bound UDP socket as a direct descriptor
// (its process fd closed) and serves a datagram round trip on it: RecvFrom
// by RECVMSG reports the bytes and the sender, SendTo answers it, and a
// full table refuses the next registration with ENFILE, leaving that fd
// alone.
func TestDatagramDirect(t *testing.T) {
	e := open(t, Options{DirectFiles: 1})
	before := countFDs(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	direct, err := e.RegisterDirect(fd)
	require.NoError(t, err)
	require.True(t, IsDirect(direct))
	assert.Equal(t, before, countFDs(t), "the process fd is closed")
	local, _, err := e.Addrs(direct)
	require.ErrorIs(t, err, unix.ENOTCONN, "an unconnected socket has no peer")
	port := local.(*unix.SockaddrInet4).Port

	spare, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(spare)
	_, err = e.RegisterDirect(spare)
	require.ErrorIs(t, err, unix.ENFILE)
	_, err = unix.Getsockname(spare)
	require.NoError(t, err, "a refused fd stays open")

	peer, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	require.NoError(t, err)
	defer peer.Close()
	msg := make([]byte, 1200)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	_, err = peer.Write(msg)
	require.NoError(t, err)
	buf := make([]byte, 2048)
	require.NoError(t, e.RecvFrom(direct, buf, 1))
	c, _ := waitFor(t, e, 1)
	require.Equal(t, int32(len(msg)), c.Res, c.Err())
	assert.Equal(t, msg, c.Buf)
	from, ok := c.From.(*unix.SockaddrInet4)
	require.True(t, ok, "sender %#v", c.From)
	assert.Equal(t, peer.LocalAddr().(*net.UDPAddr).Port, from.Port)
	assert.Equal(t, [4]byte{127, 0, 0, 1}, from.Addr)

	require.NoError(t, e.SendTo(direct, []byte("pong"), c.From, 2))
	c, _ = waitFor(t, e, 2)
	require.Equal(t, int32(4), c.Res, c.Err())
	require.NoError(t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, err := peer.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "pong", string(buf[:n]))

	require.NoError(t, e.RecvFrom(direct, buf, 3))
	require.NoError(t, e.Cancel(3))
	c, _ = waitFor(t, e, 3)
	assert.Equal(t, -int32(unix.ECANCELED), c.Res, "a pending receive cancels")
	require.NoError(t, e.CloseFD(direct, 4))
	c, _ = waitFor(t, e, 4)
	assert.Equal(t, int32(0), c.Res)
}

// TestDirectAcceptFullTellsEachListener: with two listeners on a full table
// each is told once (a non-final -ENFILE), not only the first; a slot freed
// ends the episode, and the next one tells both again.
func TestDirectAcceptFullTellsEachListener(t *testing.T) {
	e := open(t, Options{DirectFiles: 2})
	var lns [2]net.Listener
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		lns[i] = ln
		require.NoError(t, e.AcceptMultishotDirect(dupFD(t, ln.(*net.TCPListener)), uint64(i+1)))
	}
	told := map[uint64]int{}
	var fds []int
	cs := make([]Completion, 16)
	collect := func(until func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !until() && time.Now().Before(deadline); {
			n, err := e.Wait(100*time.Millisecond, cs)
			require.NoError(t, err)
			for _, c := range cs[:n] {
				if c.UserData == 9 {
					continue // the CloseFD
				}
				require.True(t, c.More(), "%+v", c)
				if c.Res == -int32(unix.ENFILE) {
					told[c.UserData]++
				} else if c.Res >= 0 {
					fds = append(fds, int(c.Res))
				}
			}
		}
	}
	// Listener 1 has promised both slots; listener 2 finds none.
	collect(func() bool { return told[1] == 1 && told[2] == 1 })
	assert.Equal(t, map[uint64]int{1: 1, 2: 1}, told, "each listener is told once")

	for range 2 {
		c, err := net.Dial("tcp", lns[0].Addr().String())
		require.NoError(t, err)
		defer c.Close()
	}
	collect(func() bool { return len(fds) == 2 })
	require.Len(t, fds, 2)
	require.NoError(t, e.CloseFD(fds[0], 9)) // ends the episode
	collect(func() bool { return told[1] == 2 && told[2] == 2 })
	assert.Equal(t, map[uint64]int{1: 2, 2: 2}, told, "a new episode tells both again")
}

// TestControl: Control gives a direct descriptor a process fd that reaches
// the socket (an option set through it reads back) and closes it after;
// a process fd is passed as is; an empty slot is EBADF; fn's error comes
// back unchanged.
func TestControl(t *testing.T) {
	e := open(t, Options{DirectFiles: 8})
	ln, _, direct := acceptOneDirect(t, e)
	before := fdCount(t)
	var seen int
	require.NoError(t, e.Control(direct, func(fd int) error {
		seen = fd
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	}))
	assert.GreaterOrEqual(t, seen, 0)
	assert.NotEqual(t, direct, seen, "a process fd, not the direct descriptor")
	assert.Equal(t, before, fdCount(t), "the installed fd is closed after the call")
	var v int
	require.NoError(t, e.Control(direct, func(fd int) (err error) {
		v, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		return err
	}))
	assert.Equal(t, 1, v, "the option reached the socket")

	boom := errors.New("boom")
	assert.Same(t, boom, e.Control(direct, func(int) error { return boom }))
	assert.ErrorIs(t, e.Control(direct^1, func(int) error { return nil }), unix.EBADF, "an empty slot")
	pfd := dupFD(t, ln.(*net.TCPListener))
	defer unix.Close(pfd)
	require.NoError(t, e.Control(pfd, func(fd int) error { seen = fd; return nil }))
	assert.Equal(t, pfd, seen, "a process fd as is")
}

// fdCount counts the process's open descriptors.
func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// acceptOneDirect accepts one loopback connection into e's table and
// returns the listener, the client side and the direct descriptor; both
// are closed at cleanup.
func acceptOneDirect(t testing.TB, e *Engine) (net.Listener, net.Conn, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	require.NoError(t, e.AcceptMultishotDirect(dupFD(t, ln.(*net.TCPListener)), 1))
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	var direct int
	cs := make([]Completion, 8)
	for deadline := time.Now().Add(10 * time.Second); direct == 0 && time.Now().Before(deadline); {
		n, err := e.Wait(100*time.Millisecond, cs)
		require.NoError(t, err)
		for _, x := range cs[:n] {
			if x.UserData == 1 && x.Res >= 0 {
				direct = int(x.Res)
			}
		}
	}
	require.NotZero(t, direct)
	return ln, c, direct
}

// TestSendSlabs: a send whose buffers lie in the send slabs pins nothing of
// its own; a buffer of the Go heap is pinned for the send, alone or beside a
// slab chunk; every byte arrives in order either way. Without slabs every
// send buffer is pinned. A send of one slab buffer takes no operation
// memory: its row holds nothing for the kernel.
func TestSendSlabs(t *testing.T) {
	for _, slabs := range []bool{true, false} {
		t.Run(fmt.Sprint("slabs=", slabs), func(t *testing.T) {
			o := Options{}
			if slabs {
				o.SendSlabChunk, o.SendSlabChunks = 4096, 8
			}
			e := open(t, o)
			a, b := tcpPair(t)
			chunk := func(fill byte, n int) []byte {
				var c []byte
				if slabs {
					c = e.SendSlabs().Get()
					require.NotNil(t, c)
					require.True(t, e.SendSlabs().Contains(c[:1]))
				} else {
					assert.Nil(t, e.SendSlabs())
					c = make([]byte, 0, 4096)
				}
				for i := 0; i < n; i++ {
					c = append(c, fill+byte(i))
				}
				return c
			}
			heapBuf := bytes.Repeat([]byte{0xEE}, 1000)
			one, two := chunk(1, 3000), chunk(100, 2000)
			cases := []struct {
				name string
				bufs [][]byte
				pins int  // with slabs
				mem  bool // the row takes operation memory, with slabs
			}{
				{"slab", [][]byte{one}, 0, false},
				{"slab-part", [][]byte{one[1000:2500]}, 0, false},
				{"slabs", [][]byte{one, two}, 0, true},
				{"heap", [][]byte{heapBuf}, 1, true},
				{"slab+heap", [][]byte{two, heapBuf, one[:10]}, 1, true},
			}
			var want []byte
			for _, tc := range cases {
				before := e.Stats().PinnedSendBuffers
				n := 0
				for _, p := range tc.bufs {
					n += len(p)
					want = append(want, p...)
				}
				require.NoError(t, e.Send(a, tc.bufs, 7))
				rows := 0
				for _, r := range e.rows {
					if r.live && r.ud == 7 {
						rows++
						assert.Equal(t, tc.mem || !slabs, r.mem != nil, "%s: operation memory", tc.name)
					}
				}
				require.Equal(t, 1, rows, tc.name)
				c, _ := waitFor(t, e, 7)
				require.Equal(t, int32(n), c.Res, tc.name)
				pins := len(tc.bufs)
				if slabs {
					pins = tc.pins
				}
				assert.Equal(t, pins, e.Stats().PinnedSendBuffers-before, tc.name)
			}
			assert.True(t, bytes.Equal(want, readAll(t, b, len(want))), "bytes in order")
			if slabs {
				assert.True(t, e.SendSlabs().Put(one[:0]))
				require.NoError(t, e.Close())
				assert.False(t, e.SendSlabs().Contains(two), "closed with the engine")
			}
		})
	}
}

// TestSendZCFixedSlabs: with zero-copy sends, a send from a send slab names
// the slab's slot in the fixed-buffer table (each slab in its own slot, the
// second slab too), and every byte arrives in order; a buffer of the Go heap
// and a send of several buffers go out zero-copy unregistered. With
// NoFixedSendBuffers no send names a fixed buffer.
func TestSendZCFixedSlabs(t *testing.T) {
	for _, fixed := range []bool{true, false} {
		t.Run(fmt.Sprint("fixed=", fixed), func(t *testing.T) {
			e := open(t, Options{SendZC: 1, SendSlabChunk: 4096, SendSlabChunks: 128, NoFixedSendBuffers: !fixed})
			a, b := tcpPair(t)
			var chunks [][]byte
			for range 66 { // 64 per slab: two slabs
				c := e.SendSlabs().Get()
				require.NotNil(t, c)
				chunks = append(chunks, c)
			}
			fill := func(c []byte, seed byte, n int) []byte {
				for i := 0; i < n; i++ {
					c = append(c, seed+byte(i*3))
				}
				return c
			}
			first, second := fill(chunks[0], 1, 4096), fill(chunks[65], 50, 3000)
			require.Equal(t, 0, e.SendSlabs().Index(first))
			require.Equal(t, 1, e.SendSlabs().Index(second))
			heapBuf := bytes.Repeat([]byte{0xEE}, 1000)
			cases := []struct {
				name  string
				bufs  [][]byte
				fixed int // with the table
			}{
				{"slab 0", [][]byte{first}, 1},
				{"slab 1", [][]byte{second}, 1},
				{"slab 1, part", [][]byte{second[100:2100]}, 1},
				{"heap", [][]byte{heapBuf}, 0},
				{"slabs", [][]byte{first[:10], second}, 0},
				{"slab 0 again", [][]byte{first[4000:]}, 1},
			}
			var want []byte
			for _, tc := range cases {
				before, zc := e.Stats().FixedZeroCopySends, e.Stats().ZeroCopySends
				n := 0
				for _, p := range tc.bufs {
					n += len(p)
					want = append(want, p...)
				}
				require.NoError(t, e.Send(a, tc.bufs, 7))
				c, _ := waitFor(t, e, 7)
				require.Equal(t, int32(n), c.Res, tc.name)
				assert.Equal(t, 1, e.Stats().ZeroCopySends-zc, "%s: zero-copy", tc.name)
				wantFixed := tc.fixed
				if !fixed {
					wantFixed = 0
				}
				assert.Equal(t, wantFixed, e.Stats().FixedZeroCopySends-before, "%s: fixed buffer", tc.name)
			}
			assert.True(t, bytes.Equal(want, readAll(t, b, len(want))), "bytes in order")
			assert.Equal(t, fixed, e.fixedSlabs != nil, "fixed-buffer table")
		})
	}
}

// TestSendZCHoldsSlabChunk: the slab chunks of a zero-copy send are held
// until its row is freed, after the notification: put back to the slabs
// before that (the loop puts a chunk back at the send's completion, and the
// kernel may read it until the notification), a chunk is not handed out
// again; once the row is freed it is. (Over loopback the kernel copies and
// notifies at once, so the row is freed with the completion; this test puts
// the chunk back before the send is even submitted.) An ordinary send holds
// nothing.
func TestSendZCHoldsSlabChunk(t *testing.T) {
	for _, zc := range []bool{true, false} {
		t.Run(fmt.Sprint("zc=", zc), func(t *testing.T) {
			o := Options{SendSlabChunk: 4096, SendSlabChunks: 64} // one slab
			if zc {
				o.SendZC = 1
			}
			e := open(t, o)
			a, b := tcpPair(t)
			sl := e.SendSlabs()
			c, d := sl.Get(), sl.Get()
			for i := 0; i < 4096; i++ {
				c = append(c, byte(i*5+1))
			}
			d = append(d, "tail"...)
			want := append(bytes.Clone(c), d...)
			require.NoError(t, e.Send(a, [][]byte{c, d}, 7))
			require.True(t, sl.Put(c))
			require.True(t, sl.Put(d))
			handedOut := 0
			for x := sl.Get(); x != nil; x = sl.Get() { // every free chunk
				if p := &x[:1][0]; p == &c[0] || p == &d[0] {
					handedOut++
				}
			}
			if !zc {
				assert.Equal(t, 2, handedOut, "an ordinary send holds nothing")
				return
			}
			assert.Zero(t, handedOut, "chunks of a zero-copy send in flight handed out again")
			done, _ := waitFor(t, e, 7)
			require.Equal(t, int32(len(want)), done.Res)
			assert.Equal(t, want, readAll(t, b, len(want)))
			deadline := time.Now().Add(5 * time.Second)
			for e.InFlight() > 0 && time.Now().Before(deadline) {
				_, err := e.Wait(10*time.Millisecond, make([]Completion, 4))
				require.NoError(t, err)
			}
			require.Zero(t, e.InFlight(), "the notification")
			got := [][]byte{sl.Get(), sl.Get()}
			require.NotNil(t, got[0], "free once the row is")
			require.NotNil(t, got[1], "free once the row is")
			assert.ElementsMatch(t, []*byte{&c[0], &d[0]}, []*byte{&got[0][:1][0], &got[1][:1][0]})
			assert.Nil(t, sl.Get(), "those two only")
		})
	}
}

// TestRecvBundle: with receive bundles, one CQE carries several 256-byte
// buffers. Wait reports one completion per buffer, in order; with room for
// only five per Wait, the rest of a bundle (and what follows it) waits for
// the next Wait, whose buffers must not go back to the kernel before they
// are reported. 16 sockets stream 48 KiB each while the ring runs out of
// buffers and grows: every byte must arrive, in order.
func TestRecvBundle(t *testing.T) {
	e := open(t, Options{RecvBundle: true, RecvBufferSize: 256, RecvBuffers: 16, RecvBuffersMax: 64})
	if !e.r.Features().Has(uring.FeatRecvsendBundle) || bundleReorders() {
		t.Skip("no receive bundles (Linux 6.10), or a kernel whose bundles reorder")
	}
	if v, _ := kernelRelease(); !e.RecvBundle() {
		// Kernels with bundles before the per-completion cap (in 6.18, at
		// the latest) get none; on a later one the probe must find it.
		require.Less(t, v[0]*1000+v[1], 6018, "the engine turned bundles off on %v", v)
		t.Skipf("kernel %v: bundles without the per-completion cap", v)
	}
	const socks, size = 16, 48 << 10
	var ins, outs [socks]int
	want := make([][]byte, socks)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range socks {
		ins[i], outs[i] = tcpPair(t)
		want[i] = make([]byte, size)
		for j := range want[i] {
			want[i][j] = byte(rng.Uint32())
		}
		require.NoError(t, e.RecvMultishot(ins[i], uint64(i)))
	}
	writes := make(chan error, 1)
	go func() {
		// Random-sized writes across the sockets, so data keeps arriving
		// while the engine recycles buffers.
		rng := rand.New(rand.NewPCG(5, 6))
		var off [socks]int
		for left := socks; left > 0; {
			i := rng.IntN(socks)
			if off[i] == size {
				continue
			}
			n := min(1+rng.IntN(4096), size-off[i])
			k, err := unix.Write(outs[i], want[i][off[i]:off[i]+n])
			if err == unix.EAGAIN {
				time.Sleep(100 * time.Microsecond)
				continue
			}
			if err != nil {
				writes <- err
				return
			}
			if off[i] += k; off[i] == size {
				left--
			}
		}
		writes <- nil
	}()
	got := make([][]byte, socks)
	cs := make([]Completion, 5)
	overflowed := 0
	armed := socks // receives whose final completion was not reported
	deadline := time.Now().Add(20 * time.Second)
	for done := 0; done < socks && time.Now().Before(deadline); {
		require.Equal(t, armed, e.InFlight(), "a final completion held over counts in flight")
		n, err := e.Wait(100*time.Millisecond, cs)
		require.NoError(t, err)
		if len(e.pending) > 0 {
			overflowed++
		}
		for _, c := range cs[:n] {
			if !c.More() {
				armed--
			}
			i := c.UserData
			if c.Res > 0 {
				got[i] = append(got[i], c.Buf...)
				if len(got[i]) == size {
					done++
				}
			}
			if !c.More() {
				// Out of buffers: -ENOBUFS, or a bundle that took the
				// last ones ends the receive with its bytes.
				if c.Res <= 0 {
					require.Equal(t, -int32(unix.ENOBUFS), c.Res, "socket %d", i)
				}
				require.NoError(t, e.RecvMultishot(ins[i], i))
				armed++
			}
		}
	}
	require.NoError(t, <-writes)
	for i := range socks {
		require.Len(t, got[i], size, "socket %d", i)
		require.True(t, bytes.Equal(want[i], got[i]), "socket %d: bytes differ", i)
	}
	st := e.Stats()
	assert.Positive(t, st.RecvBundles, "CQEs that filled several buffers")
	assert.Greater(t, st.BundledBuffers, 2*st.RecvBundles-1)
	assert.Positive(t, overflowed, "Waits that left completions for the next")
	t.Logf("bundles %d of %d buffers; %d Waits left completions pending; ring %d buffers", st.RecvBundles, st.BundledBuffers, overflowed, st.RecvBuffers)
}

// BenchmarkShutdown: what one Shutdown(SHUT_WR) of a connection costs the
// caller, repeated on the same socket (a second shutdown of a side is a
// no-op for the socket, not for the call): a process fd's shutdown(2); a
// direct descriptor's, installed as a process fd for the call (Shutdown's
// way); and a waited IORING_OP_SHUTDOWN, which goes through a kernel
// worker thread (its fallback).
func BenchmarkShutdown(b *testing.B) {
	for _, way := range []string{"process-fd", "direct-install", "direct-waited"} {
		b.Run(way, func(b *testing.B) {
			e := open(b, Options{DirectFiles: 16})
			_, c, direct := acceptOneDirect(b, e)
			call := func() error { return e.Shutdown(direct, unix.SHUT_WR) }
			switch way {
			case "process-fd":
				fd := dupFD(b, c.(*net.TCPConn))
				call = func() error { return e.Shutdown(fd, unix.SHUT_WR) }
			case "direct-waited":
				slot, _ := fdOf(direct)
				call = func() error { return e.shutdownWaited(slot, unix.SHUT_WR) }
			}
			for b.Loop() {
				if err := call(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
