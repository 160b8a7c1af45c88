package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

var listening = regexp.MustCompile(`^proxy: listening on (\S+), forwarding to (\S+) \((uring|epoll), (splice|copy)\)$`)

// syncBuffer is a bytes.Buffer safe for the proxy's loop and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the server on an ephemeral port and returns its address and a
// function that stops it and returns run's error.
func start(t *testing.T, args ...string) (addr string, stop func() error) {
	t.Helper()
	return testutil.StartProgram(t, run, listening, append(args, modeArgs...)...)
}

// modeArgs are the flags of the forwarding mode forEachMode is running.
var modeArgs []string

// forEachMode runs body on each engine for both forwarding modes: splice
// (ProxyTo, the default) and -copy (through the handlers).
func forEachMode(t *testing.T, body func(t *testing.T)) {
	for _, m := range []struct {
		name string
		args []string
	}{{"splice", nil}, {"copy", []string{"-copy"}}} {
		t.Run(m.name, func(t *testing.T) {
			modeArgs = m.args
			t.Cleanup(func() { modeArgs = nil })
			testutil.ForEachBackendEnv(t, body)
		})
	}
}

// echoBackend is a Go net echo server (a backend nobody here wrote the
// reactor of). Each connection echoes until EOF, then closes.
func echoBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	testutil.ServeEcho(t, ln)
	return ln.Addr().String()
}

// randomBytes returns n random bytes. It is called from client goroutines,
// so it must not fail the test: crypto/rand.Read never returns an error
// since Go 1.24 (it crashes the program instead).
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// roundTrip sends payload through the proxy, half-closes, and checks that
// exactly payload comes back, then EOF.
func roundTrip(addr string, payload []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	werr := make(chan error, 1)
	go func() {
		for b := payload; len(b) > 0; {
			n := min(len(b), 7919) // odd sizes: chunking must not matter
			if _, err := c.Write(b[:n]); err != nil {
				werr <- err
				return
			}
			b = b[n:]
		}
		werr <- c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read after %d bytes: %w", len(got), err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("got %d bytes back, want %d (first difference at %d)", len(got), len(payload), testutil.FirstDiff(got, payload))
	}
	return nil
}

// TestProxyEcho: 32 clients at once, 1 MiB each in odd-sized writes, every
// byte checked; each half-closes and must read the whole echo, then EOF
// (the half-close travels through the proxy to the backend and back).
func TestProxyEcho(t *testing.T) {
	clientsThroughProxy(t, 32, func(addr string, i int) error {
		return roundTrip(addr, randomBytes(1<<20+i))
	})
}

// TestProxyPingPong: 16 clients, each 40 round trips of 64 KiB through the
// proxy, one request in flight per connection, every byte checked. Unlike
// a stream, a request-reply exchange has no later bytes to wake a
// connection whose read or send the proxy left behind: a reply stuck in the
// proxy stays stuck, and the client's deadline names how far it got.
func TestProxyPingPong(t *testing.T) {
	clientsThroughProxy(t, 16, func(addr string, _ int) error {
		return pingPong(addr, 40, 64<<10)
	})
}

// clientsThroughProxy runs, in each mode on each engine, n clients at once
// through a proxy to a Go echo backend (client(addr, i) for i in [0, n)),
// reports their errors, and checks that the proxy stops cleanly without
// leaks.
func clientsThroughProxy(t *testing.T, n int, client func(addr string, i int) error) {
	forEachMode(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		backend := echoBackend(t)
		addr, stop := start(t, "-to", backend)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := client(addr, i); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		require.NoError(t, stop())
	})
}

// pingPong sends rounds messages of size random bytes on one connection to
// addr, each after the echo of the one before has come back whole, and
// checks every byte.
func pingPong(addr string, rounds, size int) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	msg, got := make([]byte, size), make([]byte, size)
	for r := range rounds {
		_, _ = rand.Read(msg) // cannot fail (see randomBytes)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("round %d: write: %w", r, err)
		}
		if n, err := io.ReadFull(c, got); err != nil {
			return fmt.Errorf("round %d: read back %d of %d bytes: %w", r, n, size, err)
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("round %d: first difference at byte %d", r, testutil.FirstDiff(got, msg))
		}
	}
	return nil
}

