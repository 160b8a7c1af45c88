package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

type echo struct{ conn.Base }

func (echo) ReceiveData(c *conn.Conn, data []byte) { _ = c.SendData(data) }

// ringEcho runs RingMachine's echo on a loop and returns its address.
func ringEcho(t *testing.T) string {
	t.Helper()
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	var lp *loop.Loop
	go func() {
		errc <- loop.Run(func(l *loop.Loop) {
			lp = l
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return echo{} })
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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
