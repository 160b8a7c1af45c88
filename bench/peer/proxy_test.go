package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// startPeer runs peer with args until the test ends and returns the
// address of its listening line.
func startPeer(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, pw, append(args, "-addr", "127.0.0.1:0"))
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck
	// "<name>: listening on ADDR ..."
	f := strings.Fields(line)
	if len(f) < 4 || f[1] != "listening" {
		t.Fatalf("listening line %q", line)
	}
	return strings.TrimSuffix(f[3], ",")
}

// TestNetProxy: -proto proxy forwards every byte both ways (1 MiB through
// the proxy to an echo server and back, written while it is read), and a
// half-close reaches the backend, whose own close comes back as EOF.
func TestNetProxy(t *testing.T) {
	backend := startPeer(t, "-impl", "net", "-proto", "echo")
	proxy := startPeer(t, "-impl", "net", "-proto", "proxy", "-to", backend)
	nc, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*net.TCPConn)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	msg := make([]byte, 1<<20)
	for i := range msg {
		msg[i] = byte(i*7 + i>>9)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c) // up to the EOF the half-close leads to
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("%d bytes back, want the %d sent", len(got), len(msg))
	}
}

func TestProxyFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-impl", "gnet", "-proto", "proxy", "-to", "127.0.0.1:1"}, "-impl net only"},
		{[]string{"-impl", "net", "-proto", "proxy"}, "needs -to"},
		{[]string{"-impl", "net", "-proto", "echo", "-to", "127.0.0.1:1"}, "goes with -proto proxy"},
		{[]string{"-impl", "net", "-proto", "proxy", "-to", "127.0.0.1:1", "-tls-cert", "c", "-tls-key", "k"}, "no TLS"},
	} {
		err := run(context.Background(), io.Discard, append(c.args, "-addr", "127.0.0.1:0"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.want)
		}
	}
}
