package loop_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

// childHandler records a Popen connection: its output, the calls in order,
// and its Unbind (reason, status) on done.
type childHandler struct {
	conn.Base
	t      *testing.T
	out    bytes.Buffer
	calls  []string
	onInit func(c *conn.Conn)
	onData func(c *conn.Conn)
	done   chan childEnd
}

// childEnd is what a childHandler saw at Unbind.
type childEnd struct {
	out      []byte
	calls    []string
	reason   error
	status   conn.ExitStatus
	statusOK bool
	pid      int
	at       time.Time
}

func newChildHandler(t *testing.T) *childHandler {
	return &childHandler{t: t, done: make(chan childEnd, 2)}
}

func (h *childHandler) PostInit(c *conn.Conn) {
	h.calls = append(h.calls, "PostInit")
	_, ok := c.ExitStatus()
	assert.False(h.t, ok, "no status before the exit")
	if h.onInit != nil {
		h.onInit(c)
	}
}

func (h *childHandler) ReceiveData(c *conn.Conn, data []byte) {
	if len(h.calls) == 0 || h.calls[len(h.calls)-1] != "ReceiveData" {
		h.calls = append(h.calls, "ReceiveData")
	}
	h.out.Write(data)
	if h.onData != nil {
		h.onData(c)
	}
}

func (h *childHandler) Unbind(c *conn.Conn, reason error) {
	h.calls = append(h.calls, "Unbind")
	st, ok := c.ExitStatus()
	h.done <- childEnd{out: bytes.Clone(h.out.Bytes()), calls: h.calls, reason: reason,
		status: st, statusOK: ok, pid: c.PID(), at: time.Now()}
}

// popen starts argv on g's loop with h.
func popen(t *testing.T, g *bgLoop, argv []string, h *childHandler, opts loop.PopenOptions) (*conn.Conn, error) {
	t.Helper()
	var c *conn.Conn
	var err error
	g.do(func(l *loop.Loop) { c, err = l.Popen(argv, h, opts) })
	return c, err
}

// childDone waits for h's Unbind, and checks that no second one follows.
func childDone(t *testing.T, h *childHandler) childEnd {
	t.Helper()
	select {
	case e := <-h.done:
		select {
		case <-h.done:
			t.Error("Unbind twice")
		case <-time.After(20 * time.Millisecond):
		}
		return e
	case <-time.After(wait):
		t.Fatal("no Unbind")
	}
	return childEnd{}
}

// reaped checks that the process pid is gone: not running, not a zombie.
func reaped(t *testing.T, pid int) {
	t.Helper()
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	assert.ErrorIs(t, err, fs.ErrNotExist, "process %d still exists (a zombie?)", pid)
}

// testPopenCat: 10 MB through cat, every byte checked; CloseWrite gives cat
// its EOF while its output keeps coming; Unbind after the exit, io.EOF,
// status 0, PID set and reaped.
func testPopenCat(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	want := make([]byte, 10<<20)
	_, _ = rand.Read(want)
	h := newChildHandler(t)
	h.onInit = func(c *conn.Conn) {
		assert.Positive(t, c.PID())
		require.NoError(t, c.SendData(want))
		require.NoError(t, c.CloseWrite())
	}
	c, err := popen(t, g, []string{"cat"}, h, loop.PopenOptions{})
	require.NoError(t, err)
	e := childDone(t, h)
	assert.Equal(t, len(want), len(e.out))
	assert.True(t, bytes.Equal(want, e.out), "cat's output differs from its input")
	assert.Equal(t, []string{"PostInit", "ReceiveData", "Unbind"}, e.calls)
	assert.Equal(t, io.EOF, e.reason)
	assert.True(t, e.statusOK)
	assert.True(t, e.status.Success(), "%v", e.status)
	g.do(func(*loop.Loop) {
		st, ok := c.ExitStatus()
		assert.True(t, ok, "status readable after Unbind")
		assert.Equal(t, "exit status 0", st.String())
		assert.Equal(t, e.pid, c.PID())
		assert.ErrorIs(t, c.Signal(syscall.SIGTERM), os.ErrProcessDone)
		assert.ErrorIs(t, c.SendData([]byte("x")), conn.ErrClosed)
	})
	reaped(t, e.pid)
}

