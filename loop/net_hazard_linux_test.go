package loop_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
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

// Hazard tests (STYLE §9): conditions a reactor meets under load or abuse
// that ordinary traffic does not produce.

// hazardFunc is a Handler assembled from funcs.
type hazardFunc struct {
	conn.Base
	post   func(c *conn.Conn)
	done   func(c *conn.Conn)
	recv   func(c *conn.Conn, data []byte)
	unbind func(c *conn.Conn, reason error)
}

func (h *hazardFunc) PostInit(c *conn.Conn) {
	if h.post != nil {
		h.post(c)
	}
}

func (h *hazardFunc) ConnectionCompleted(c *conn.Conn) {
	if h.done != nil {
		h.done(c)
	}
}

func (h *hazardFunc) ReceiveData(c *conn.Conn, data []byte) {
	if h.recv != nil {
		h.recv(c, data)
	}
}

func (h *hazardFunc) Unbind(c *conn.Conn, reason error) {
	if h.unbind != nil {
		h.unbind(c, reason)
	}
}

// TestHazardAcceptEMFILE runs a server out of file descriptors: accept
// fails with EMFILE, the failure is reported, the server keeps running, and
// once descriptors are free again the queued connections are accepted.
func TestHazardAcceptEMFILE(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {

		testutil.CheckLeaks(t)
		const clients = 3
		var reported []error
		accepted := 0
		var hog []int
		freeHog := func() {
			for _, fd := range hog {
				unix.Close(fd)
			}
			hog = nil
		}
		defer freeHog()
		// Process fds: direct descriptors take none (TestDirectTableFull
		// fills their table instead).
		_, err := runLoop(t, b, loop.Options{ErrorHandler: func(err error) { reported = append(reported, err) }, URing: loop.URingOptions{ProcessFDs: true}}, 20*time.Second, func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
				return &hazardFunc{post: func(*conn.Conn) {
					if accepted++; accepted == clients {
						l.Stop()
					}
				}, recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
			})
			require.NoError(t, err)
			sa := srv.Addr().(*net.TCPAddr)
			// Client sockets first: connect(2) needs no new descriptor.
			fds := make([]int, clients)
			for i := range fds {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				fds[i] = fd
			}
			_ = l.AddShutdownHook(func() {
				for _, fd := range fds {
					unix.Close(fd)
				}
			})
			// Exhaust the descriptor table.
			for {
				fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					require.ErrorIs(t, err, unix.EMFILE)
					break
				}
				hog = append(hog, fd)
				require.Less(t, len(hog), 1_000_000)
			}
			for _, fd := range fds {
				// Completes from the listen backlog; the server's accept
				// then fails with EMFILE.
				require.NoError(t, unix.Connect(fd, &unix.SockaddrInet4{Port: sa.Port, Addr: [4]byte{127, 0, 0, 1}}))
			}
			// Give the server time to hit EMFILE, then free descriptors.
			_, err = l.AddTimer(150*time.Millisecond, func() {
				assert.Zero(t, accepted, "nothing can be accepted without descriptors")
				freeHog()
			})
			require.NoError(t, err)
		})
		require.NoError(t, err)
		assert.Equal(t, clients, accepted, "queued connections are accepted once descriptors are free")
		require.NotEmpty(t, reported, "the accept failure is reported")
		var op *conn.OpError
		require.ErrorAs(t, reported[0], &op)
		assert.Equal(t, "accept", op.Op)
		assert.True(t, errors.Is(reported[0], syscall.EMFILE) || errors.Is(reported[0], syscall.ENFILE), "%v", reported[0])
	})
}

