package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ringmachine/ringmachine/bench/internal/selfsigned"
)

// TestNetTLSEcho: -impl net with -tls-cert/-tls-key echoes every byte over
// TLS 1.3, 1 MiB written while it is read back.
func TestNetTLSEcho(t *testing.T) {
	cert, key, err := selfsigned.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, pw, []string{"-impl", "net", "-proto", "echo", "-addr", "127.0.0.1:0", "-tls-cert", cert, "-tls-key", key})
		pw.Close()
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck
	// "net-echo: listening on ADDR (net, TLS)"
	f := strings.Fields(line)
	if len(f) < 4 || !strings.Contains(line, "(net, TLS)") {
		t.Fatalf("listening line %q", line)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", f[3], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("version %x, want TLS 1.3", v)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	msg := make([]byte, 1<<20)
	for i := range msg {
		msg[i] = byte(i*7 + i>>9)
	}
	werr := make(chan error, 1)
	go func() { _, err := c.Write(msg); werr <- err }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Error("the echo differs")
	}
}

func TestTLSFlags(t *testing.T) {
	cert, key, err := selfsigned.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-impl", "gnet", "-tls-cert", cert, "-tls-key", key}, "no TLS"},
		{[]string{"-impl", "net", "-tls-cert", cert}, "go together"},
		{[]string{"-impl", "net", "-tls-cert", cert, "-tls-key", cert}, "-tls-cert/-tls-key"},
	} {
		err := run(context.Background(), io.Discard, append(c.args, "-addr", "127.0.0.1:0"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.want)
		}
	}
}
