package loop_test

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// groupAcceptModes are the ways a group server spreads connections, as
// benchmarked: reuse-port, hand-off over the backend's best transport
// (on io_uring: direct descriptors moved by MSG_RING) and, on io_uring,
// hand-off of process fds named in a MSG_RING message, and forced through
// the MPSC queue (on epoll that is what "handoff" is already).
var groupAcceptModes = []struct {
	name       string
	mode       loop.AcceptMode
	queue      bool
	processFDs bool
	uringOnly  bool
}{
	{"reuseport", loop.AcceptReusePort, false, false, false},
	{"handoff", loop.AcceptHandoff, false, false, false},
	{"handoff-fds", loop.AcceptHandoff, false, true, true},
	{"handoff-queue", loop.AcceptHandoff, true, true, true},
}

// BenchmarkGroupEcho measures a group echo server of 1 and 2 loops, in each
// accept mode, per backend. The top-level sub-benchmarks are 64-byte
// ping-pong over 64 established connections (req/s); "connect/..." opens
// connections instead: 64 clients at once, each connecting, doing one
// 64-byte round trip and closing (with RST, so no TIME_WAIT piles up), 10
// times per iteration (conns/s): the workload where the accept mode and the
// hand-off transport matter. The load generator shares the machine's cores
// with the loops.
func BenchmarkGroupEcho(b *testing.B) {
	for _, workload := range []string{"", "connect/"} {
		for _, be := range testutil.Backends {
			for _, m := range groupAcceptModes {
				if m.uringOnly && be != loop.URing {
					continue
				}
				for _, n := range []int{1, 2} {
					b.Run(fmt.Sprintf("%s%s/%s/loops=%d", workload, be, m.name, n), func(b *testing.B) {
						if be == loop.URing {
							testutil.RequireURing(b)
						}
						defer loop.SetTestHandoffQueue(m.queue)()
						g, err := loop.NewGroup(n, loop.Options{Backend: be, Accept: m.mode, URing: loop.URingOptions{ProcessFDs: m.processFDs}})
						if err != nil {
							b.Fatal(err)
						}
						srv, err := g.StartServer("127.0.0.1:0", func(*loop.Loop) conn.Handler { return benchEcho{} })
						if err != nil {
							b.Fatal(err)
						}
						done := make(chan error, 1)
						go func() { done <- g.Run(func(*loop.Loop) {}) }()
						defer func() {
							g.Stop()
							if err := <-done; err != nil {
								b.Error(err)
							}
						}()
						if workload == "" {
							benchPingPong(b, srv.Addr().String())
						} else {
							benchConnect(b, srv.Addr().String())
						}
					})
				}
			}
		}
	}
}

// benchPingPong runs 64-byte ping-pong over 64 connections to addr.
func benchPingPong(b *testing.B, addr string) {
	const conns, rounds, size = 64, 100, 64
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	payload := make([]byte, size)
	requests := 0
	begin := time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, size)
				for range rounds {
					if _, err := c.Write(payload); err != nil {
						b.Error(err)
						return
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		requests += conns * rounds
	}
	b.ReportMetric(float64(requests)/time.Since(begin).Seconds(), "req/s")
}

// benchConnect has 64 clients at once connect to addr, do one 64-byte round
// trip and close, 10 times each per iteration.
func benchConnect(b *testing.B, addr string) {
	const clients, rounds, size = 64, 10, 64
	payload := make([]byte, size)
	total := 0
	begin := time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, size)
				for range rounds {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						b.Error(err)
						return
					}
					_ = c.(*net.TCPConn).SetLinger(0)
					_, err = c.Write(payload)
					if err == nil {
						_, err = io.ReadFull(c, buf)
					}
					c.Close()
					if err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		total += clients * rounds
	}
	b.ReportMetric(float64(total)/time.Since(begin).Seconds(), "conns/s")
}
