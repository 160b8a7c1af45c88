//go:build stress

package loop_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// TestStressFDExhaustion runs a 2-loop group echo server (both accept modes,
// both backends) out of file descriptors under load, and checks that it
// recovers. Clients run in a child process (TestHelperFDXClient), so only
// the server's descriptors count against this process's limit:
//
//  1. the child holds `existing` connections; the test then lowers the soft
//     RLIMIT_NOFILE to just above the highest fd in use;
//  2. the child starts `fresh` clients connecting at once (they fill the
//     listen backlog while accept fails with EMFILE) and then streams
//     patterned data over the existing connections, checking every byte:
//     those must complete while the server is still out of descriptors;
//  3. after a hold, the test restores the limit; every fresh client must be
//     accepted and get its own patterned bytes back.
//
// Default: 100 existing × 256 KiB, 300 fresh, 1 s hold; with
// RM_STRESS_FULL=1: 1,000 × 1 MiB, 2,000 fresh, 10 s hold.
func TestStressFDExhaustion(t *testing.T) {
	existing, size, fresh, hold := 100, 256<<10, 300, time.Second
	if stressFull() {
		existing, size, fresh, hold = 1000, 1<<20, 2000, 10*time.Second
	}
	if got, _ := loop.RaiseFileLimit(uint64(existing + fresh + 500)); got < uint64(existing+fresh+500) {
		t.Skipf("needs %d descriptors, the limit is %d", existing+fresh+500, got)
	}
	for _, mode := range []loop.AcceptMode{loop.AcceptReusePort, loop.AcceptHandoff} {
		t.Run(mode.String(), func(t *testing.T) {
			testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
				testutil.CheckLeaks(t)
				testFDExhaustion(t, b, mode, existing, size, fresh, hold)
			})
		})
	}
}

func testFDExhaustion(t *testing.T, b loop.Backend, mode loop.AcceptMode, existing, size, fresh int, hold time.Duration) {
	// The soft limit is lowered before the server starts: io_uring's accept
	// reads RLIMIT_NOFILE when it is prepared (io_accept_prep), so a
	// multishot accept armed under the old limit would never see the new
	// one. It stops at EMFILE, and the server's retry arms it again under
	// whatever limit holds then.
	devNull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer devNull.Close()
	var saved syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved))
	var dummies []int
	restored := false
	restore := func() {
		if !restored {
			restored = true
			require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved))
			for _, fd := range dummies {
				syscall.Close(fd)
			}
			dummies = nil
		}
	}
	defer restore()
	low := saved
	low.Cur = uint64(highestFD(t) + 1 + 64 + existing) // room for the loops and the existing connections
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low))

	var emfile, conns atomic.Int64
	// Process fds: the subject is the process's descriptor table, which
	// direct descriptors do not use (TestDirectTableFull fills theirs).
	g, err := loop.NewGroup(2, loop.Options{Backend: b, Accept: mode, ListenBacklog: 2 * fresh, ErrorHandler: func(err error) {
		if errors.Is(err, syscall.EMFILE) {
			emfile.Add(1)
			return
		}
		t.Errorf("server error: %v", err)
	}, URing: loop.URingOptions{ProcessFDs: true}})
	require.NoError(t, err)
	srv, err := g.StartServer("127.0.0.1:0", func(*loop.Loop) conn.Handler {
		conns.Add(1)
		return &hazardFunc{recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) }}
	})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- g.Run(func(*loop.Loop) {}) }()
	defer func() {
		g.Stop()
		require.NoError(t, <-errc)
	}()

	// The child is a Go program: it raises its own soft limit to the hard
	// one at startup.
	child := startFDXClient(t, fmt.Sprintf("%s,%d,%d,%d", srv.Addr(), existing, size, fresh))
	defer child.stop()
	child.expect(t, "ready", 60*time.Second)
	require.Eventually(t, func() bool { return conns.Load() == int64(existing) }, 30*time.Second, time.Millisecond)

	// Out of descriptors: every one left under the limit is taken.
	for {
		fd, err := syscall.Dup(int(devNull.Fd()))
		if err != nil {
			require.ErrorIs(t, err, syscall.EMFILE)
			break
		}
		dummies = append(dummies, fd)
	}

	child.send(t, "go")
	// The existing connections are served while accept fails.
	child.expect(t, "existing-ok", 120*time.Second)
	require.Eventually(t, func() bool { return emfile.Load() > 0 }, 30*time.Second, time.Millisecond,
		"accept ran out of descriptors")
	time.Sleep(hold)
	assert.Equal(t, int64(existing), conns.Load(), "no fresh client accepted while the server is out of descriptors")
	reports := emfile.Load()
	restore()
	start := time.Now()
	child.expect(t, fmt.Sprintf("fresh-ok %d", fresh), 120*time.Second)
	assert.Equal(t, int64(existing+fresh), conns.Load(), "every fresh client accepted once descriptors are back")
	t.Logf("%s/%s: %d EMFILE reports during exhaustion; %d fresh clients served %v after the limit was restored",
		b, mode, reports, fresh, time.Since(start).Round(time.Millisecond))
}