// TestProxyBackpressure: a client writes as fast as it can and never reads,
// through the proxy to an echo backend. The echo can only go back to the
// client as fast as the client reads (never), so the proxy must stop
// reading from the backend, the backend from its socket, the proxy from the
// client, and the client's writes stall; the proxy's queues stay near
// -buffer. Without the pause the proxy reads everything the client sends
// and queues it (64 MiB here) towards the client. The queue is observed in
// -copy mode, where the handlers forward; with ProxyTo the loop's own
// ProxyBackpressure test bounds it, and here the stall is what is checked.
func TestProxyBackpressure(t *testing.T) {
	// sockBuf fixes the kernel buffers of the proxy's sockets and the
	// client's: with autotuning (receive buffers up to tcp_rmem's maximum,
	// 32 MiB here) the kernel alone could hold the 64 MiB the client offers.
	const buffer, sockBuf = 256 << 10, 128 << 10
	forEachMode(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		var most atomic.Int64
		observe = func(q int) {
			for {
				m := most.Load()
				if int64(q) <= m || most.CompareAndSwap(m, int64(q)) {
					return
				}
			}
		}
		t.Cleanup(func() { observe = nil })
		backend := echoBackend(t)
		addr, stop := start(t, "-to", backend, "-buffer", fmt.Sprint(buffer), "-sockbuf", fmt.Sprint(sockBuf))
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.(*net.TCPConn).SetReadBuffer(sockBuf))
		require.NoError(t, c.(*net.TCPConn).SetWriteBuffer(sockBuf))
		chunk := make([]byte, 64<<10)
		written := 0
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(3*time.Second)))
		for written < 64<<20 {
			n, err := c.Write(chunk)
			written += n
			if err != nil {
				require.ErrorIs(t, err, errTimeout(err), "writes stall")
				break
			}
		}
		assert.Less(t, written, 64<<20, "the client's writes stall: the proxy stops reading")
		// The queue may pass the watermark by what the kernel had received
		// for the paused connection before the pause took effect (the
		// socket's receive buffer, a few MiB on loopback), delivered on
		// Resume; it must stay far from the 64 MiB the client offered.
		assert.LessOrEqual(t, most.Load(), int64(buffer+8<<20), "queued towards the client")
		// Now read: every byte written comes back, in order.
		require.NoError(t, c.(*net.TCPConn).CloseWrite())
		require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
		got, err := io.ReadAll(c)
		require.NoError(t, err)
		require.Equal(t, written, len(got))
		for i := 0; i < len(got); i += len(chunk) {
			require.True(t, bytes.Equal(chunk[:min(len(chunk), len(got)-i)], got[i:min(i+len(chunk), len(got))]), "bytes at %d", i)
		}
		require.NoError(t, stop())
	})
}

// errTimeout returns err when it is a timeout, so require.ErrorIs passes
// only for one.
func errTimeout(err error) error {
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return err
	}
	return nil
}

// TestProxyBackendDown: a backend that refuses connections closes the
// client's connection, and the reason is printed.
func TestProxyBackendDown(t *testing.T) {
	forEachMode(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		refused := ln.Addr().String()
		require.NoError(t, ln.Close())
		var out syncBuffer
		old := stderr
		stderr = &out
		t.Cleanup(func() { stderr = old })
		addr, stop := start(t, "-to", refused)
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		_, _ = c.Write([]byte("anyone there?"))
		_, err = io.ReadAll(c)
		if err != nil {
			assert.ErrorContains(t, err, "reset", "closed, not timed out")
		}
		require.NoError(t, stop())
		assert.Contains(t, out.String(), "proxy: backend "+refused)
		assert.Contains(t, out.String(), "connection refused")
	})
}

// TestProxyIdle: a client that sends nothing is closed after -idle.
func TestProxyIdle(t *testing.T) {
	forEachMode(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t, "-to", echoBackend(t), "-idle", "200ms")
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = io.ReadAll(c)
		require.NoError(t, err, "closed by the proxy, not by the deadline")
		require.NoError(t, stop())
	})
}

func TestProxyBadFlags(t *testing.T) {
	var out syncBuffer
	old := stderr
	stderr = &out
	t.Cleanup(func() { stderr = old })
	for _, args := range [][]string{
		{"-nope"},
		{"-buffer", "0"},
		{"-sockbuf", "-1"},
		{"-idle", "-1s"},
		{"-to", "unix:"},
		{"extra"},
	} {
		assert.Error(t, run(context.Background(), io.Discard, args), "%q", args)
	}
	err := run(context.Background(), io.Discard, []string{"-addr", "256.0.0.1:1"})
	assert.ErrorContains(t, err, "256.0.0.1", "the address is named")
}
