package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

var listening = regexp.MustCompile(`^redis: listening on (\S+) \((uring|epoll)\)$`)

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
	m := listening.FindStringSubmatch(strings.TrimSuffix(line, "\n"))
	require.NotNil(t, m, "listening line %q", line)
	go io.Copy(io.Discard, pr)
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

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	t.Cleanup(func() { c.Close() })
	return &client{t, c, bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	_, err := io.WriteString(c.c, s)
	require.NoError(c.t, err)
}

// reply reads one RESP value and returns its raw bytes.
func (c *client) reply() string {
	c.t.Helper()
	line, err := c.r.ReadString('\n')
	require.NoError(c.t, err)
	require.True(c.t, strings.HasSuffix(line, "\r\n"), "%q", line)
	switch line[0] {
	case '+', '-', ':':
		return line
	case '$':
		if line == "$-1\r\n" {
			return line
		}
		var n int
		for _, d := range line[1 : len(line)-2] {
			n = n*10 + int(d-'0')
		}
		b := make([]byte, n+2)
		_, err := io.ReadFull(c.r, b)
		require.NoError(c.t, err)
		return line + string(b)
	case '*':
		var n int
		for _, d := range line[1 : len(line)-2] {
			n = n*10 + int(d-'0')
		}
		for range n {
			line += c.reply()
		}
		return line
	}
	c.t.Fatalf("bad reply %q", line)
	return ""
}

// closed checks that the server closed the connection.
func (c *client) closed() {
	c.t.Helper()
	_, err := c.r.ReadByte()
	if !errors.Is(err, io.EOF) {
		assert.ErrorIs(c.t, err, syscall.ECONNRESET)
	}
}

func TestRedis(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t)

		t.Run("commands", func(t *testing.T) {
			c := dial(t, addr)
			c.send(cmd("SET", "greeting", "hello"))
			assert.Equal(t, "+OK\r\n", c.reply())
			c.send(cmd("GET", "greeting"))
			assert.Equal(t, "$5\r\nhello\r\n", c.reply())
			c.send(cmd("INCR", "counter"))
			assert.Equal(t, ":1\r\n", c.reply())
			c.send(cmd("MGET", "greeting", "counter", "none"))
			assert.Equal(t, "*3\r\n$5\r\nhello\r\n$1\r\n1\r\n$-1\r\n", c.reply())

			// State is shared between connections (one keyspace).
			c2 := dial(t, addr)
			c2.send(cmd("GET", "greeting"))
			assert.Equal(t, "$5\r\nhello\r\n", c2.reply())
			c2.send(cmd("DEL", "greeting", "counter"))
			assert.Equal(t, ":2\r\n", c2.reply())
		})

		t.Run("pipelined", func(t *testing.T) {
			c := dial(t, addr)
			var b strings.Builder
			for range 1000 {
				b.WriteString(cmd("INCR", "pipe"))
			}
			b.WriteString(cmd("GET", "pipe"))
			c.send(b.String())
			for i := range 1000 {
				require.Equal(t, ":"+strconv.Itoa(i+1)+"\r\n", c.reply())
			}
			assert.Equal(t, "$4\r\n1000\r\n", c.reply())
		})

		t.Run("big value across reads", func(t *testing.T) {
			c := dial(t, addr)
			v := strings.Repeat("0123456789", 100_000) // 1 MB
			go func() { _, _ = io.WriteString(c.c, cmd("SET", "big", v)+cmd("STRLEN?", "x")+cmd("GET", "big")) }()
			assert.Equal(t, "+OK\r\n", c.reply())
			assert.Equal(t, "-ERR unknown command 'STRLEN?', with args beginning with: 'x' \r\n", c.reply())
			assert.Equal(t, "$1000000\r\n"+v+"\r\n", c.reply())
		})

		t.Run("inline", func(t *testing.T) {
			c := dial(t, addr)
			c.send("PING\r\nset k \"a b\"\r\nGET k\nEXISTS k nope\r\n")
			assert.Equal(t, "+PONG\r\n", c.reply())
			assert.Equal(t, "+OK\r\n", c.reply())
			assert.Equal(t, "$3\r\na b\r\n", c.reply())
			assert.Equal(t, ":1\r\n", c.reply())
		})

		t.Run("errors", func(t *testing.T) {
			c := dial(t, addr)
			c.send(cmd("NOPE") + cmd("GET") + cmd("SET", "s", "x") + cmd("INCR", "s") + cmd("SET", "s", "x", "EX", "y") + cmd("PING"))
			assert.Equal(t, "-ERR unknown command 'NOPE', with args beginning with: \r\n", c.reply())
			assert.Equal(t, "-ERR wrong number of arguments for 'get' command\r\n", c.reply())
			assert.Equal(t, "+OK\r\n", c.reply())
			assert.Equal(t, "-ERR value is not an integer or out of range\r\n", c.reply())
			assert.Equal(t, "-ERR value is not an integer or out of range\r\n", c.reply())
			assert.Equal(t, "+PONG\r\n", c.reply(), "command errors keep the connection")
		})

		t.Run("protocol error closes", func(t *testing.T) {
			c := dial(t, addr)
			c.send(cmd("PING") + "*1\r\n$abc\r\n" + cmd("PING"))
			assert.Equal(t, "+PONG\r\n", c.reply())
			assert.Equal(t, "-ERR Protocol error: invalid bulk length\r\n", c.reply())
			c.closed()
		})

		t.Run("quit", func(t *testing.T) {
			c := dial(t, addr)
			c.send(cmd("QUIT"))
			assert.Equal(t, "+OK\r\n", c.reply())
			c.closed()
		})

		t.Run("expiry", func(t *testing.T) {
			c := dial(t, addr)
			c.send(cmd("FLUSHALL") + cmd("SET", "lazy", "v", "PX", "50") + cmd("SET", "swept", "v", "PX", "50") + cmd("DBSIZE"))
			assert.Equal(t, "+OK\r\n", c.reply())
			assert.Equal(t, "+OK\r\n", c.reply())
			assert.Equal(t, "+OK\r\n", c.reply())
			assert.Equal(t, ":2\r\n", c.reply())
			c.send(cmd("GET", "lazy"))
			assert.Equal(t, "$1\r\nv\r\n", c.reply())
			time.Sleep(60 * time.Millisecond)
			c.send(cmd("GET", "lazy") + cmd("TTL", "lazy"))
			assert.Equal(t, "$-1\r\n", c.reply(), "expired when read")
			assert.Equal(t, ":-2\r\n", c.reply())
			// "swept" is never touched: the periodic sweep removes it.
			require.Eventually(t, func() bool {
				c.send(cmd("DBSIZE"))
				return c.reply() == ":0\r\n"
			}, 5*time.Second, 50*time.Millisecond)
		})

		t.Run("flushall", func(t *testing.T) {
			c := dial(t, addr)
			c.send(cmd("FLUSHALL") + cmd("DBSIZE"))
			assert.Equal(t, "+OK\r\n", c.reply())
			assert.Equal(t, ":0\r\n", c.reply())
		})

		require.NoError(t, stop())
	})
}

