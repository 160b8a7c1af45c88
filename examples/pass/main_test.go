package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

var listening = regexp.MustCompile(`^pass: listening on (\S+) \((uring|epoll)\)$`)

// start runs the server on an ephemeral port and returns its address and a
// function that stops it and returns run's error.
func start(t *testing.T) (addr string, stop func() error) {
	t.Helper()
	return testutil.StartProgram(t, run, listening)
}

func TestPass(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t)
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		r := bufio.NewReader(c)
		expect := func(want string) {
			t.Helper()
			got, err := r.ReadString('\n')
			require.NoError(t, err)
			assert.Equal(t, want, got)
		}

		_, err = io.WriteString(c, "cruel\n")
		require.NoError(t, err)
		expect("Goodbye cruel world\n")

		// A line split across writes is answered once, when complete.
		_, err = io.WriteString(c, "tel")
		require.NoError(t, err)
		time.Sleep(20 * time.Millisecond)
		_, err = io.WriteString(c, "net\r\n")
		require.NoError(t, err)
		expect("Goodbye telnet world\n")

		// Several lines in one write: one answer each.
		_, err = io.WriteString(c, "a\nb\n\n")
		require.NoError(t, err)
		expect("Goodbye a world\n")
		expect("Goodbye b world\n")
		expect("Goodbye  world\n")

		// Each connection gets its own state from the factory.
		c2, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c2.Close()
		require.NoError(t, c2.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = io.WriteString(c2, "second\n")
		require.NoError(t, err)
		got, err := bufio.NewReader(c2).ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "Goodbye second world\n", got)

		require.NoError(t, stop())
	})
}

func TestLineTooLong(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t)
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		go func() { _, _ = io.WriteString(c, strings.Repeat("x", 70<<10)) }()
		got, err := io.ReadAll(c)
		if err != nil {
			// The server closes with our input unread, which may reset the
			// connection before we read its answer.
			assert.ErrorIs(t, err, syscall.ECONNRESET)
			assert.True(t, strings.HasPrefix("line too long\n", string(got)), "got %q", got)
		} else {
			assert.Equal(t, "line too long\n", string(got))
		}
		require.NoError(t, stop())
	})
}

func TestBadFlags(t *testing.T) {
	var flagErr bytes.Buffer
	oldStderr := stderr
	stderr = &flagErr
	defer func() { stderr = oldStderr }()
	assert.Error(t, run(context.Background(), io.Discard, []string{"-nope"}))
	assert.Contains(t, flagErr.String(), "flag provided but not defined: -nope", "flag errors go to stderr")
	assert.Error(t, run(context.Background(), io.Discard, []string{"-loops", "0"}))
}
