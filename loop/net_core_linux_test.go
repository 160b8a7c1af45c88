package loop_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// coreEcho echoes what it receives.
type coreEcho struct{ conn.Base }

func (coreEcho) ReceiveData(c *conn.Conn, data []byte) { _ = c.SendData(data) }

// coreClient sends payload on connect, collects the echo, and records its
// callbacks.
type coreClient struct {
	mu        sync.Mutex
	payload   []byte
	got       []byte
	completed int
	unbinds   int
	reason    error
	done      chan struct{}
	want      int
}

func (h *coreClient) PostInit(c *conn.Conn) {
	// Queued until the connection is established.
	_ = c.SendData(h.payload)
}

func (h *coreClient) ConnectionCompleted(*conn.Conn) {
	h.mu.Lock()
	h.completed++
	h.mu.Unlock()
}

func (h *coreClient) ReceiveData(c *conn.Conn, data []byte) {
	h.mu.Lock()
	h.got = append(h.got, data...)
	n := len(h.got)
	h.mu.Unlock()
	if n == h.want {
		_ = c.Close()
	}
}

func (h *coreClient) Unbind(_ *conn.Conn, reason error) {
	h.mu.Lock()
	h.unbinds++
	h.reason = reason
	h.mu.Unlock()
	close(h.done) // a second Unbind panics here
}

// echoOnce runs one echo on a loop made with opts (its Backend included): a
// client on the same loop sends size random bytes to an echo server at addr
// and compares what comes back, checking one ConnectionCompleted and one
// Unbind(nil), nothing in flight after Stop. It returns the zero-copy sends
// the loop submitted and its receives that filled several buffers.
func echoOnce(t *testing.T, opts loop.Options, addr string, size int) (zcSends, recvBundles int) {
	t.Helper()
	payload := make([]byte, size)
	r := rand.New(rand.NewPCG(5, uint64(size)))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	h := &coreClient{payload: payload, want: len(payload), done: make(chan struct{})}
	var serverUnbinds sync.WaitGroup
	opts.DebugPoisonReceive = true
	l, err := loop.New(opts)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		errc <- l.Run(func(l *loop.Loop) {
			srv, err := l.StartServer(addr, func() conn.Handler { serverUnbinds.Add(1); return &coreServer{wg: &serverUnbinds} })
			if !assert.NoError(t, err) {
				l.Stop()
				return
			}
			target := srv.Addr().String()
			if srv.Addr().Network() == "unix" {
				target = "unix:" + target
			}
			_, err = l.Connect(target, h)
			assert.NoError(t, err)
			go func() {
				select {
				case <-h.done:
				case <-time.After(30 * time.Second):
				}
				l.NextTick(func() {
					zcSends = l.ZeroCopySends()
					recvBundles = l.RecvBundles()
					l.Stop()
				})
			}()
		})
	}()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		l.Stop()
		t.Fatal("timeout")
	}
	assert.Zero(t, l.InFlightOps())
	h.mu.Lock()
	defer h.mu.Unlock()
	assert.Equal(t, 1, h.completed)
	assert.Equal(t, 1, h.unbinds)
	assert.NoError(t, h.reason)
	assert.True(t, bytes.Equal(payload, h.got), "echo differs: got %d of %d bytes", len(h.got), len(payload))
	serverUnbinds.Wait()
	return zcSends, recvBundles
}

func TestCoreEcho1MB(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		for _, tc := range []struct {
			name, addr string
			opts       loop.Options
		}{
			{"tcp", "127.0.0.1:0", loop.Options{}},
			{"unix", "unix:" + t.TempDir() + "/s.sock", loop.Options{}},
			{"abstract", "unix:@ringmachine-core-test", loop.Options{}},
			// Two 4 KiB buffers for the whole loop: multishot receives end
			// with ENOBUFS over and over and must resume without loss.
			{"ENOBUFS", "127.0.0.1:0", loop.Options{RecvBuffers: 2, RecvBufferSize: 4096}},
		} {
			addr := tc.addr
			t.Run(tc.name, func(t *testing.T) {
				testutil.CheckLeaks(t)
				opts := tc.opts
				opts.Backend = b
				echoOnce(t, opts, addr, 1<<20)
			})
		}
	})
}

