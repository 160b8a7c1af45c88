package loop_test

import (
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// tlsBenchEcho starts TLS at once and echoes.
type tlsBenchEcho struct {
	conn.Base
	cfg *tls.Config
}

func (h tlsBenchEcho) PostInit(c *conn.Conn)               { _ = c.StartTLS(h.cfg) }
func (tlsBenchEcho) ReceiveData(c *conn.Conn, data []byte) { _ = c.SendData(data) }

// startTLSServer runs a TLS echo server: a loop of backend be, or, for
// "net", Go's net with crypto/tls and a goroutine per connection. It
// returns the address and a stop function.
func startTLSServer(b *testing.B, impl string, cfg *tls.Config) (string, func()) {
	b.Helper()
	if impl == "net" {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
		if err != nil {
			b.Fatal(err)
		}
		return ln.Addr().String(), testutil.ServeEcho(b, ln)
	}
	be, _ := loop.ParseBackend(impl)
	l, err := loop.New(loop.Options{Backend: be})
	if err != nil {
		b.Fatal(err)
	}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- l.Run(func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return tlsBenchEcho{cfg: cfg} })
			if err != nil {
				ready <- ""
				l.Stop()
				return
			}
			ready <- srv.Addr().String()
		})
	}()
	addr := <-ready
	if addr == "" {
		b.Fatal(<-done)
	}
	return addr, func() { l.Stop(); <-done }
}

// tlsImpls are the TLS servers compared: the loop on each engine, and Go's
// net with crypto/tls.
var tlsImpls = []string{"uring", "epoll", "net"}

// BenchmarkTLSHandshake: full handshakes per second (TLS 1.3, ECDSA P-256,
// no resumption), 8 clients at a time in this process, each connecting,
// handshaking, exchanging one byte and closing.
//
//	go test -run '^$' -bench TLSHandshake -benchtime 2000x ./loop/
func BenchmarkTLSHandshake(b *testing.B) {
	p := testutil.TestPKI(b)
	for _, impl := range tlsImpls {
		b.Run(impl, func(b *testing.B) {
			if impl == "uring" {
				testutil.RequireURing(b)
			}
			addr, stop := startTLSServer(b, impl, &tls.Config{Certificates: []tls.Certificate{p.Leaf}, SessionTicketsDisabled: true})
			defer stop()
			clientCfg := &tls.Config{RootCAs: p.Pool, ServerName: "localhost"}
			work := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			b.ResetTimer()
			start := time.Now()
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 1)
					for range work {
						c, err := tls.Dial("tcp", addr, clientCfg)
						if err == nil {
							_, err = c.Write(buf)
						}
						if err == nil {
							_, err = io.ReadFull(c, buf)
						}
						if c != nil {
							c.Close()
						}
						if err != nil {
							select {
							case errs <- err:
							default:
							}
						}
					}
				}()
			}
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
			select {
			case err := <-errs:
				b.Fatal(err)
			default:
			}
		})
	}
}

// BenchmarkTLSBulk: one connection echoing 64 KiB messages, 4 in flight.
//
//	go test -run '^$' -bench TLSBulk -benchtime 2000x ./loop/
func BenchmarkTLSBulk(b *testing.B) {
	p := testutil.TestPKI(b)
	for _, impl := range tlsImpls {
		b.Run(impl, func(b *testing.B) {
			if impl == "uring" {
				testutil.RequireURing(b)
			}
			addr, stop := startTLSServer(b, impl, &tls.Config{Certificates: []tls.Certificate{p.Leaf}})
			defer stop()
			c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.Pool, ServerName: "localhost"})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := make([]byte, 64<<10)
			b.SetBytes(int64(len(msg)))
			errc := make(chan error, 1)
			b.ResetTimer()
			go func() {
				var err error
				for i := 0; i < b.N && err == nil; i++ {
					_, err = c.Write(msg)
				}
				errc <- err
			}()
			buf := make([]byte, len(msg))
			for range b.N {
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkTLSIdleMemory: heap per idle TLS connection after its
// handshake, server and client sides together (both in this process; the
// client side is the same for every server, so the differences are the
// servers').
//
//	go test -run '^$' -bench TLSIdleMemory -benchtime 1x ./loop/
func BenchmarkTLSIdleMemory(b *testing.B) {
	const conns = 1000
	p := testutil.TestPKI(b)
	for _, impl := range tlsImpls {
		b.Run(impl, func(b *testing.B) {
			if impl == "uring" {
				testutil.RequireURing(b)
			}
			for range b.N {
				addr, stop := startTLSServer(b, impl, &tls.Config{Certificates: []tls.Certificate{p.Leaf}})
				before := heapInUse()
				cs := make([]net.Conn, 0, conns)
				buf := make([]byte, 1)
				for range conns {
					c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.Pool, ServerName: "localhost"})
					if err != nil {
						b.Fatal(err)
					}
					// One round trip: the server's handshake is over.
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Fatal(err)
					}
					cs = append(cs, c)
				}
				after := heapInUse()
				b.ReportMetric(float64(after-before)/conns, "B/conn")
				for _, c := range cs {
					c.Close()
				}
				stop()
			}
		})
	}
}

// heapInUse is the live heap after two collections.
func heapInUse() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}
