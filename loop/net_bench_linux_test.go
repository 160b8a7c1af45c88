package loop_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// benchServer is an echo (or idle) server under benchmark.
type benchServer struct {
	addr  string
	count func() int // connections the server holds
	stop  func()
}

type benchEcho struct{ conn.Base }

func (benchEcho) ReceiveData(c *conn.Conn, data []byte) { _ = c.SendData(data) }

// startLoopServer runs a loop echo server of backend be in the background.
func startLoopServer(b testing.TB, be loop.Backend) benchServer {
	b.Helper()
	return startLoopServerOpts(b, loop.Options{Backend: be})
}

// startLoopServerOpts runs a loop echo server with opts in the background.
func startLoopServerOpts(b testing.TB, opts loop.Options) benchServer {
	b.Helper()
	l, err := loop.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	ready := make(chan error, 1)
	done := make(chan error, 1)
	var addr string
	go func() {
		done <- l.Run(func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return benchEcho{} })
			if err == nil {
				addr = srv.Addr().String()
			}
			ready <- err
		})
	}()
	if err := <-ready; err != nil {
		l.Stop()
		<-done
		b.Fatal(err)
	}
	return benchServer{
		addr: addr,
		count: func() int {
			ch := make(chan int, 1)
			if err := l.NextTick(func() { ch <- l.ConnectionCount() }); err != nil {
				return -1
			}
			return <-ch
		},
		stop: func() {
			l.Stop()
			if err := <-done; err != nil {
				b.Error(err)
			}
		},
	}
}

// startNetServer runs a goroutine-per-connection echo server on net.
func startNetServer(b *testing.B) benchServer {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	return benchServer{
		addr:  ln.Addr().String(),
		count: func() int { mu.Lock(); defer mu.Unlock(); return len(conns) },
		stop: func() {
			ln.Close()
			mu.Lock()
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		},
	}
}

// forEachServer runs fn as sub-benchmarks uring, epoll and net.
func forEachServer(b *testing.B, fn func(b *testing.B, start func(b *testing.B) benchServer)) {
	for _, be := range testutil.Backends {
		b.Run(be.String(), func(b *testing.B) {
			if be == loop.URing {
				testutil.RequireURing(b)
			}
			fn(b, func(b *testing.B) benchServer { return startLoopServer(b, be) })
		})
	}
	b.Run("net", func(b *testing.B) { fn(b, startNetServer) })
}

// BenchmarkEcho measures ping-pong through an echo server: 64 connections
// each send a payload and wait for it to come back, 100 times per
// iteration. Compare the loop backends with a goroutine-per-connection net
// server in the same run (req/s).
func BenchmarkEcho(b *testing.B) {
	const (
		conns  = 64
		rounds = 100
	)
	forEachServer(b, func(b *testing.B, start func(*testing.B) benchServer) {
		for _, size := range []int{64, 4096} {
			b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
				srv := start(b)
				defer srv.stop()
				pingPong(b, srv.addr, conns, rounds, size)
			})
		}
	})
}

