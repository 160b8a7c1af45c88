//go:build stress

package loop_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// directCounter counts the connections a direct-descriptor server holds.
type directCounter struct {
	conn.Base
	open *atomic.Int64
}

func (h directCounter) PostInit(*conn.Conn)                   { h.open.Add(1) }
func (h directCounter) ReceiveData(c *conn.Conn, data []byte) { _ = c.SendData(data) }
func (h directCounter) Unbind(*conn.Conn, error)              { h.open.Add(-1) }

// idle100kDirect is TestStressIdle100k on io_uring direct descriptors:
// the server process holds the connections in its rings' file tables, not
// in its descriptor table, so RLIMIT_NOFILE (20,000 here) bounds each loop
// of the group, not the process. The clients run in child processes of
// at most 18,000 connections each, dialling from many 127.x.y.2 source
// addresses. It reports the server's RSS per idle connection at 1k, 10k
// and 100k, then every connection echoes one message (every byte checked)
// and closes.
func idle100kDirect(t *testing.T, n int, hold time.Duration) {
	limit := fdLimit()
	perLoop := int(limit) - 1000 // the kernel caps each table at RLIMIT_NOFILE
	loops := (n*5/4 + perLoop - 1) / perLoop
	testutil.CheckLeaks(t)
	var open atomic.Int64
	g, err := loop.NewGroup(loops, loop.Options{Backend: loop.URing, ListenBacklog: 4096})
	require.NoError(t, err)
	srv, err := g.StartServer("127.0.0.1:0", func(*loop.Loop) conn.Handler { return directCounter{open: &open} })
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- g.Run(func(*loop.Loop) {}) }()
	defer func() {
		g.Stop()
		require.NoError(t, <-errc)
	}()
	addr := srv.Addr().String()

	settle()
	before := rss(t)
	var clients []*echoClient
	defer func() {
		for _, c := range clients {
			c.stop()
		}
	}()
	const childMax = 18_000
	total := 0
	for _, target := range []int{1_000, 10_000, n} {
		start, prev := time.Now(), total
		for total < target {
			k := min(childMax, target-total)
			clients = append(clients, spawnEchoClient(t, addr, k))
			total += k
		}
		deadline := time.Now().Add(120 * time.Second)
		for open.Load() < int64(target) {
			require.True(t, time.Now().Before(deadline), "server holds %d of %d connections", open.Load(), target)
			time.Sleep(time.Millisecond)
		}
		took := time.Since(start)
		settle()
		grown := rss(t) - before
		t.Logf("uring direct, %d loops: %d idle connections, %.0f B/conn RSS; the last %d established in %v (%.0f/s, each client process dialling one at a time)",
			loops, target, float64(grown)/float64(target), target-prev, took.Round(time.Millisecond), float64(target-prev)/took.Seconds())
	}
	time.Sleep(hold)
	require.Equal(t, int64(n), open.Load(), "no connection dropped while idle")

	// One echo over every connection, every byte checked by the clients.
	start := time.Now()
	for _, c := range clients {
		c.send("echo")
	}
	for _, c := range clients {
		line := c.line(t, 120*time.Second)
		require.Equal(t, "echo-ok "+strconv.Itoa(c.n), line)
	}
	t.Logf("one echo over each of %d connections in %v", n, time.Since(start).Round(time.Millisecond))
	for _, c := range clients {
		c.stop()
	}
	clients = nil
	require.Eventually(t, func() bool { return open.Load() == 0 }, 120*time.Second, 10*time.Millisecond)
}

// echoClient is a child process holding n connections (TestHelperEchoClient).
type echoClient struct {
	n     int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  bool
}

// spawnEchoClient starts a child holding n connections to addr and waits
// until it has dialled them all.
func spawnEchoClient(t *testing.T, addr string, n int) *echoClient {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperEchoClient$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("RM_ECHO_CLIENT=%s,%d", addr, n))
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	c := &echoClient{n: n, cmd: cmd, stdin: stdin, lines: make(chan string, 4)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "echo-") || l == "ready" {
				c.lines <- l
			}
		}
		close(c.lines)
	}()
	if l := c.line(t, 120*time.Second); l != "ready" {
		c.stop()
		t.Fatalf("echo client: %q before ready", l)
	}
	return c
}

func (c *echoClient) send(cmd string) { _, _ = io.WriteString(c.stdin, cmd+"\n") }

// line returns the child's next status line, failing after d.
func (c *echoClient) line(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatal("echo client exited")
		}
		return l
	case <-time.After(d):
		t.Fatalf("echo client silent for %v", d)
	}
	return ""
}

// stop closes the child's stdin (it closes its connections and exits) and
// waits for it.
func (c *echoClient) stop() {
	if c.done {
		return
	}
	c.done = true
	c.stdin.Close()
	_ = c.cmd.Wait()
}

// TestHelperEchoClient is the child process of spawnEchoClient: with
// RM_ECHO_CLIENT=addr,n it dials n connections, prints "ready", and on each
// "echo" line from stdin sends a message unique to each connection and
// checks its echo byte for byte ("echo-ok n" or "echo-fail ..."); it closes
// them all when stdin closes. Without it, it does nothing.
func TestHelperEchoClient(t *testing.T) {
	env := os.Getenv("RM_ECHO_CLIENT")
	if env == "" {
		return
	}
	addr, ns, _ := strings.Cut(env, ",")
	n, err := strconv.Atoi(ns)
	require.NoError(t, err)
	cs := dialIdle(t, addr, n)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() != "echo" {
			continue
		}
		bad := ""
		buf := make([]byte, 32)
		for i, c := range cs {
			msg := fmt.Sprintf("%08d:%08d", os.Getpid(), i)
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(c, msg); err != nil {
				bad = fmt.Sprintf("write %d: %v", i, err)
				break
			}
			if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
				bad = fmt.Sprintf("read %d: %v", i, err)
				break
			}
			if string(buf[:len(msg)]) != msg {
				bad = fmt.Sprintf("conn %d: echo %q, want %q", i, buf[:len(msg)], msg)
				break
			}
		}
		if bad != "" {
			fmt.Println("echo-fail " + bad)
		} else {
			fmt.Printf("echo-ok %d\n", len(cs))
		}
	}
	assert.NoError(t, sc.Err())
}
