package loop_test

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// TestSendRetriesEAGAIN: the client streams 16 MB into an echo server and
// shuts down its write side before it reads a byte, so the server's sends
// wait for room while the socket keeps being woken. On io_uring that uses up
// the kernel's poll retries for the send, which then completes with -EAGAIN:
// a retry, not a failure. Every byte must come back, then the EOF.
func TestSendRetriesEAGAIN(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		const size = 16 << 20
		g := startLoop(t, b, loop.Options{})
		var reason atomic.Value
		_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
			return &hazardFunc{
				recv:   func(c *conn.Conn, data []byte) { _ = c.SendData(data) },
				unbind: func(c *conn.Conn, r error) { reason.Store(fmt.Sprint(r)) },
			}
		})
		c := dial(t, addr)
		require.NoError(t, c.SetDeadline(time.Now().Add(60*time.Second)))
		for off := 0; off < size; off += 64 << 10 {
			_, err := c.Write(pattern(7, off, 64<<10))
			require.NoError(t, err, "write at %d", off)
		}
		require.NoError(t, c.(*net.TCPConn).CloseWrite())
		buf := make([]byte, 64<<10)
		off := 0
		for {
			n, err := c.Read(buf)
			if n > 0 {
				require.Equal(t, pattern(7, off, n), buf[:n], "bytes %d..%d", off, off+n)
				off += n
			}
			if err != nil {
				break
			}
		}
		assert.Equal(t, size, off, "echoed bytes (server's Unbind: %v)", reason.Load())
		require.Eventually(t, func() bool { return reason.Load() != nil }, wait, time.Millisecond)
		assert.Equal(t, "EOF", reason.Load())
		require.NoError(t, g.stop())
	})
}