func TestBulkLimit(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t, "-max-bulk", "100", "-max-args", "3")
		c := dial(t, addr)
		c.send(cmd("SET", "k", strings.Repeat("v", 100)))
		assert.Equal(t, "+OK\r\n", c.reply())
		c.send(cmd("SET", "k", strings.Repeat("v", 101)))
		assert.Equal(t, "-ERR Protocol error: invalid bulk length\r\n", c.reply())
		c.closed()
		c = dial(t, addr)
		c.send(cmd("MGET", "a", "b", "c"))
		assert.Equal(t, "-ERR Protocol error: invalid multibulk length\r\n", c.reply())
		c.closed()
		require.NoError(t, stop())
	})
}

// TestRedisTools runs the real redis-cli and redis-benchmark against the
// server (Debian package redis-tools).
func TestRedisTools(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed (apt-get install redis-tools)")
	}
	bench, err := exec.LookPath("redis-benchmark")
	if err != nil {
		t.Skip("redis-benchmark not installed (apt-get install redis-tools)")
	}
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t)
		host, port, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		redisCLI := func(args ...string) string {
			out, err := exec.CommandContext(ctx, cli, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
			require.NoError(t, err, "%s", out)
			return strings.TrimSpace(string(out))
		}
		assert.Equal(t, "PONG", redisCLI("ping"))
		assert.Equal(t, "OK", redisCLI("set", "tool", "works"))
		assert.Equal(t, "works", redisCLI("get", "tool"))
		assert.Equal(t, "42", redisCLI("incrby", "n", "42"))

		for _, p := range []string{"1", "16"} {
			out, err := exec.CommandContext(ctx, bench, "-h", host, "-p", port,
				"-t", "ping,set,get", "-n", "2000", "-q", "-P", p).CombinedOutput()
			require.NoError(t, err, "%s", out)
			t.Logf("redis-benchmark -P %s:\n%s", p, lastLines(string(out)))
			assert.NotContains(t, string(out), "WARNING")
			assert.NotContains(t, string(out), "rror")
			for _, test := range []string{"PING_INLINE", "PING_MBULK", "SET", "GET"} {
				assert.Regexp(t, `(?m)`+test+`: [0-9.]+ requests per second`, string(out))
			}
		}
		require.NoError(t, stop())
	})
}

// lastLines drops redis-benchmark's progress lines (ended by \r).
func lastLines(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if i := strings.LastIndexByte(l, '\r'); i >= 0 {
			l = l[i+1:]
		}
		if strings.TrimSpace(l) != "" {
			b.WriteString(strings.TrimSpace(l) + "\n")
		}
	}
	return b.String()
}

func TestBadFlags(t *testing.T) {
	assert.Error(t, run(context.Background(), io.Discard, []string{"-nope"}))
	assert.EqualError(t, run(context.Background(), io.Discard, []string{"-loops", "2"}), "-loops > 1: one loop owns the keyspace (see the package documentation)")
	assert.Error(t, run(context.Background(), io.Discard, []string{"-max-bulk", "0"}))
	assert.Error(t, run(context.Background(), io.Discard, []string{"-max-bulk", "1000000000"}))
	assert.Error(t, run(context.Background(), io.Discard, []string{"-max-args", "0"}))
}

func TestBadAddr(t *testing.T) {
	testutil.CheckLeaks(t)
	assert.Error(t, run(context.Background(), io.Discard, []string{"-addr", "not an address"}))
}
