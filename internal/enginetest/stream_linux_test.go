package enginetest

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/uring/engine"
)

// oddSizes are the chunk sizes peers write in, cycled: prime-ish, from one
// byte to more than a receive buffer, so reads never line up with writes.
var oddSizes = []int{1, 7, 4093, 65537, 13, 100003, 511, 1<<17 + 3, 2, 30011}

// TestAcceptMultishot accepts several connections with one operation: each
// is a completion with FlagMore whose Res is a connection to exactly one of
// the clients: a non-blocking, close-on-exec process fd, or on the direct
// rows a direct descriptor of the engine's table.
func TestAcceptMultishot(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		const ud, conns = 1, 5
		ln, sa := listenTCP(t, "127.0.0.1", 16)
		require.NoError(t, e.AcceptMultishot(ln, ud))
		clients := make(map[uint16]int) // client port -> index
		tags := make([][]byte, conns)
		for i := range conns {
			fd := dialTCP(t, sa)
			require.True(t, pollFD(fd, unix.POLLOUT, deadline), "connect timed out")
			local, err := unix.Getsockname(fd)
			require.NoError(t, err)
			clients[addrPort(local).Port()] = i
			tags[i] = pattern(64+i, uint32(i+1))
			n, err := unix.Write(fd, tags[i])
			require.NoError(t, err)
			require.Equal(t, len(tags[i]), n)
		}
		// A dst of 2 also exercises completions left over between Waits.
		cs := reap(t, e, 2, func(cs []completion) bool { return len(of(cs, ud)) >= conns || finals(ud)(cs) })
		accepted := of(cs, ud)
		for _, c := range accepted {
			if c.Res >= 0 {
				closeAccepted(t, e, int(c.Res))
			}
		}
		require.Len(t, accepted, conns, "completions: %s", describe(cs))
		seen := make(map[int]bool)
		for k, c := range accepted {
			require.GreaterOrEqual(t, c.Res, int32(0), "accept failed: %v", unix.Errno(-c.Res))
			assert.True(t, c.More, "an accept completion must carry FlagMore while the operation lasts")
			fd := int(c.Res)
			requireAcceptedKind(t, e, fd)
			if !engine.IsDirect(fd) {
				// A direct descriptor has no file status or descriptor
				// flags to ask fcntl(2) for.
				fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
				require.NoError(t, err)
				assert.NotZero(t, fl&unix.O_NONBLOCK, "accepted fd %d is blocking", fd)
				fdfl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
				require.NoError(t, err)
				assert.NotZero(t, fdfl&unix.FD_CLOEXEC, "accepted fd %d is not close-on-exec", fd)
			}
			_, peer, err := e.Addrs(fd)
			require.NoError(t, err)
			i, ok := clients[addrPort(peer).Port()]
			require.True(t, ok, "accepted fd %#x is connected to %v, none of the clients", fd, addrPort(peer))
			require.False(t, seen[i], "client %d accepted twice", i)
			seen[i] = true
			got := recvN(t, e, fd, len(tags[i]), 4096, uint64(100+k))
			requireBytes(t, tags[i], got, "bytes of the accepted connection")
		}
		require.NoError(t, e.Cancel(ud))
		cs = reap(t, e, 4, finals(ud))
		assert.Equal(t, -int32(unix.ECANCELED), finalOf(t, cs, ud).Res)
		assert.Zero(t, e.InFlight())
	})
}

// TestRecvMultishotStream receives a 4 MB stream, written in odd-sized
// chunks, with a multishot receive: every byte in order, FlagMore on every
// data completion, and end of stream as the final completion Res 0. A final
// -ENOBUFS (io_uring: the provided buffers ran out; the bytes wait in the
// socket) is re-armed, as the engine documents; nothing else ends it early.
func TestRecvMultishotStream(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		const ud = 0x1234_5678_9abc_def0 // a token with every byte in use
		client, server := enginePair(t, e, "127.0.0.1")
		data := pattern(4<<20, 7)
		w := background(t, func(stop <-chan struct{}) error {
			if err := writeChunks(client, data, oddSizes, stop); err != nil {
				return err
			}
			return unix.Shutdown(client, unix.SHUT_WR)
		})
		got, fin, rearms := recvStream(t, e, server, ud, false)
		require.Equal(t, int32(0), fin.Res, "the final completion must be end of stream (%v)", fin.Err())
		result(t, w)
		requireBytes(t, data, got, "received stream")
		t.Logf("re-armed after %v", rearms)
		assert.Zero(t, e.InFlight())
	})
}

