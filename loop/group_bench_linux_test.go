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

// BenchmarkGroupEcho measures 64-byte ping-pong over 64 connections through
// a group echo server of 1 and 2 loops, in both accept modes, per backend
// (req/s). The load generator shares the machine's cores with the loops.
func BenchmarkGroupEcho(b *testing.B) {
	const conns, rounds, size = 64, 100, 64
	for _, be := range testutil.Backends {
		for _, mode := range []loop.AcceptMode{loop.AcceptReusePort, loop.AcceptHandoff} {
			for _, n := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/loops=%d", be, mode, n), func(b *testing.B) {
					if be == loop.URing {
						testutil.RequireURing(b)
					}
					g, err := loop.NewGroup(n, loop.Options{Backend: be, Accept: mode})
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
					cs := make([]net.Conn, conns)
					for i := range cs {
						c, err := net.Dial("tcp", srv.Addr().String())
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
				})
			}
		}
	}
}