// pingPong is the client side of the echo benchmarks: conns connections to
// addr each send a payload of size bytes and wait for it to come back,
// rounds times per iteration. It reports req/s.
func pingPong(b *testing.B, addr string, conns, rounds, size int) {
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	payload := bytes.Repeat([]byte{'x'}, size)
	b.SetBytes(int64(conns * rounds * size))
	b.ReportAllocs()
	var requests atomic.Int64
	begin := time.Now()
	for b.Loop() {
		err := inParallel(conns, func(i int) error {
			buf := make([]byte, size)
			for range rounds {
				if _, err := cs[i].Write(payload); err != nil {
					return err
				}
				if _, err := io.ReadFull(cs[i], buf); err != nil {
					return err
				}
				requests.Add(1)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(requests.Load())/time.Since(begin).Seconds(), "req/s")
}

// inParallel runs fn(0) to fn(n-1) on n goroutines, waits for them and
// returns their errors joined (nil if none failed).
func inParallel(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// idleScales are the connection counts of BenchmarkIdleConnMemory:
// RM_IDLE_CONNS (a comma-separated list), or 1,000 and 10,000 (each costs
// two fds in this process, client and server side: the benchmark raises the
// open-files limit, see loop.RaiseFileLimit). 100,000 is measured by
// TestStressIdle100k under the stress build tag.
func idleScales(b *testing.B) []int {
	s := os.Getenv("RM_IDLE_CONNS")
	if s == "" {
		return []int{1000, 10000}
	}
	var ns []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("RM_IDLE_CONNS=%q: want positive numbers", s)
		}
		ns = append(ns, n)
	}
	return ns
}

// rss returns the process's resident set size in bytes.
func rss(b testing.TB) int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(data))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// settle collects garbage and returns memory to the OS, so that RSS shows
// what is live.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

// holdIdle opens n client connections to srv, waits until the server holds
// them all, and returns the RSS growth they caused. When both ends do not
// fit in this process's descriptor limit, the client side runs in a child
// process (this test binary re-executed, see TestHelperIdleClient), so only
// the server side counts against the limit and in the RSS.
func holdIdle(b testing.TB, srv benchServer, n int) int64 {
	b.Helper()
	settle()
	before := rss(b)
	if fdLimit() < uint64(2*n+1000) {
		stop := spawnIdleClient(b, srv.addr, n)
		defer stop()
	} else {
		cs := dialIdle(b, srv.addr, n)
		defer func() {
			for _, c := range cs {
				c.Close()
			}
		}()
	}
	waitCount(b, srv, n)
	settle()
	return rss(b) - before
}

// fdLimit returns the soft open-files limit, raised to the hard one.
func fdLimit() uint64 {
	n, _ := loop.RaiseFileLimit(0)
	return n
}

// spawnIdleClient runs TestHelperIdleClient in a child process holding n
// connections to addr; the returned func closes them and waits.
func spawnIdleClient(b testing.TB, addr string, n int) (stop func()) {
	b.Helper()
	if fdLimit() < uint64(n+200) {
		b.Skipf("%d connections need %d descriptors, the limit is %d", n, n+200, fdLimit())
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIdleClient$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("RM_IDLE_CLIENT=%s,%d", addr, n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "idle-client-ready" {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- fmt.Errorf("idle client exited before it was ready: %v", sc.Err())
	}()
	select {
	case err = <-ready:
	case <-time.After(120 * time.Second):
		err = errors.New("idle client not ready after 120 s")
	}
	stop = func() {
		stdin.Close()
		_ = cmd.Wait()
	}
	if err != nil {
		_ = cmd.Process.Kill()
		stop()
		b.Fatal(err)
	}
	return stop
}

// TestHelperIdleClient is the child process of spawnIdleClient: with
// RM_IDLE_CLIENT=addr,n it holds n connections to addr until its stdin
// closes. Without it, it does nothing.
func TestHelperIdleClient(t *testing.T) {
	env := os.Getenv("RM_IDLE_CLIENT")
	if env == "" {
		return
	}
	addr, ns, _ := strings.Cut(env, ",")
	n, err := strconv.Atoi(ns)
	if err != nil {
		t.Fatal(err)
	}
	cs := dialIdle(t, addr, n)
	fmt.Println("idle-client-ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range cs {
		c.Close()
	}
}

// dialSeq numbers the connections dialIdle opened, in this process.
var dialSeq atomic.Int64

// dialIdle opens n connections to addr from ever new loopback source
// addresses (127.0.x.y, 5,000 connections each), so that large counts, and
// runs one after another (whose closed connections linger in TIME_WAIT), do
// not run out of ephemeral ports.
func dialIdle(b testing.TB, addr string, n int) []net.Conn {
	b.Helper()
	cs := make([]net.Conn, 0, n)
	for range n {
		d := net.Dialer{Timeout: 10 * time.Second}
		if k := dialSeq.Add(1) / 5000; n > 1000 || k > 0 {
			k += int64(os.Getpid()) // a child process dials from other addresses
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, byte(1+k/250%250), byte(k%250), 2)}
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			for _, c := range cs {
				c.Close()
			}
			b.Fatalf("dial %d: %v", len(cs), err)
		}
		cs = append(cs, c)
	}
	return cs
}

// waitCount waits until srv holds n connections.
func waitCount(b testing.TB, srv benchServer, n int) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for srv.count() < n {
		if time.Now().After(deadline) {
			b.Fatalf("server holds %d of %d connections", srv.count(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// startRawServer accepts connections with accept4(2) and keeps only their
// fds: the baseline, where the server side costs (almost) nothing in the
// process.
func startRawServer(b testing.TB) benchServer {
	b.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		b.Fatal(err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		b.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var fds []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
			if err == unix.EINTR || err == unix.ECONNABORTED {
				continue
			}
			if err != nil {
				return // shutdown(2) below
			}
			mu.Lock()
			fds = append(fds, nfd)
			mu.Unlock()
		}
	}()
	return benchServer{
		addr:  fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port),
		count: func() int { mu.Lock(); defer mu.Unlock(); return len(fds) },
		stop: func() {
			_ = unix.Shutdown(fd, unix.SHUT_RDWR) // wakes the blocked accept4
			<-done
			unix.Close(fd)
			for _, f := range fds {
				unix.Close(f)
			}
		},
	}
}

// BenchmarkIdleConnMemory reports what an idle connection costs a server in
// process memory ("B/conn", RSS growth per connection minus the growth of
// the same number of client connections held against a raw accept4 server),
// for each loop backend and for a goroutine-per-connection net server.
// The target is at most 512 B per idle connection on io_uring (DESIGN asks for
// well under 2 KB; the project's scale-out goal is gnet's ~0.5 KB).
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, n := range idleScales(b) {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			raw := startRawServer(b)
			baseline := holdIdle(b, raw, n)
			raw.stop()
			forEachServer(b, func(b *testing.B, start func(*testing.B) benchServer) {
				if n > 5000 && strings.HasSuffix(b.Name(), "/net") {
					// Its client then runs in a child process, which stalls
					// against the net server here (not investigated yet).
					b.Skip("net is compared up to 5,000 connections")
				}
				var grown int64
				iters := 0
				for b.Loop() {
					srv := start(b)
					grown += holdIdle(b, srv, n)
					srv.stop()
					iters++
				}
				b.ReportMetric(float64(grown/int64(iters)-baseline)/float64(n), "B/conn")
				b.ReportMetric(float64(n), "conns")
			})
		})
	}
}

// BenchmarkConnChurn measures short-lived connections through an echo
// server: 16 clients each connect, send 64 bytes, read them back and close,
// 32 times per iteration (the client closes first, as an HTTP/1.0 client
// would). Compare the loop backends with a goroutine-per-connection net
// server in the same run (conns/s).
func BenchmarkConnChurn(b *testing.B) {
	const (
		clients = 16
		each    = 32
		size    = 64
	)
	forEachServer(b, func(b *testing.B, start func(*testing.B) benchServer) {
		srv := start(b)
		defer srv.stop()
		payload := bytes.Repeat([]byte{'c'}, size)
		var done atomic.Int64
		b.ReportAllocs()
		begin := time.Now()
		for b.Loop() {
			err := inParallel(clients, func(int) error {
				buf := make([]byte, size)
				for range each {
					if err := churnOnce(srv.addr, payload, buf); err != nil {
						return err
					}
					done.Add(1)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(done.Load())/time.Since(begin).Seconds(), "conns/s")
	})
}

// churnOnce connects to addr, has payload echoed into buf (checked byte for
// byte) and closes.
func churnOnce(addr string, payload, buf []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write(payload); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, payload) {
		return errors.New("conn churn: the echo differs from what was sent")
	}
	return nil
}