// recvStream receives from the stream socket fd with multishot receives
// until one ends with anything but a final completion that means "re-arm":
// -ENOBUFS (the io_uring engine's provided buffers ran out; the bytes wait
// in the socket) or an -ECANCELED the caller never asked for (the io_uring
// engine cancels a receive whose peer went, to work around kernel races
// that would strand it; see hangup_linux.go). It checks
// that every completion but the last of each receive carries data and
// FlagMore, and returns the bytes, the final completion and how many
// re-arms of each kind it took. With armed, the first receive is in flight already.
func recvStream(t testing.TB, e eng, fd int, ud uint64, armed bool) (got []byte, fin completion, rearms map[string]int) {
	t.Helper()
	rearms = make(map[string]int)
	for {
		if !armed {
			require.NoError(t, e.RecvMultishot(fd, ud))
		}
		armed = false
		cs := reap(t, e, 16, finals(ud))
		mine := of(cs, ud)
		require.Len(t, cs, len(mine), "completions for other tokens: %s", describe(cs))
		for _, c := range mine[:len(mine)-1] {
			require.Positive(t, c.Res, "a non-final receive completion: %s", describe([]completion{c}))
			require.True(t, c.More)
			require.Len(t, c.Buf, int(c.Res))
		}
		got = append(got, dataOf(cs, ud)...)
		fin = finalOf(t, cs, ud)
		switch fin.Res {
		case -int32(unix.ENOBUFS), -int32(unix.ECANCELED):
			rearms[fin.Err().Error()]++
		default:
			return got, fin, rearms
		}
	}
}

// TestRecv reads into the caller's buffer on an accepted connection: armed
// before the data arrives, with data already waiting (a stream read takes
// what fits), and at end of stream (Res 0).
func TestRecv(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		a, b := enginePair(t, e, "127.0.0.1")
		buf := make([]byte, 100)
		require.NoError(t, e.Recv(b, buf, 1))
		quiet(t, e, 20*time.Millisecond)
		msg := pattern(37, 3)
		_, err := unix.Write(a, msg)
		require.NoError(t, err)
		cs := reap(t, e, 4, finals(1))
		c := finalOf(t, cs, 1)
		require.Equal(t, int32(len(msg)), c.Res)
		requireBytes(t, msg, c.Buf, "completion Buf")
		requireBytes(t, msg, buf[:len(msg)], "caller's buffer")

		// 100 bytes waiting, read 64 then the rest.
		msg = pattern(100, 4)
		_, err = unix.Write(a, msg)
		require.NoError(t, err)
		waitAcked(t, a)
		var got []byte
		for ud := uint64(2); len(got) < len(msg); ud++ {
			buf := make([]byte, 64)
			require.NoError(t, e.Recv(b, buf, ud))
			c := finalOf(t, reap(t, e, 4, finals(ud)), ud)
			require.Positive(t, c.Res)
			requireBytes(t, buf[:c.Res], c.Buf, "completion Buf against the caller's buffer")
			got = append(got, c.Buf...)
		}
		requireBytes(t, msg, got, "two reads")

		require.NoError(t, unix.Shutdown(a, unix.SHUT_WR))
		require.NoError(t, e.Recv(b, make([]byte, 8), 10))
		c = finalOf(t, reap(t, e, 4, finals(10)), 10)
		assert.Equal(t, int32(0), c.Res, "end of stream")
		assert.Empty(t, c.Buf)
		assert.Zero(t, e.InFlight())
	})
}