// TestHazardPeerResetMidSend: the peer resets while the server still has
// megabytes queued. The server's connection is unbound once, with the reset
// (or EPIPE), and nothing leaks.
func TestHazardPeerResetMidSend(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		var reasons []error
		big := make([]byte, 8<<20)
		_, err := runLoop(t, b, loop.Options{}, 20*time.Second, func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
				return &hazardFunc{
					post: func(c *conn.Conn) { assert.NoError(t, c.SendData(big)) },
					unbind: func(c *conn.Conn, reason error) {
						reasons = append(reasons, reason)
						l.Stop()
					},
				}
			})
			require.NoError(t, err)
			addr := srv.Addr().String()
			go func() {
				c, err := net.Dial("tcp", addr)
				if !assert.NoError(t, err) {
					return
				}
				buf := make([]byte, 4096)
				_, _ = c.Read(buf) // the server is sending
				_ = c.(*net.TCPConn).SetLinger(0)
				_ = c.Close() // RST with megabytes still queued
			}()
		})
		require.NoError(t, err)
		require.Len(t, reasons, 1)
		assert.True(t, errors.Is(reasons[0], syscall.ECONNRESET) || errors.Is(reasons[0], syscall.EPIPE), "reason %v", reasons[0])
	})
}

// TestHazardCloseWhileReceiving: the server closes a connection in the
// middle of a stream. No ReceiveData runs after Close, and Unbind(nil) runs
// once.
func TestHazardCloseWhileReceiving(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		var afterClose, unbinds int
		var reason error
		stopWriter := make(chan struct{})
		writerDone := make(chan struct{})
		_, err := runLoop(t, b, loop.Options{}, 20*time.Second, func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
				closed := false
				return &hazardFunc{
					recv: func(c *conn.Conn, data []byte) {
						if closed {
							afterClose++
							return
						}
						closed = true
						assert.NoError(t, c.Close())
						assert.ErrorIs(t, c.SendData([]byte("x")), conn.ErrClosed)
					},
					unbind: func(c *conn.Conn, r error) {
						unbinds++
						reason = r
						_, _ = l.AddTimer(50*time.Millisecond, l.Stop)
					},
				}
			})
			require.NoError(t, err)
			addr := srv.Addr().String()
			go func() {
				defer close(writerDone)
				c, err := net.Dial("tcp", addr)
				if !assert.NoError(t, err) {
					return
				}
				defer c.Close()
				chunk := make([]byte, 64<<10)
				for {
					select {
					case <-stopWriter:
						return
					default:
					}
					if _, err := c.Write(chunk); err != nil {
						return // reset by the closed server
					}
				}
			}()
		})
		close(stopWriter)
		<-writerDone
		require.NoError(t, err)
		assert.Zero(t, afterClose, "no ReceiveData after Close")
		assert.Equal(t, 1, unbinds)
		assert.NoError(t, reason)
	})
}

// TestHazardSQFull sends on 400 connections from one callback: far more
// operations than the io_uring submission queue holds (64 here), so the
// backend must submit and retry; every byte still arrives.
func TestHazardSQFull(t *testing.T) {
	defer loop.SetTestRingEntries(64)()
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		const n = 400
		var conns []*conn.Conn
		echoed := 0
		_, err := runLoop(t, b, loop.Options{}, 60*time.Second, func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
				return &hazardFunc{recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
			})
			require.NoError(t, err)
			completed := 0
			got := map[*conn.Conn]int{}
			for range n {
				c, err := l.Connect(srv.Addr().String(), &hazardFunc{
					done: func(*conn.Conn) {
						if completed++; completed < n {
							return
						}
						// All connected: one send each, in one callback.
						for _, c := range conns {
							require.NoError(t, c.SendData([]byte("0123456789")))
						}
					},
					recv: func(c *conn.Conn, data []byte) {
						got[c] += len(data)
						if got[c] == 10 {
							if echoed++; echoed == n {
								l.Stop()
							}
						}
					},
				})
				require.NoError(t, err)
				conns = append(conns, c)
			}
		})
		require.NoError(t, err)
		assert.Equal(t, n, echoed)
	})
}

