package loop_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// TestPausedFloodAllocates: a client streams 64 MB into an echo server with
// outbound limits and reads slowly, so the connection pauses and resumes
// thousands of times. Bytes that arrive after a pause (io_uring's multishot
// receive posts some before its cancel lands) are held for Resume; the
// buffers holding them are reused, so the whole run allocates a fraction of
// the bytes it moves. Allocating a fresh buffer per cycle made it about 3 bytes
// per byte echoed, and the heap growth that came with it kept a flooded
// server tens of MB above its start.
//
// The bundle row (RecvMultishotBundle) holds bundles to the same bound: a
// bundle may carry several buffers, but the engine caps it at four, which
// also stops the kernel's retries for the socket in that round. Uncapped, a
// bundle could take every free buffer, a pause let in more than the
// held-buffer pool keeps, and this row failed its bound.
func TestPausedFloodAllocates(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		pausedFlood(t, b, loop.RecvMultishot, 1/2.)
	})
	t.Run("uring-bundle", func(t *testing.T) {
		testutil.RequireURing(t)
		pausedFlood(t, loop.URing, loop.RecvMultishotBundle, 1/2.)
	})
}

// pausedFlood is TestPausedFloodAllocates on backend b with receive mode
// recv: the bytes allocated must stay below most times the bytes echoed.
func pausedFlood(t *testing.T, b loop.Backend, recv loop.URingRecvMode, most float64) {
	testutil.CheckLeaks(t)
	const size = 64 << 20
	g := startLoop(t, b, loop.Options{URing: loop.URingOptions{Recv: recv}})
	_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
		return &hazardFunc{
			post: func(c *conn.Conn) { assert.NoError(t, c.SetOutboundLimits(64<<10, 256<<10, 0)) },
			recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) },
		}
	})
	c := dial(t, addr)
	require.NoError(t, c.SetDeadline(time.Now().Add(60*time.Second)))
	chunk := pattern(3, 0, 64<<10) // the same 64 KiB over and over: no client allocation
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	go func() {
		for off := 0; off < size; off += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 16<<10)
	for off := 0; off < size; {
		n, err := c.Read(buf[:min(len(buf), size-off)])
		for i := range n {
			if buf[i] != chunk[(off+i)%len(chunk)] {
				t.Fatalf("byte %d differs", off+i)
			}
		}
		off += n
		require.NoError(t, err, "after %d bytes", off)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%s, %s: %.2f bytes allocated per byte echoed (%d MB)", b, recv, float64(alloc)/size, alloc>>20)
	assert.Less(t, float64(alloc), most*size, "allocated bytes for a %d MB paused flood", size>>20)
	require.NoError(t, g.stop())
}