// sendAll sends bufs on fd with Send, resubmitting what a short completion
// left, and returns how many completions were short. A completion -EAGAIN
// (io_uring: the kernel gave up polling, nothing was written) is submitted
// again, as the engine documents.
func sendAll(t testing.TB, e eng, fd int, bufs [][]byte, ud uint64) (shorts int) {
	t.Helper()
	rest := slices.Clone(bufs)
	left := 0
	for _, b := range bufs {
		left += len(b)
	}
	for left > 0 {
		require.NoError(t, e.Send(fd, rest, ud))
		c := finalOf(t, reap(t, e, 4, finals(ud)), ud)
		if c.Res == -int32(unix.EAGAIN) {
			shorts++
			continue
		}
		require.Positive(t, c.Res, "send: %v", c.Err())
		require.LessOrEqual(t, int(c.Res), left)
		left -= int(c.Res)
		if left > 0 {
			shorts++
		}
		rest = advance(rest, int(c.Res))
	}
	return shorts
}

// advance drops the first n bytes of bufs (without touching the slices'
// contents) and any buffers left empty at the front.
func advance(bufs [][]byte, n int) [][]byte {
	for n > 0 || (len(bufs) > 0 && len(bufs[0]) == 0) {
		if len(bufs[0]) <= n {
			n -= len(bufs[0])
			bufs = bufs[1:]
			continue
		}
		bufs[0] = bufs[0][n:]
		n = 0
	}
	return bufs
}

// TestSend sends on an accepted connection several buffers (iovecs, an
// empty one among them) with one operation, then 4 MB through a small send
// buffer (set with SetSockOptInt) to a reader that starts late and reads in
// small pieces, so that sends complete short and the rest is resubmitted.
// (A small receive buffer too would make loopback TCP crawl on its persist
// timer.) Every byte arrives, in order.
func TestSend(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		b, a := enginePair(t, e, "127.0.0.1") // a, the engine's, sends to b
		bufs := [][]byte{pattern(1, 1), pattern(3, 2), {}, pattern(1000, 3), pattern(70001, 4)}
		want := bytes.Join(bufs, nil)
		var got []byte
		r := background(t, func(stop <-chan struct{}) (err error) {
			got, err = readN(b, len(want), 65536, stop)
			return err
		})
		sendAll(t, e, a, bufs, 1)
		result(t, r)
		requireBytes(t, want, got, "iovec send")

		require.NoError(t, e.SetSockOptInt(a, unix.SOL_SOCKET, unix.SO_SNDBUF, 64<<10))
		data := pattern(4<<20, 5)
		bufs = [][]byte{data[:1<<20+1], data[1<<20+1 : 1<<20+4], data[1<<20+4 : 3<<20+11], data[3<<20+11:]}
		r = background(t, func(stop <-chan struct{}) (err error) {
			select {
			case <-stop:
				return errStopped
			case <-time.After(100 * time.Millisecond): // slow to start
			}
			got, err = readN(b, len(data), 4096, stop)
			return err
		})
		shorts := sendAll(t, e, a, bufs, 2)
		result(t, r)
		requireBytes(t, data, got, "4 MB through short sends")
		t.Logf("4 MB sent with %d short completions", shorts)
		assert.Zero(t, e.InFlight())
	})
}

// TestPeerReset resets the peer of an accepted connection (SO_LINGER 0,
// close) under an armed multishot receive, after some data or none: the
// receive ends with a final completion (an error or end of stream) instead
// of hanging, and the bytes it reported are a prefix of what was sent.
func TestPeerReset(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		for i, size := range []int{0, 1000, 300000} {
			ud := uint64(1 + i)
			client, accepted := enginePairOwned(t, e, "127.0.0.1")
			server := accepted.fd
			require.NoError(t, e.RecvMultishot(server, ud))
			quiet(t, e, 10*time.Millisecond)
			sent := pattern(size, uint32(9+i))
			// The writer may need the receive to make room, so it runs
			// beside the reaping.
			w := background(t, func(stop <-chan struct{}) error {
				if err := writeChunks(client.fd, sent, oddSizes, stop); err != nil {
					return err
				}
				if err := unix.SetsockoptLinger(client.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
					return err
				}
				return client.close()
			})
			got, fin, rearms := recvStream(t, e, server, ud, true)
			result(t, w)
			assert.True(t, fin.Res == 0 || fin.Res == -int32(unix.ECONNRESET),
				"final completion after a reset: %v (want 0 or -ECONNRESET)", fin.Res)
			// Unsent bytes die with the reset (SO_LINGER 0 discards the
			// sender's queue): only a prefix is certain to arrive.
			require.LessOrEqual(t, len(got), len(sent))
			requireBytes(t, sent[:len(got)], got, "bytes before the reset")
			t.Logf("%d bytes sent, %d received before the final completion %d (re-armed after %v)", size, len(got), fin.Res, rearms)
		}
		assert.Zero(t, e.InFlight())
	})
}

