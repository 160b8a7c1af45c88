package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringmachine/ringmachine/bench/internal/selfsigned"
	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

type echo struct{ conn.Base }

func (echo) ReceiveData(c *conn.Conn, data []byte) { _ = c.SendData(data) }

// ringEcho runs RingMachine's echo on a loop and returns its address.
func ringEcho(t *testing.T) string {
	t.Helper()
	return ringServer(t, func() conn.Handler { return echo{} })
}

type tlsEcho struct {
	echo
	cfg *tls.Config
}

func (e tlsEcho) PostInit(c *conn.Conn) { _ = c.StartTLS(e.cfg) }

// ringTLSEcho is ringEcho over TLS, with the certificate of tlsFiles.
func ringTLSEcho(t *testing.T) string {
	t.Helper()
	cfg := serverTLS(t)
	return ringServer(t, func() conn.Handler { return tlsEcho{cfg: cfg} })
}

// tlsFiles writes a self-signed certificate (its own CA) and its key once
// per test binary.
var tlsFiles = sync.OnceValues(func() ([2]string, error) {
	dir, err := os.MkdirTemp("", "loadgen-test")
	if err != nil {
		return [2]string{}, err
	}
	cert, key, err := selfsigned.Write(dir)
	return [2]string{cert, key}, err
})

func serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	f, err := tlsFiles()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(f[0], f[1])
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

func ringServer(t *testing.T, h func() conn.Handler) string {
	t.Helper()
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	var lp *loop.Loop
	go func() {
		errc <- loop.Run(func(l *loop.Loop) {
			lp = l
			srv, err := l.StartServer("127.0.0.1:0", h)
			if err != nil {
				t.Error(err)
				l.Stop()
				addrc <- ""
				return
			}
			addrc <- srv.Addr().String()
		})
	}()
	addr := <-addrc
	t.Cleanup(func() {
		lp.Stop()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	})
	return addr
}

// badEcho echoes, but flips the byte at stream offset corrupt of the
// first connection (corrupt < 0: never), or closes it after corrupt bytes
// with eof.
func badEcho(t *testing.T, corrupt int, eof bool) string {
	t.Helper()
	return badEchoTLS(t, corrupt, eof, nil)
}

// badEchoTLS is badEcho over TLS with cfg (nil: without TLS).
func badEchoTLS(t *testing.T, corrupt int, eof bool, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for first := true; ; first = false {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn, first bool) {
				defer c.Close()
				buf := make([]byte, 4096)
				off := 0
				for {
					n, err := c.Read(buf)
					if n > 0 && first && corrupt >= 0 && corrupt >= off && corrupt < off+n {
						if eof {
							_, _ = c.Write(buf[:corrupt-off])
							return
						}
						buf[corrupt-off] ^= 0x40
					}
					off += n
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}(c, first)
		}
	}()
	return ln.Addr().String()
}

func cfg(addr, mode string, p int) Config {
	return Config{Addr: addr, Conns: 4, Size: 100, Pipeline: p, Duration: 300 * time.Millisecond,
		Drain: time.Second, Mode: mode, Hold: 10 * time.Millisecond}
}

func TestCleanEcho(t *testing.T) {
	addrs := map[string]string{"ringmachine": ringEcho(t), "net": badEcho(t, -1, false)}
	for name, addr := range addrs {
		for _, mode := range []string{"epoll", "goroutines"} {
			for _, p := range []int{1, 16} {
				r, err := Run(cfg(addr, mode, p), io.Discard)
				if err != nil {
					t.Fatalf("%s %s p=%d: %v", name, mode, p, err)
				}
				if r.Errors != 0 || r.Requests == 0 || r.Checked < r.Requests*100 || r.P50us <= 0 || r.P999us < r.P50us {
					t.Errorf("%s %s p=%d: %+v", name, mode, p, r)
				}
			}
		}
	}
}