// testPopenStatus: exit codes and signals reach Unbind as a
// *conn.ExitError that still matches io.EOF, and System succeeds with the
// output and status whatever the code.
func testPopenStatus(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})

	h := newChildHandler(t)
	_, err := popen(t, g, loop.ShellCommand("echo out; exit 3"), h, loop.PopenOptions{})
	require.NoError(t, err)
	e := childDone(t, h)
	assert.Equal(t, "out\n", string(e.out))
	var ee *conn.ExitError
	require.ErrorAs(t, e.reason, &ee)
	assert.Equal(t, conn.ExitStatus{Code: 3}, ee.Status)
	assert.ErrorIs(t, e.reason, io.EOF)
	assert.Equal(t, 3, e.status.Code)
	assert.Contains(t, e.reason.Error(), "exit status 3")

	// Killed by a signal of its own.
	h = newChildHandler(t)
	_, err = popen(t, g, loop.ShellCommand("kill -USR1 $$"), h, loop.PopenOptions{})
	require.NoError(t, err)
	e = childDone(t, h)
	assert.Equal(t, conn.ExitStatus{Code: -1, Signal: syscall.SIGUSR1}, e.status)
	assert.False(t, e.status.Exited())
	assert.Equal(t, "signal: user defined signal 1", e.status.String())

	// Killed by ours (the child ignores its input and runs on).
	h = newChildHandler(t)
	h.onInit = func(c *conn.Conn) {
		_, err := c.Detach()
		assert.ErrorIs(t, err, conn.ErrCannotDetach, "the loop reaps its children")
		require.NoError(t, c.Signal(syscall.SIGKILL))
	}
	_, err = popen(t, g, []string{"sleep", "10"}, h, loop.PopenOptions{})
	require.NoError(t, err)
	e = childDone(t, h)
	assert.Equal(t, syscall.SIGKILL, e.status.Signal)
	reaped(t, e.pid)

	// Standard error apart, read by the loop through an attached pipe.
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	errOut := newChildHandler(t)
	h = newChildHandler(t)
	g.do(func(l *loop.Loop) {
		_, err := l.Popen(loop.ShellCommand("echo out; echo err >&2; exit 2"), h, loop.PopenOptions{Stderr: pw})
		require.NoError(t, err)
		require.NoError(t, pw.Close()) // the child has its copy
		rfd, err := unix.Dup(int(pr.Fd()))
		require.NoError(t, err)
		_, err = l.Attach(rfd, errOut)
		require.NoError(t, err)
	})
	require.NoError(t, pr.Close())
	e = childDone(t, h)
	assert.Equal(t, "out\n", string(e.out))
	assert.Equal(t, 2, e.status.Code)
	eo := childDone(t, errOut)
	assert.Equal(t, "err\n", string(eo.out))
	assert.Equal(t, io.EOF, eo.reason)
	assert.Zero(t, eo.pid, "the pipe is no child's connection")

	// System.
	res := make(chan any, 1)
	g.do(func(l *loop.Loop) {
		d, err := l.System(loop.ShellCommand("cat; echo done; echo err >&2; exit 5"), loop.PopenOptions{MergeStderr: true})
		require.NoError(t, err)
		d.Callback(func(r loop.SystemResult) { res <- r }).Errback(func(err error) { res <- err })
	})
	select {
	case r := <-res:
		require.IsType(t, loop.SystemResult{}, r)
		assert.Equal(t, "done\nerr\n", string(r.(loop.SystemResult).Output), "stdin at EOF at once; stderr merged")
		assert.Equal(t, 5, r.(loop.SystemResult).Status.Code)
	case <-time.After(wait):
		t.Fatal("System did not finish")
	}

	// System past its output limit.
	g.do(func(l *loop.Loop) {
		d, err := l.System([]string{"head", "-c", "10000000", "/dev/zero"}, loop.PopenOptions{MaxOutput: 1000})
		require.NoError(t, err)
		d.Callback(func(r loop.SystemResult) { res <- r }).Errback(func(err error) { res <- err })
	})
	select {
	case r := <-res:
		err, _ := r.(error)
		assert.ErrorIs(t, err, loop.ErrOutputLimit)
	case <-time.After(wait):
		t.Fatal("System did not fail")
	}
}

// seqOutput is what `seq 1 n` prints.
func seqOutput(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.Bytes()
}