// TestRecvPeerWritesManyThenCloses has a peer write many times while a
// multishot receive waits for the engine's next Wait, then go (an AF_UNIX
// close; a TCP reset on the accepted side, which the direct rows accept
// into their table) while that Wait reads the bytes. Past 128 wake-ups the
// kernel's poll stops counting them, and a hang-up landing during that
// pass, after its last attempt found the socket empty, left the receive
// stranded: armed on a dead socket, its final completion never coming (see
// the engine's hangup_linux.go). Without the hang-up watch about one round
// in 30 strands on Linux 6.18; each round must end with every byte, in
// order, and the EOF or -ECONNRESET before the deadline.
func TestRecvPeerWritesManyThenCloses(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		rounds := 400
		if testing.Short() {
			rounds = 100
		}
		const writes = 200 // each one wake-up; the kernel's bias is 128
		var phase atomic.Int32
		dst := make([]completion, 4)
		rearms := make(map[string]int)
		for i := range rounds {
			network := "unix"
			var ours, peer int
			var accepted *acceptedFD
			if i%4 == 3 {
				network = "tcp"
				c, s := enginePairOwned(t, e, "127.0.0.1")
				require.NoError(t, unix.SetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1))
				require.NoError(t, unix.SetsockoptLinger(c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}))
				c.closed = true // by the peer's goroutine
				ours, peer, accepted = s.fd, c.fd, s
			} else {
				fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				ours, peer = fds[0], fds[1]
			}
			ud := uint64(100 + i)
			require.NoError(t, e.RecvMultishot(ours, ud))
			n, err := e.Wait(0, dst) // submitted: armed, with nothing to read yet
			require.NoError(t, err)
			require.Zero(t, n, "completions before the peer wrote: %s", describe(dst[:n]))
			sent := pattern(writes, uint32(i+1))
			phase.Store(0)
			spin := (i % 50) * 20 // the hang-up lands at a different point of the pass each round
			w := background(t, func(<-chan struct{}) error {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				for k := range sent {
					if _, err := unix.Write(peer, sent[k:k+1]); err != nil && err != unix.EAGAIN {
						return err
					} else if err == unix.EAGAIN {
						return fmt.Errorf("write %d: %w", k, err)
					}
				}
				phase.Store(1)
				for phase.Load() != 2 {
				}
				for k := 0; k < spin; k++ {
					phase.Load()
				}
				return unix.Close(peer)
			})
			for phase.Load() != 1 {
			}
			phase.Store(2)
			got, fin, re := recvStream(t, e, ours, ud, true)
			result(t, w)
			addRearms(rearms, re)
			if network == "tcp" {
				// The reset discards what the peer had not sent yet.
				require.LessOrEqual(t, len(got), len(sent), "round %d (tcp)", i)
				sent = sent[:len(got)]
			}
			requireBytes(t, sent, got, fmt.Sprintf("round %d (%s): the peer's bytes", i, network))
			require.True(t, fin.Res == 0 || fin.Res == -int32(unix.ECONNRESET),
				"round %d (%s): the receive ends with EOF or a reset, not %v", i, network, fin.Err())
			switch {
			case accepted == nil:
				require.NoError(t, unix.Close(ours))
			case engine.IsDirect(ours):
				closeDirect(t, e, accepted, closeUD)
			default:
				accepted.closed = true
				require.NoError(t, unix.Close(ours))
			}
		}
		t.Logf("%d rounds; re-armed after %v", rounds, rearms)
		quiet(t, e, 10*time.Millisecond)
		assert.Zero(t, e.InFlight())
	})
}