// highestFD returns the highest descriptor open in this process.
func highestFD(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	top := 0
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			top = max(top, n)
		}
	}
	return top
}

// fdxClient is the child process running TestHelperFDXClient.
type fdxClient struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startFDXClient(t *testing.T, spec string) *fdxClient {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFDXClient$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RM_FDX_CLIENT="+spec)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	c := &fdxClient{cmd: cmd, stdin: stdin, lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c
}

// expect waits for the line want; a "fail:" line or the child's exit fails
// the test.
func (c *fdxClient) expect(t *testing.T, want string, limit time.Duration) {
	t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("client exited before %q", want)
			}
			if strings.HasPrefix(line, "fail:") {
				t.Fatalf("client: %s", line)
			}
			if line == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %q from the client within %v", want, limit)
		}
	}
}

func (c *fdxClient) send(t *testing.T, line string) {
	t.Helper()
	_, err := io.WriteString(c.stdin, line+"\n")
	require.NoError(t, err)
}

func (c *fdxClient) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// TestHelperFDXClient is the child process of TestStressFDExhaustion: with
// RM_FDX_CLIENT=addr,existing,size,fresh it holds existing connections to
// addr ("ready"); on "go" it starts fresh clients connecting, each sending
// 4 KiB of patterned data and checking the echo ("fresh-ok n" once all
// have), and streams size patterned bytes over every existing connection,
// checking the echo ("existing-ok"). Errors are "fail: ..." lines. It exits
// when its stdin closes. Without RM_FDX_CLIENT it does nothing.
func TestHelperFDXClient(t *testing.T) {
	env := os.Getenv("RM_FDX_CLIENT")
	if env == "" {
		return
	}
	f := strings.Split(env, ",")
	if len(f) != 4 {
		fmt.Println("fail: bad RM_FDX_CLIENT", env)
		return
	}
	addr := f[0]
	existing, _ := strconv.Atoi(f[1])
	size, _ := strconv.Atoi(f[2])
	fresh, _ := strconv.Atoi(f[3])
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	cs := make([]net.Conn, 0, existing)
	for range existing {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			say("fail: dial existing: %v", err)
			return
		}
		defer c.Close()
		cs = append(cs, c)
	}
	say("ready")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "go" {
		return
	}

	var freshDone sync.WaitGroup
	var freshOK atomic.Int64
	for id := range fresh {
		freshDone.Add(1)
		go func() {
			defer freshDone.Done()
			if err := echoCheck(addr, nil, existing+id, 4096, 90*time.Second); err != nil {
				say("fail: fresh client %d: %v", id, err)
				return
			}
			freshOK.Add(1)
		}()
	}
	// Give the fresh clients time to fill the backlog and the server time
	// to run out of descriptors before the existing connections stream.
	time.Sleep(200 * time.Millisecond)
	var wg sync.WaitGroup
	var bad atomic.Bool
	for id, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := echoCheck(addr, c, id, size, 60*time.Second); err != nil {
				bad.Store(true)
				say("fail: existing connection %d: %v", id, err)
			}
		}()
	}
	wg.Wait()
	if !bad.Load() {
		say("existing-ok")
	}
	freshDone.Wait()
	say("fresh-ok %d", freshOK.Load())
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// echoCheck sends size patterned bytes (pattern id) over c, or over a new
// connection to addr when c is nil, and checks that the same bytes come
// back.
func echoCheck(addr string, c net.Conn, id, size int, limit time.Duration) error {
	if c == nil {
		var err error
		if c, err = net.DialTimeout("tcp", addr, limit); err != nil {
			return err
		}
		defer c.Close()
	}
	if err := c.SetDeadline(time.Now().Add(limit)); err != nil {
		return err
	}
	werr := make(chan error, 1)
	go func() {
		for off := 0; off < size; off += 8192 {
			if _, err := c.Write(pattern(id, off, min(8192, size-off))); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	buf := make([]byte, 8192)
	for off := 0; off < size; {
		n, err := c.Read(buf[:min(len(buf), size-off)])
		if n > 0 {
			if string(pattern(id, off, n)) != string(buf[:n]) {
				return fmt.Errorf("bytes %d..%d differ", off, off+n)
			}
			off += n
		}
		if err != nil {
			return fmt.Errorf("at %d of %d: %w", off, size, err)
		}
	}
	return <-werr
}