// testPopenIgnoresInput: a child that never reads its input and exits
// while we still send: every byte of its output arrives (a send's EPIPE
// does not close the connection before its output is read), and Unbind's
// reason says the input was not all taken.
func testPopenIgnoresInput(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	want := seqOutput(100000) // 588,895 bytes, more than the socket holds
	input := make([]byte, 8<<20)
	h := newChildHandler(t)
	h.onInit = func(c *conn.Conn) { require.NoError(t, c.SendData(input)) }
	// The child writes its output first, then exits without reading.
	_, err := popen(t, g, []string{"seq", "1", "100000"}, h, loop.PopenOptions{})
	require.NoError(t, err)
	e := childDone(t, h)
	require.Equal(t, len(want), len(e.out))
	assert.True(t, bytes.Equal(want, e.out), "the child's output was cut or changed")
	assert.True(t, e.status.Success(), "%v", e.status)
	if e.reason != io.EOF {
		var oe *conn.OpError
		require.ErrorAs(t, e.reason, &oe, "reason %v", e.reason)
		assert.True(t, errors.Is(oe, syscall.EPIPE) || errors.Is(oe, syscall.ECONNRESET), "reason %v", e.reason)
	}
}

// testPopenClosesOutput: a child that closes its output but runs on is
// waited for without signals; its Unbind comes with its own exit code.
func testPopenClosesOutput(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	h := newChildHandler(t)
	start := time.Now()
	_, err := popen(t, g, loop.ShellCommand("echo bye; exec 0<&- 1>&-; sleep 0.8; exit 4"),
		h, loop.PopenOptions{TermAfter: 10 * time.Millisecond})
	require.NoError(t, err)
	e := childDone(t, h)
	assert.Equal(t, "bye\n", string(e.out))
	assert.Equal(t, conn.ExitStatus{Code: 4}, e.status, "not signalled")
	assert.GreaterOrEqual(t, e.at.Sub(start), 700*time.Millisecond, "Unbind waited for the exit")
	assert.ErrorIs(t, e.reason, io.EOF)
}

// testPopenLocalClose: a child still running when this side closes gets
// SIGTERM after TermAfter, and one that ignores it SIGKILL after KillAfter,
// without blocking the loop meanwhile.
func testPopenLocalClose(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	opts := loop.PopenOptions{TermAfter: 50 * time.Millisecond, KillAfter: 100 * time.Millisecond}

	h := newChildHandler(t)
	c, err := popen(t, g, []string{"sleep", "10"}, h, opts)
	require.NoError(t, err)
	g.do(func(*loop.Loop) { require.NoError(t, c.Close()) })
	e := childDone(t, h)
	assert.Equal(t, syscall.SIGTERM, e.status.Signal)
	var ee *conn.ExitError
	require.ErrorAs(t, e.reason, &ee)
	assert.NoError(t, ee.Err, "a local close")

	h = newChildHandler(t)
	ticks := 0
	h.onData = func(c *conn.Conn) {
		// Ready: the trap is set. The loop keeps running while the child
		// is being ended: a periodic timer counts.
		_, _ = loop.Of(c).AddPeriodicTimer(10*time.Millisecond, func() { ticks++ })
		require.NoError(t, c.Close())
	}
	_, err = popen(t, g, loop.ShellCommand("trap '' TERM; echo ready; exec sleep 10"), h, opts)
	require.NoError(t, err)
	e = childDone(t, h)
	assert.Equal(t, syscall.SIGKILL, e.status.Signal, "TERM ignored: KILL")
	g.do(func(*loop.Loop) { assert.GreaterOrEqual(t, ticks, 5, "the loop ran meanwhile") })
	reaped(t, e.pid)
}