// TestHazardSlotReuse churns through connections so that slots and fd
// numbers are reused while completions of the old ones may still be in
// flight: every client must get exactly its own bytes back.
func TestHazardSlotReuse(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		const rounds = 300
		var bad atomic.Int32
		_, err := runLoop(t, b, loop.Options{}, 60*time.Second, func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
				return &hazardFunc{recv: func(c *conn.Conn, data []byte) {
					_ = c.SendData(data)
					_ = c.CloseAfterWriting()
				}}
			})
			require.NoError(t, err)
			i := 0
			var next func()
			next = func() {
				if i == rounds {
					l.Stop()
					return
				}
				msg := []byte{byte(i), byte(i >> 8), 'x'}
				i++
				var got []byte
				_, err := l.Connect(srv.Addr().String(), &hazardFunc{
					post: func(c *conn.Conn) { _ = c.SendData(msg) },
					recv: func(c *conn.Conn, data []byte) {
						got = append(got, data...)
						// Close while the server's close may still be in flight.
						_ = c.Close()
					},
					unbind: func(c *conn.Conn, reason error) {
						if string(got) != string(msg) {
							bad.Add(1)
						}
						_ = l.NextTick(next)
					},
				})
				assert.NoError(t, err)
			}
			next()
		})
		require.NoError(t, err)
		assert.Zero(t, bad.Load(), "a connection received another's bytes or lost its own")
	})
}

// TestHazardStopWithOpsInFlight stops the loop while connections are mid
// stream in both directions and a connect is pending; everything is reaped.
func TestHazardStopWithOpsInFlight(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		unbinds := 0
		f, err := os.CreateTemp(t.TempDir(), "big")
		require.NoError(t, err)
		require.NoError(t, f.Truncate(32<<20))
		require.NoError(t, f.Close())
		accepted := 0
		l, err := runLoop(t, b, loop.Options{StopTimeout: 50 * time.Millisecond}, 20*time.Second, func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
				return &hazardFunc{
					post: func(c *conn.Conn) {
						assert.NoError(t, c.SendFile(f.Name()))
						if accepted++; accepted == 4 {
							// Every connection is up, its sends in flight.
							// (A timer armed in Run's callback counts from
							// the clock read before it, and four 1 MB
							// SendData under the race detector can take
							// longer than its delay.)
							_, _ = l.AddTimer(100*time.Millisecond, l.Stop)
						}
					},
					unbind: func(*conn.Conn, error) { unbinds++ },
				}
			})
			require.NoError(t, err)
			for range 4 {
				// Clients that never read: the server's sends stay in flight.
				_, err := l.Connect(srv.Addr().String(), &hazardFunc{
					post:   func(c *conn.Conn) { c.Pause(); _ = c.SendData(make([]byte, 1<<20)) },
					unbind: func(*conn.Conn, error) { unbinds++ },
				})
				require.NoError(t, err)
			}
		})
		require.NoError(t, err)
		assert.Equal(t, 4, accepted, "server connections")
		assert.Equal(t, 8, unbinds, "every connection unbound once")
		assert.Zero(t, l.InFlightOps())
		assert.Zero(t, l.ConnectionCount())
	})
}

// TestHazardDatagramPause: Pause on a datagram socket, including while its
// receive is in flight, delivers nothing until Resume and then everything,
// in order (stream sockets keep their bytes the same way).
func TestHazardDatagramPause(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		const n = 20
		var got []string
		paused := false
		deliveredPaused := 0
		_, err := runLoop(t, b, loop.Options{}, 20*time.Second, func(l *loop.Loop) {
			var dc *conn.Conn
			dc, err := l.OpenDatagram("127.0.0.1:0", &hazardFunc{
				recv: func(c *conn.Conn, data []byte) {
					if paused {
						deliveredPaused++
					}
					got = append(got, string(data))
					if len(got) == n {
						_ = c.Close()
						l.Stop()
					}
				},
			})
			require.NoError(t, err)
			addr := dc.LocalAddr().String()
			go func() {
				c, err := net.Dial("udp", addr)
				if !assert.NoError(t, err) {
					return
				}
				defer c.Close()
				for i := range n {
					_, _ = fmt.Fprintf(c, "d%02d", i)
					if i == n/2 {
						// Pause right after a datagram went out: its receive
						// may already be complete in the kernel.
						_ = l.NextTick(func() {
							dc.Pause()
							paused = true
							_, _ = l.AddTimer(50*time.Millisecond, func() {
								paused = false
								dc.Resume()
							})
						})
					}
					time.Sleep(time.Millisecond)
				}
			}()
		})
		require.NoError(t, err)
		assert.Zero(t, deliveredPaused, "nothing delivered while paused")
		want := make([]string, n)
		for i := range want {
			want[i] = fmt.Sprintf("d%02d", i)
		}
		assert.Equal(t, want, got)
	})
}
