package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

// countingListener counts the bytes the server writes on all connections.
type countingListener struct {
	net.Listener
	written *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.written}, nil
}

type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	return n, err
}

var receivedLine = regexp.MustCompile(`^Received (\d+) bytes$`)

func TestConnect(t *testing.T) {
	body := strings.Repeat("RingMachine says hello.\n", 20000) // ~480 KB: many chunks
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		var written atomic.Int64
		var mu sync.Mutex
		var hosts []string
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hosts = append(hosts, r.Host)
			mu.Unlock()
			io.WriteString(w, body)
		}))
		ts.Listener = countingListener{Listener: ts.Listener, written: &written}
		ts.Start()
		defer ts.Close()

		var out bytes.Buffer
		addr := ts.Listener.Addr().String()
		require.NoError(t, run(t.Context(), &out, []string{"-addr", addr}))

		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		require.NotEmpty(t, lines)
		var sum int64
		for _, line := range lines {
			m := receivedLine.FindStringSubmatch(line)
			if !assert.NotNil(t, m, "line %q", line) {
				continue
			}
			n, err := strconv.ParseInt(m[1], 10, 64)
			require.NoError(t, err)
			assert.Positive(t, n)
			sum += n
		}
		assert.Equal(t, written.Load(), sum, "every byte of the raw response is counted once")
		assert.Greater(t, sum, int64(len(body)))
		host, _, _ := net.SplitHostPort(addr)
		mu.Lock()
		assert.Equal(t, []string{host}, hosts)
		mu.Unlock()
		t.Logf("%d chunks, %d bytes", len(lines), sum)
	})
}

func TestConnectRefused(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now

		var out bytes.Buffer
		err = run(context.Background(), &out, []string{"-addr", addr})
		require.Error(t, err)
		assert.ErrorIs(t, err, syscall.ECONNREFUSED)
		assert.Empty(t, out.String())
	})
}

func TestBadFlags(t *testing.T) {
	var flagErr bytes.Buffer
	oldStderr := stderr
	stderr = &flagErr
	defer func() { stderr = oldStderr }()
	assert.Error(t, run(context.Background(), io.Discard, []string{"-nope"}))
	assert.Contains(t, flagErr.String(), "flag provided but not defined: -nope", "flag errors go to stderr")
	assert.Error(t, run(context.Background(), io.Discard, []string{"-addr", "no-port"}))
}