// testPopenErrors: a missing or non-executable program, a bad directory,
// an empty argv and a nil handler are errors with no PostInit or Unbind.
func testPopenErrors(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	notExec := filepath.Join(t.TempDir(), "script")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644))
	for _, tc := range []struct {
		argv []string
		opts loop.PopenOptions
		is   error
		msg  string
	}{
		{[]string{"ringmachine-no-such-program"}, loop.PopenOptions{}, exec.ErrNotFound, "ringmachine-no-such-program"},
		{[]string{"/nonexistent/prog"}, loop.PopenOptions{}, fs.ErrNotExist, "/nonexistent/prog"},
		{[]string{notExec}, loop.PopenOptions{}, fs.ErrPermission, notExec},
		{[]string{"true"}, loop.PopenOptions{Dir: "/nonexistent"}, fs.ErrNotExist, "/nonexistent"},
		{nil, loop.PopenOptions{}, nil, "empty argv"},
	} {
		h := newChildHandler(t)
		_, err := popen(t, g, tc.argv, h, tc.opts)
		require.Error(t, err, "%v", tc.argv)
		if tc.is != nil {
			assert.ErrorIs(t, err, tc.is)
		}
		assert.Contains(t, err.Error(), tc.msg)
		assert.Empty(t, h.calls, "no callbacks after an error")
	}
	g.do(func(l *loop.Loop) {
		_, err := l.Popen([]string{"true"}, nil, loop.PopenOptions{})
		assert.ErrorIs(t, err, loop.ErrNilFunc)
		assert.Zero(t, l.ConnectionCount())
	})
	require.NoError(t, g.stop())
	_, err := g.l.Popen([]string{"true"}, newChildHandler(t), loop.PopenOptions{})
	assert.ErrorIs(t, err, loop.ErrLoopStopped)
}

// testPopenMany: 200 children at once, each with its own output and exit
// code.
func testPopenMany(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	const n = 200
	hs := make([]*childHandler, n)
	g.do(func(l *loop.Loop) {
		for i := range hs {
			hs[i] = newChildHandler(t)
			_, err := l.Popen(loop.ShellCommand(fmt.Sprintf("echo child %d; exit %d", i, i%7)), hs[i], loop.PopenOptions{})
			require.NoError(t, err)
		}
		assert.Equal(t, n, l.ConnectionCount())
	})
	for i, h := range hs {
		e := childDone(t, h)
		assert.Equal(t, fmt.Sprintf("child %d\n", i), string(e.out))
		assert.Equal(t, i%7, e.status.Code)
	}
	g.do(func(l *loop.Loop) { assert.Zero(t, l.ConnectionCount()) })
}

// testPopenStop: Stop ends children still running — one that exits on
// SIGTERM, one that ignores it — delivers each Unbind with its status,
// and leaves no zombie; stderr goes to a file when asked.
func testPopenStop(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	errFile, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	require.NoError(t, err)
	defer errFile.Close()
	h1, h2 := newChildHandler(t), newChildHandler(t)
	ready := make(chan struct{})
	h2.onData = func(*conn.Conn) { close(ready) }
	_, err = popen(t, g, []string{"sleep", "10"}, h1, loop.PopenOptions{})
	require.NoError(t, err)
	_, err = popen(t, g, loop.ShellCommand("echo to-stderr >&2; trap '' TERM; echo ready; exec sleep 10"), h2,
		loop.PopenOptions{Stderr: errFile})
	require.NoError(t, err)
	select {
	case <-ready:
	case <-time.After(wait):
		t.Fatal("child not ready")
	}
	start := time.Now()
	require.NoError(t, g.stop())
	assert.Less(t, time.Since(start), 5*time.Second)
	e1, e2 := childDone(t, h1), childDone(t, h2)
	assert.Equal(t, syscall.SIGTERM, e1.status.Signal)
	assert.Equal(t, syscall.SIGKILL, e2.status.Signal)
	reaped(t, e1.pid)
	reaped(t, e2.pid)
	got, err := os.ReadFile(errFile.Name())
	require.NoError(t, err)
	assert.Equal(t, "to-stderr\n", string(got))
	assert.Equal(t, "ready\n", string(e2.out))
	assert.False(t, strings.Contains(string(e2.out), "to-stderr"))
}

// TestPopenWaitidFallback runs a child through the poll-and-waitid(2) path
// on io_uring as well (the path of kernels before 6.7), by making the
// backend refuse IORING_OP_WAITID.
func TestPopenWaitidFallback(t *testing.T) {
	restore := loop.SetTestHookNoWaitid()
	defer restore()
	for _, b := range []loop.Backend{loop.URing, loop.Epoll} {
		t.Run(b.String(), func(t *testing.T) {
			if b == loop.URing && loop.URingAvailable() != nil {
				t.Skip("no io_uring")
			}
			testPopenStatus(t, b)
		})
	}
}