// coreServer echoes and counts its one Unbind.
type coreServer struct {
	coreEcho
	wg    *sync.WaitGroup
	count int
}

func (s *coreServer) Unbind(*conn.Conn, error) {
	s.count++
	if s.count == 1 {
		s.wg.Done()
	} else {
		panic("second Unbind")
	}
}

func TestCoreConnectRefused(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		// A port nothing listens on: bind one and close it.
		var reason error
		var completed, unbinds int
		h := &funcHandler{
			completed: func() { completed++ },
			unbind: func(err error) {
				unbinds++
				reason = err
			},
		}
		l, err := loop.New(loop.Options{Backend: b})
		require.NoError(t, err)
		require.NoError(t, l.Run(func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return coreEcho{} })
			require.NoError(t, err)
			addr := srv.Addr().String()
			require.NoError(t, srv.Stop())
			_, err = l.Connect(addr, h)
			require.NoError(t, err)
			l.AddTimer(500*time.Millisecond, l.Stop)
		}))
		assert.Zero(t, completed)
		assert.Equal(t, 1, unbinds)
		assert.ErrorIs(t, reason, syscall.ECONNREFUSED)
		var op *conn.OpError
		assert.ErrorAs(t, reason, &op)
		assert.Zero(t, l.InFlightOps())
	})
}

type funcHandler struct {
	conn.Base
	completed func()
	unbind    func(error)
	data      func(*conn.Conn, []byte)
}

func (h *funcHandler) ConnectionCompleted(*conn.Conn) {
	if h.completed != nil {
		h.completed()
	}
}

func (h *funcHandler) ReceiveData(c *conn.Conn, b []byte) {
	if h.data != nil {
		h.data(c, b)
	}
}

func (h *funcHandler) Unbind(_ *conn.Conn, err error) {
	if h.unbind != nil {
		h.unbind(err)
	}
}

// TestCoreStopWithOpenConnections: Stop with idle connections, a client
// blocked in connect-complete state and queued output unbinds everyone
// once and leaves no fd, goroutine or operation behind.
func TestCoreStopWithOpenConnections(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		var unbinds, serverUnbinds int
		var reasons []error
		l, err := loop.New(loop.Options{Backend: b, StopTimeout: 200 * time.Millisecond})
		require.NoError(t, err)
		require.NoError(t, l.Run(func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
				return &funcHandler{unbind: func(error) { serverUnbinds++ }}
			})
			require.NoError(t, err)
			for range 10 {
				_, err := l.Connect(srv.Addr().String(), &funcHandler{
					completed: func() {},
					unbind: func(err error) {
						unbinds++
						reasons = append(reasons, err)
					},
				})
				require.NoError(t, err)
			}
			l.AddTimer(100*time.Millisecond, func() {
				assert.Equal(t, 20, l.ConnectionCount())
				l.Stop()
			})
		}))
		assert.Equal(t, 10, unbinds)
		assert.Equal(t, 10, serverUnbinds)
		for _, r := range reasons {
			if r != nil {
				assert.ErrorIs(t, r, io.EOF) // the server side may close first
			}
		}
		assert.Zero(t, l.InFlightOps())
		assert.Zero(t, l.ConnectionCount())
	})
}

// TestCoreSendFileRange sends file ranges larger than a splice pipe, from an
// unaligned offset, to a reader that starts late (so the socket takes only
// part of a pipe at a time), and a range whose file shrinks before it is
// sent (a short file -> pipe splice): the bytes must match on both backends.
func TestCoreSendFileRange(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		const size = 5<<20 + 777
		content := randomBytes(t, size)
		dir := t.TempDir()
		path := filepath.Join(dir, "f")
		require.NoError(t, os.WriteFile(path, content, 0o600))
		shrink := filepath.Join(dir, "shrink")
		require.NoError(t, os.WriteFile(shrink, content, 0o600))
		const shrunk = 1<<20 + 5000

		var want []byte
		want = append(want, content[4097:4097+3<<20+12345]...)
		want = append(want, content[1<<20+1:]...)
		want = append(want, content[100:shrunk]...)

		g := startLoop(t, b, loop.Options{})
		ev := make(chan event, 4096)
		_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
			h := newHandler(t)
			h.ev = ev
			h.postInit = func(c *conn.Conn) {
				assert.NoError(t, c.SendFileRange(path, 4097, 3<<20+12345))
				assert.NoError(t, c.SendFileRange(path, 1<<20+1, -1))
				assert.NoError(t, c.SendFileRange(shrink, 100, size))
				// Queued from the file's size now, sent after this returns.
				assert.NoError(t, os.Truncate(shrink, shrunk))
				assert.NoError(t, c.CloseAfterWriting())
			}
			return h
		})
		c := dial(t, addr)
		time.Sleep(50 * time.Millisecond) // let the socket buffers fill up
		got, err := io.ReadAll(c)
		require.NoError(t, err)
		require.Equal(t, len(want), len(got))
		assert.True(t, bytes.Equal(want, got), "file bytes")
		expectKind(t, ev, "post_init")
		assert.NoError(t, expectKind(t, ev, "unbind").err)
		require.NoError(t, g.stop())
	})
}

