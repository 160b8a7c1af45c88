package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

var listening = regexp.MustCompile(`^echo: listening on (\S+) \((uring|epoll), \d+ loops\)$`)

// start runs the server on an ephemeral port and returns its address and a
// function that stops it and returns run's error.
func start(t *testing.T, args ...string) (addr string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, pw, append([]string{"-addr", "127.0.0.1:0"}, args...))
		pw.Close()
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no listening line: %v (run: %v)", err, <-done)
	}
	m := listening.FindStringSubmatch(line[:len(line)-1])
	require.NotNil(t, m, "listening line %q", line)
	go io.Copy(io.Discard, pr) // nothing more is expected, but never block run
	return m[1], func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("run did not return after cancel")
			return nil
		}
	}
}

func TestEcho(t *testing.T) {
	for _, loops := range []string{"1", "2"} {
		t.Run("loops="+loops, func(t *testing.T) { testEcho(t, "-loops", loops) })
	}
}

func testEcho(t *testing.T, args ...string) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t, args...)
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		for i, msg := range []string{"hello\n", "x", "", "a longer message\r\n", string(bytes.Repeat([]byte("0123456789"), 10000))} {
			if msg == "" {
				continue
			}
			_, err := io.WriteString(c, msg)
			require.NoError(t, err)
			got := make([]byte, len(msg))
			_, err = io.ReadFull(c, got)
			require.NoError(t, err, "message %d", i)
			assert.Equal(t, msg, string(got), "message %d", i)
		}
		// A second client at the same time.
		c2, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		fmt.Fprint(c2, "two")
		got := make([]byte, 3)
		require.NoError(t, c2.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = io.ReadFull(c2, got)
		require.NoError(t, err)
		assert.Equal(t, "two", string(got))

		require.NoError(t, stop(), "a cancelled context stops the server cleanly")
		// The server closed our connections on the way out.
		_, err = c.Read(got)
		assert.ErrorIs(t, err, io.EOF)
		c.Close()
		c2.Close()
	})
}

func TestBadFlags(t *testing.T) {
	assert.Error(t, run(context.Background(), io.Discard, []string{"-nope"}))
	assert.Error(t, run(context.Background(), io.Discard, []string{"-loops", "-1"}))
}

func TestBadAddr(t *testing.T) {
	testutil.CheckLeaks(t)
	assert.Error(t, run(context.Background(), io.Discard, []string{"-addr", "not an address"}))
}

func TestAddrInUse(t *testing.T) {
	testutil.CheckLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	assert.Error(t, run(context.Background(), io.Discard, []string{"-addr", ln.Addr().String()}))
}
