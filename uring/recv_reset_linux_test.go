package uring

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// resetClose closes fd with SO_LINGER 0: the peer gets an RST, not a FIN.
func resetClose(t testing.TB, fd int) {
	t.Helper()
	require.NoError(t, unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}))
	require.NoError(t, unix.Close(fd))
}

// pendingRequests returns the lines of the ring's fdinfo that list requests
// still in flight, for failure messages.
func pendingRequests(r *Ring) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", r.FD()))
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, ln := range strings.Split(string(b), "\n") {
		if strings.Contains(ln, "op=") || strings.Contains(ln, "CqOverflow") || strings.Contains(ln, "user_data") {
			out = append(out, ln)
		}
	}
	return strings.Join(out, "\n")
}

// TestRecvMultishotPartialThenReset exercises the kernel, with no loop
// above it, in the orderings it handles: a multishot receive on a TCP socket
// whose peer sends some bytes and then resets, armed before the peer acts
// (each wake-up reaches it) or submitted after (its first attempt reads the
// bytes), always ends with a final CQE, and the buffer ring being empty by
// then changes only its result (-ENOBUFS). TestRecvMultishotArmedAfterDataAndReset
// covers the ordering it does not handle.
func TestRecvMultishotPartialThenReset(t *testing.T) {
	cases := []struct {
		name    string
		bufs    uint16 // buffers in the group
		recycle bool   // give each buffer back after its CQE
		early   bool   // send and reset before the receive is submitted
		payload int
	}{
		{"Recycled", 8, true, false, 100},
		{"RecycledEarly", 8, true, true, 100},
		{"OneBufferKept", 1, false, false, 100},
		{"OneBufferKeptEarly", 1, false, true, 100},
		{"NoPayload", 8, true, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(t, 64, nil)
			ln, port := listenTCP(t)
			const iters = 1000
			buf := make([]CQE, 16)
			for i := range iters {
				br, err := r.NewBufRing(1, max(tc.bufs, 1), 4096)
				require.NoError(t, err)
				cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				require.NoError(t, unix.Connect(cfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}))
				sfd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
				require.NoError(t, err)
				payload := make([]byte, tc.payload)
				peer := func() {
					if len(payload) > 0 {
						_, err := unix.Write(cfd, payload)
						require.NoError(t, err)
					}
					resetClose(t, cfd)
				}
				if tc.early {
					peer()
				}
				s := sqe(t, r)
				s.PrepRecvMultishot(sfd, 0)
				s.SetBufGroup(1)
				s.SetUserData(7)
				_, err = r.Submit()
				require.NoError(t, err)
				if !tc.early {
					peer()
				}
				var got []CQE
				deadline := time.Now().Add(3 * time.Second)
				final := false
				for !final {
					if time.Now().After(deadline) {
						t.Fatalf("iteration %d: no final CQE after %v; CQEs %+v\n%s", i, 3*time.Second, got, pendingRequests(r))
					}
					_, err := r.SubmitAndWait(1, 50*time.Millisecond)
					require.NoError(t, err)
					n := r.PeekCQEs(buf)
					for _, c := range buf[:n] {
						got = append(got, c)
						if id, ok := c.BufferID(); ok && tc.recycle {
							br.Recycle(id)
						}
						if !c.More() {
							final = true
						}
					}
				}
				unix.Close(sfd)
				require.NoError(t, br.Close())
			}
		})
	}
}