func TestDetectsCorruptByte(t *testing.T) {
	for _, mode := range []string{"epoll", "goroutines"} {
		for _, at := range []int{0, 57, 5000} {
			r, err := Run(cfg(badEcho(t, at, false), mode, 4), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if r.Errors == 0 {
				t.Errorf("%s: byte %d flipped, no error reported", mode, at)
			}
			want := "byte " + strconv.Itoa(at) + ":"
			if !strings.Contains(r.FirstErr, want) {
				t.Errorf("%s: first error %q, want it to mention %q", mode, r.FirstErr, want)
			}
		}
	}
}

func TestDetectsShortEcho(t *testing.T) {
	r, err := Run(cfg(badEcho(t, 150, true), "epoll", 2), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// A server that closes with unread requests in its receive queue
	// resets the connection instead of sending FIN: either is reported.
	if r.Errors == 0 || !(strings.Contains(r.FirstErr, "EOF") || strings.Contains(r.FirstErr, "reset by peer")) {
		t.Errorf("connection closed mid-message: %+v", r)
	}
}

// serveEach listens on a loopback port until the test ends and runs fn on
// each connection it accepts, in a goroutine of its own, closing the
// connection when fn returns. It returns the address.
func serveEach(t *testing.T, fn func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fn(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestDrainNamesStuckConnections: a server that reads a request and never
// answers it leaves replies outstanding; each engine's error says how much
// came back (the epoll engine also how much of the request it wrote; the
// goroutines engine writes the whole request before it reads).
func TestDrainNamesStuckConnections(t *testing.T) {
	addr := serveEach(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }) // swallows everything
	c := cfg(addr, "epoll", 1)
	c.Conns, c.Drain = 2, 50*time.Millisecond
	r, err := Run(c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := "2 replies missing after the drain (conn 0: wrote 100 of 100 bytes, read back 0; conn 1: wrote 100 of 100 bytes, read back 0)"
	if r.Errors != 2 || r.FirstErr != want {
		t.Errorf("epoll: errors %d, first %q; want 2, %q", r.Errors, r.FirstErr, want)
	}
	c.Mode = "goroutines"
	if r, err = Run(c, io.Discard); err != nil {
		t.Fatal(err)
	}
	if r.Errors != 2 || !strings.Contains(r.FirstErr, ": read back 0 of 100 bytes: ") {
		t.Errorf("goroutines: errors %d, first %q; want 2, one naming the bytes read back", r.Errors, r.FirstErr)
	}
}

// TestEOFNamesConnection: a server that echoes part of a request and
// closes is reported with the connection and how far its stream got, so a
// proxy that ended one connection is told from one that dropped bytes.
func TestEOFNamesConnection(t *testing.T) {
	addr := serveEach(t, func(c net.Conn) { // reads the request, echoes 60 bytes of it, closes
		b := make([]byte, 100)
		if _, err := io.ReadFull(c, b); err == nil {
			_, _ = c.Write(b[:60])
		}
	})
	c := cfg(addr, "epoll", 1)
	c.Conns = 1
	r, err := Run(c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := "conn 0: wrote 100 of 100 bytes, read back 60: unexpected EOF"
	if r.Errors != 1 || r.FirstErr != want {
		t.Errorf("epoll: errors %d, first %q; want 1, %q", r.Errors, r.FirstErr, want)
	}
	c.Mode = "goroutines"
	if r, err = Run(c, io.Discard); err != nil {
		t.Fatal(err)
	}
	if r.Errors != 1 || !strings.Contains(r.FirstErr, "read back 60 of 100 bytes: ") {
		t.Errorf("goroutines: errors %d, first %q; want 1, one naming the bytes read back", r.Errors, r.FirstErr)
	}
}

func TestIdle(t *testing.T) {
	c := cfg(ringEcho(t), "epoll", 1)
	c.Idle, c.Conns = true, 50
	var ready bytes.Buffer
	if _, err := Run(c, &ready); err != nil {
		t.Fatal(err)
	}
	if ready.String() != "READY\n" {
		t.Errorf("ready = %q", ready.String())
	}
}

func TestRejectsNonLoopback(t *testing.T) {
	if _, err := Run(cfg("192.0.2.1:7", "epoll", 1), io.Discard); err == nil {
		t.Error("non-loopback address accepted")
	}
}

func TestJSONOutput(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, []string{"-addr", ringEcho(t), "-c", "2", "-s", "10", "-d", "100ms"}); err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Requests == 0 {
		t.Errorf("%q: %v", out.String(), err)
	}
}

func tlsCfg(addr string, size int, handshake bool) Config {
	c := cfg(addr, "", 1)
	c.Size, c.TLS, c.Handshake = size, true, handshake
	return c
}

// TestTLSEcho: over TLS, against RingMachine and crypto/tls servers, 64 KiB
// messages and a handshake per request, every byte checked.
func TestTLSEcho(t *testing.T) {
	addrs := map[string]string{"ringmachine": ringTLSEcho(t), "net": badEchoTLS(t, -1, false, serverTLS(t))}
	for name, addr := range addrs {
		for _, c := range []Config{tlsCfg(addr, 64<<10, false), tlsCfg(addr, 64, true)} {
			r, err := Run(c, io.Discard)
			if err != nil {
				t.Fatalf("%s handshake=%v: %v", name, c.Handshake, err)
			}
			if r.Errors != 0 || r.Requests == 0 || r.Checked < r.Requests*uint64(c.Size) || r.P50us <= 0 {
				t.Errorf("%s handshake=%v: %+v", name, c.Handshake, r)
			}
			t.Logf("%s handshake=%v: %.0f req/s", name, c.Handshake, r.RPS)
		}
	}
}

// TestTLSHandshakePerRequest: -handshake connects anew for every request:
// the server sees as many connections as there were round trips.
func TestTLSHandshakePerRequest(t *testing.T) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted, handshakes atomic.Uint64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				if tc.Handshake() != nil {
					return
				}
				if !tc.ConnectionState().DidResume {
					handshakes.Add(1)
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	c := tlsCfg(ln.Addr().String(), 32, true)
	c.Conns = 2
	r, err := Run(c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rounds := r.Checked / 32 // warm-up and drained rounds included
	if r.Errors != 0 || rounds == 0 || accepted.Load() != rounds || handshakes.Load() != rounds {
		t.Errorf("%d round trips, %d connections accepted, %d full handshakes: %+v", rounds, accepted.Load(), handshakes.Load(), r)
	}
}

func TestTLSDetectsCorruptByte(t *testing.T) {
	for _, handshake := range []bool{false, true} {
		r, err := Run(tlsCfg(badEchoTLS(t, 57, false, serverTLS(t)), 100, handshake), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if r.Errors == 0 || !strings.Contains(r.FirstErr, "byte 57:") {
			t.Errorf("handshake=%v: byte 57 flipped: %+v", handshake, r)
		}
	}
}

// TestTLSCA: with -ca the server's certificate is checked: the right root
// passes, another one fails the handshake.
func TestTLSCA(t *testing.T) {
	addr := ringTLSEcho(t)
	f, err := tlsFiles()
	if err != nil {
		t.Fatal(err)
	}
	c := tlsCfg(addr, 64, false)
	c.CA = f[0]
	if r, err := Run(c, io.Discard); err != nil || r.Errors != 0 {
		t.Errorf("the right CA: %v %+v", err, r)
	}
	other, _, err := selfsigned.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c.CA = other
	if _, err := Run(c, io.Discard); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("another CA: %v, want a certificate error", err)
	}
	c.Handshake = true
	if r, err := Run(c, io.Discard); err != nil || r.Errors == 0 || !strings.Contains(r.FirstErr, "certificate") {
		t.Errorf("another CA, -handshake: %v %+v, want a certificate error", err, r)
	}
}

func TestTLSIdle(t *testing.T) {
	c := tlsCfg(ringTLSEcho(t), 16, false)
	c.Idle, c.Conns = true, 50
	var ready bytes.Buffer
	if _, err := Run(c, &ready); err != nil {
		t.Fatal(err)
	}
	if ready.String() != "READY\n" {
		t.Errorf("ready = %q", ready.String())
	}
}

func TestTLSFlags(t *testing.T) {
	addr := ringTLSEcho(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls", "-mode", "epoll"}, "need -mode goroutines"},
		{[]string{"-handshake", "-mode", "epoll"}, "need -mode goroutines"},
		{[]string{"-tls", "-handshake", "-idle"}, "exclude each other"},
		{[]string{"-ca", "x.pem"}, "-ca goes with -tls"},
		{[]string{"-tls", "-ca", "/nonexistent"}, "-ca"},
	} {
		err := run(io.Discard, append(c.args, "-addr", addr, "-d", "10ms"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.want)
		}
	}
	var out bytes.Buffer
	if err := run(&out, []string{"-addr", addr, "-tls", "-handshake", "-c", "2", "-d", "100ms"}); err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Requests == 0 || r.Errors != 0 {
		t.Errorf("%q: %v", out.String(), err)
	}
}
