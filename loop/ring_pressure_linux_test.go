package loop_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// pattern returns n bytes of connection id's stream, starting at off: any
// loss, duplication or reordering shows as a mismatch.
func pattern(id, off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		x := uint32(off+i)*2654435761 + uint32(id)*40503
		b[i] = byte(x >> 24)
	}
	return b
}

// pumpEcho streams size bytes per connection over conns connections through
// the echo server at addr, all at once, and checks every byte that comes
// back.
func pumpEcho(t *testing.T, addr string, conns, size int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 2*conns)
	for id := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(60*time.Second)))
		wg.Add(2)
		go func() {
			defer wg.Done()
			for off := 0; off < size; off += 8192 {
				if _, err := c.Write(pattern(id, off, min(8192, size-off))); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer c.Close()
			buf := make([]byte, 8192)
			for off := 0; off < size; {
				n, err := c.Read(buf[:min(len(buf), size-off)])
				if n > 0 {
					if want := pattern(id, off, n); string(want) != string(buf[:n]) {
						errs <- fmt.Errorf("conn %d: bytes %d..%d differ", id, off, off+n)
						return
					}
					off += n
				}
				if err != nil {
					errs <- fmt.Errorf("conn %d at %d: %w", id, off, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHazardTinyRings runs an echo server whose io_uring has a 4-entry SQ
// and 16-entry CQ and whose receives share 2 buffers (epoll: a 2-buffer
// arena) with 32 connections streaming at once: submissions find the SQ
// full, completions overflow the CQ, receives end with ENOBUFS — and every
// byte still comes back, in order.
func TestHazardTinyRings(t *testing.T) {
	defer loop.SetTestRingEntries(4)()
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		opts := loop.Options{Backend: b, RecvBuffers: 2, RecvBufferSize: 4096, URing: loop.URingOptions{RecvBuffersMax: 2}}
		_, err := runLoop(t, b, opts, 60*time.Second, func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
				return &hazardFunc{recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
			})
			require.NoError(t, err)
			addr := srv.Addr().String()
			go func() {
				defer func() { _ = l.NextTick(l.Stop) }()
				pumpEcho(t, addr, 32, 256<<10)
			}()
		})
		require.NoError(t, err)
	})
}

// TestRecvBuffersGrow: receives that run out of buffers make the io_uring
// buffer ring grow, up to RecvBuffersMax, without losing data.
func TestRecvBuffersGrow(t *testing.T) {
	testutil.RequireURing(t)
	testutil.CheckLeaks(t)
	provided := 0
	_, err := runLoop(t, loop.URing, loop.Options{RecvBuffers: 2, RecvBufferSize: 4096, URing: loop.URingOptions{RecvBuffersMax: 64}}, 60*time.Second, func(l *loop.Loop) {
		assert.Equal(t, 2, l.RecvBuffersProvided())
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
			return &hazardFunc{recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
		})
		require.NoError(t, err)
		addr := srv.Addr().String()
		_ = l.AddShutdownHook(func() { provided = l.RecvBuffersProvided() })
		go func() {
			defer func() { _ = l.NextTick(l.Stop) }()
			pumpEcho(t, addr, 32, 256<<10)
		}()
	})
	require.NoError(t, err)
	assert.Greater(t, provided, 2, "the ring grew")
	assert.LessOrEqual(t, provided, 64, "bounded by RecvBuffersMax")
}

// TestNoCrossTalk echoes a stream tagged with its connection's id (pattern) over
// many connections at once under every combination of submission-queue size,
// receive-buffer count (fixed, or growing) and buffer size: a byte that reaches
// the wrong connection, or comes back twice, late or not at all, fails it. A
// buffer handed out while still in use (the buffer-ring tail hazard) shows here
// as one connection's bytes on another. On io_uring the 4-entry and default SQs
// also run with receive bundles (RecvMultishotBundle), whose completions carry
// several buffers named by their ring positions.
func TestNoCrossTalk(t *testing.T) {
	type bufs struct{ n, max int }
	for _, sq := range []int{4, 16, 0} {
		for _, bb := range []bufs{{2, 2}, {8, 8}, {4, 64}} {
			for _, size := range []int{512, 4096} {
				for _, bundle := range []bool{false, true} {
					if bundle && sq == 16 {
						continue
					}
					name := fmt.Sprintf("sq%d/bufs%d-%d/size%d", sq, bb.n, bb.max, size)
					if bundle {
						name += "/bundle"
					}
					t.Run(name, func(t *testing.T) {
						noCrossTalk(t, sq, bb.n, bb.max, size, bundle)
					})
				}
			}
		}
	}
}

// noCrossTalk is one case of TestNoCrossTalk.
func noCrossTalk(t *testing.T, sq, bufs, bufsMax, size int, bundle bool) {
	if sq != 0 {
		defer loop.SetTestRingEntries(sq)()
	}
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		if b == loop.Epoll && (sq != 0 || bundle) {
			t.Skip("the same as sq0 on epoll: the SQ size and bundles are io_uring's")
		}
		testutil.CheckLeaks(t)
		opts := loop.Options{Backend: b, RecvBuffers: bufs, RecvBufferSize: size, URing: loop.URingOptions{RecvBuffersMax: bufsMax}}
		if bundle {
			opts.URing.Recv = loop.RecvMultishotBundle
		}
		bundles := 0
		_, err := runLoop(t, b, opts, 60*time.Second, func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
				return &hazardFunc{recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
			})
			require.NoError(t, err)
			_ = l.AddShutdownHook(func() { bundles = l.RecvBundles() })
			addr := srv.Addr().String()
			go func() {
				defer func() { _ = l.NextTick(l.Stop) }()
				pumpEcho(t, addr, 24, 96<<10)
			}()
		})
		require.NoError(t, err)
		if bundle || loop.RecvBundleSuite() && b == loop.URing {
			assert.Positive(t, bundles, "receives that filled several buffers")
		} else {
			assert.Zero(t, bundles)
		}
	})
}