// TestCoreConnectTimeoutMoved moves the connect timeout after the connect
// is submitted, both later (io_uring: the LINK_TIMEOUT is updated, it must
// not fire at the old time) and earlier.
func TestCoreConnectTimeoutMoved(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		for _, tc := range []struct {
			name        string
			first, then time.Duration
		}{
			{"Later", 50 * time.Millisecond, 400 * time.Millisecond},
			{"Earlier", 5 * time.Second, 150 * time.Millisecond},
		} {
			t.Run(tc.name, func(t *testing.T) {
				addr := blackHole(t)
				g := startLoop(t, b, loop.Options{})
				h := newHandler(t)
				h.postInit = func(c *conn.Conn) { assert.NoError(t, c.SetConnectTimeout(tc.first)) }
				var c *conn.Conn
				var err error
				start := time.Now()
				g.do(func(l *loop.Loop) { c, err = l.Connect(addr, h) })
				require.NoError(t, err)
				time.Sleep(20 * time.Millisecond) // the connect is in the kernel now
				g.do(func(*loop.Loop) { assert.NoError(t, c.SetConnectTimeout(tc.then)) })
				expectKind(t, h.ev, "post_init")
				u := expectKind(t, h.ev, "unbind")
				assert.ErrorIs(t, u.err, conn.ErrConnectTimeout)
				took := u.at.Sub(start)
				assert.GreaterOrEqual(t, took, tc.then)
				assert.Less(t, took, tc.then+2*time.Second)
				require.NoError(t, g.stop())
			})
		}
	})
}

// TestCoreStopReapsUnownedCloses: a close no connection owns, submitted
// once every socket is gone (as for a hand-off or accept met while
// stopping), is reaped before the backend closes: nothing is left in
// flight and the fd is closed.
func TestCoreStopReapsUnownedCloses(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		l, err := loop.New(loop.Options{Backend: b})
		require.NoError(t, err)
		var p [2]int
		require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK))
		defer unix.Close(p[0])
		require.NoError(t, l.Run(func(l *loop.Loop) {
			require.NoError(t, l.AddShutdownHook(func() {
				assert.NoError(t, l.CloseFDUnowned(p[1]))
			}))
			l.Stop()
		}))
		assert.Zero(t, l.InFlightOps(), "operations left when the backend closed")
		// The write end is closed: the read end sees EOF (EAGAIN if not).
		n, err := unix.Read(p[0], make([]byte, 1))
		assert.NoError(t, err)
		assert.Zero(t, n)
	})
}

// TestSendOneChunkPerSend echoes 1 MB over TCP and a Unix socket, and a
// 10 MB stream, on both engines with every send capped at one outbound
// chunk (the hook BenchmarkURingFeatures/vectored measures against), so a
// reply always goes out over many sends, each continuing where the last
// ended; every byte is checked.
func TestSendOneChunkPerSend(t *testing.T) {
	defer loop.SetTestHookSendBufs(1)()
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		for _, tc := range []struct {
			name, addr string
			size       int
		}{
			{"tcp-1MB", "127.0.0.1:0", 1 << 20},
			{"unix-1MB", "unix:" + t.TempDir() + "/s.sock", 1 << 20},
			{"tcp-10MB", "127.0.0.1:0", 10 << 20},
		} {
			t.Run(tc.name, func(t *testing.T) {
				testutil.CheckLeaks(t)
				echoOnce(t, loop.Options{Backend: b}, tc.addr, tc.size)
			})
		}
	})
}