// TestRecvMultishotArmedAfterDataAndReset pins one of the kernel races
// behind the engine's hang-up watch (uring/engine/hangup_linux.go) and the
// recovery the loop relies on. The peer sends some bytes and then goes (a
// TCP reset, or an AF_UNIX close) before a multishot receive is armed, and
// the receive is armed poll-first (IORING_RECVSEND_POLL_FIRST), so the poll
// arming finds bytes and hang-up together: the same state as when both land
// between the first attempt of an ordinary receive and its arming, a window
// of a few microseconds that the loop's churn hit about once per 100,000
// connections.
//
// Linux 6.18.44 then posts the bytes with F_MORE and never a final CQE: the
// receive stays armed on a dead socket. The test logs which behaviour this
// kernel has, and requires what the workaround needs either way: a poll of
// the watch's events reports the peer gone, cancelling the receive posts
// its final CQE, and a new receive reports the end (-ECONNRESET, or 0 for
// the AF_UNIX EOF).
func TestRecvMultishotArmedAfterDataAndReset(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			r := newRing(t, 64, nil)
			br, err := r.NewBufRing(1, 8, 4096)
			require.NoError(t, err)
			defer br.Close()
			// cfd is closed by the test itself, so not on cleanup (its
			// number could be someone else's by then).
			var cfd, sfd int
			if network == "tcp" {
				ln, port := listenTCP(t)
				cfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				require.NoError(t, unix.Connect(cfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}))
				sfd, _, err = unix.Accept4(ln, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
				require.NoError(t, err)
			} else {
				fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				cfd, sfd = fds[0], fds[1]
				require.NoError(t, unix.SetNonblock(sfd, true))
			}
			closeOnCleanup(t, sfd)
			payload := []byte("GET /index.html HTTP/1.1\r\nHost: loc")
			_, err = unix.Write(cfd, payload)
			require.NoError(t, err)
			if network == "tcp" {
				require.NoError(t, unix.SetsockoptLinger(cfd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}))
			}
			require.NoError(t, unix.Close(cfd))
			wantEnd := -int32(unix.ECONNRESET)
			if network == "unix" {
				wantEnd = 0
			}

			const recvTok, cancelTok, againTok = 1, 2, 3
			s := sqe(t, r)
			s.PrepRecvMultishot(sfd, 0)
			s.SetIOPrio(RecvsendPollFirst)
			s.SetBufGroup(br.Group())
			s.SetUserData(recvTok)
			first := reap(t, r, 1)[0]
			require.Equal(t, uint64(recvTok), first.UserData)
			require.Equal(t, int32(len(payload)), first.Res, "the bytes before the reset come first")
			id, ok := first.BufferID()
			require.True(t, ok)
			require.Equal(t, string(payload), string(br.Buffer(id, int(first.Res))))
			br.Recycle(id)
			if !first.More() {
				t.Skipf("the receive ended at its first CQE (flags %#x): not the case under test", first.Flags)
			}

			// Does the kernel end the receive by itself?
			buf := make([]CQE, 8)
			var final *CQE
			deadline := time.Now().Add(200 * time.Millisecond)
			for final == nil && time.Now().Before(deadline) {
				_, err := r.SubmitAndWait(1, 20*time.Millisecond)
				require.NoError(t, err)
				for _, c := range buf[:r.PeekCQEs(buf)] {
					if !c.More() {
						final = &c
					}
				}
			}
			if final != nil {
				t.Logf("this kernel ends the receive by itself (res %d): the race is fixed here", final.Res)
				require.Equal(t, wantEnd, final.Res)
				return
			}
			t.Logf("this kernel left the receive armed after the peer went (fdinfo: %s)", strings.TrimSpace(pendingRequests(r)))

			// What the workaround relies on.
			pfd := []unix.PollFd{{Fd: int32(sfd), Events: unix.POLLRDHUP}}
			n, err := unix.Poll(pfd, 0)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			require.NotZero(t, pfd[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLRDHUP), "poll(2) sees the peer gone: revents %#x", pfd[0].Revents)

			s = sqe(t, r)
			s.PrepCancel(recvTok, 0)
			s.SetUserData(cancelTok)
			got := byUserData(reap(t, r, 2))
			require.Len(t, got[recvTok], 1)
			require.Equal(t, -int32(unix.ECANCELED), got[recvTok][0].Res, "the cancel ends the stranded receive")
			require.False(t, got[recvTok][0].More())
			require.Equal(t, int32(0), got[cancelTok][0].Res)

			s = sqe(t, r)
			s.PrepRecvMultishot(sfd, 0)
			s.SetBufGroup(br.Group())
			s.SetUserData(againTok)
			again := reap(t, r, 1)[0]
			require.False(t, again.More(), "a new receive ends at once: %+v", again)
			require.Equal(t, wantEnd, again.Res, "a new receive reports the end")
		})
	}
}
