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
// above it: a multishot receive on a TCP socket whose peer sends some bytes
// and then resets must always end with a final CQE (no IORING_CQE_F_MORE).
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
			const iters = 2000
			buf := make([]CQE, 16)
			for i := range iters {
				br, err := r.NewBufRing(1, max(tc.bufs, 1), 4096)
				require.NoError(t, err)
				ln, port := listenTCP(t)
				cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				require.NoError(t, unix.Connect(cfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}))
				sfd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
				require.NoError(t, err)
				unix.Close(ln)
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
