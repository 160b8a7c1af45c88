package loop_test

import (
	"errors"
	"io"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// testPeerStopsReading: a Unix-socket peer that writes its output and
// closes without reading what the loop sends it. The loop's send fails
// with EPIPE while the peer's last bytes may still be unread in the
// socket: every one of them must reach ReceiveData before Unbind. Twice:
// 588,895 bytes (more than the socket holds, so the loop is still reading
// when the peer leaves), and 100,000 bytes with outbound limits, where the
// loop's queue above the high watermark had paused reading when the send
// failed.
func testPeerStopsReading(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	for _, tc := range []struct {
		name   string
		lines  int
		limits bool
	}{{"long output", 100000, false}, {"paused by the high watermark", 18000, true}} {
		want := seqOutput(tc.lines)
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		h := newChildHandler(t)
		h.onInit = func(c *conn.Conn) {
			if tc.limits {
				require.NoError(t, c.SetOutboundLimits(64<<10, 256<<10, 0))
			}
			require.NoError(t, c.SendData(make([]byte, 8<<20)))
		}
		g.do(func(l *loop.Loop) {
			_, err := l.Attach(fds[0], h)
			require.NoError(t, err)
		})
		// The peer: its output, then a close with the loop's bytes unread.
		// A blocking write of more than the socket holds returns short
		// when a signal (the Go runtime's preemption) arrives after part
		// of it went through: write the rest.
		for p := want; len(p) > 0; {
			n, err := unix.Write(fds[1], p)
			if err == unix.EINTR {
				continue
			}
			require.NoError(t, err, tc.name)
			p = p[n:]
		}
		require.NoError(t, unix.Close(fds[1]))
		e := childDone(t, h)
		testutil.RequireSameBytes(t, want, e.out, tc.name)
		if e.reason != io.EOF {
			var oe *conn.OpError
			require.ErrorAs(t, e.reason, &oe, "%s: reason %v", tc.name, e.reason)
			assert.True(t, errors.Is(oe, syscall.EPIPE) || errors.Is(oe, syscall.ECONNRESET), "%s: reason %v", tc.name, e.reason)
		}
	}
}
