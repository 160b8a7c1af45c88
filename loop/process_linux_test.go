package loop_test

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/loop"
)

// watchProcess starts a watch of pid on g's loop, reporting the exit on the
// returned channel.
func watchProcess(t *testing.T, g *bgLoop, pid int) (*loop.ProcessWatch, <-chan *loop.ProcessWatch, error) {
	t.Helper()
	exited := make(chan *loop.ProcessWatch, 2)
	var w *loop.ProcessWatch
	var err error
	g.do(func(l *loop.Loop) {
		w, err = l.WatchProcess(pid, loop.ProcessWatcherFunc(func(w *loop.ProcessWatch) {
			assert.True(t, w.Exited())
			exited <- w
		}))
	})
	return w, exited, err
}

// testWatchProcess: a child's exit is reported once, and the child is still
// the parent's to reap; a process that is not a child (a shell's orphaned
// background job) is watched too; an exited, unreaped child is reported at
// once; a stopped watch reports nothing; a process that is gone, a pid
// below 1 and a nil watcher are refused.
func testWatchProcess(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})

	// A child.
	cmd := exec.Command("sleep", "0.1")
	require.NoError(t, cmd.Start())
	w, exited, err := watchProcess(t, g, cmd.Process.Pid)
	require.NoError(t, err)
	select {
	case got := <-exited:
		assert.Same(t, w, got)
		assert.Equal(t, cmd.Process.Pid, got.PID())
	case <-time.After(wait):
		t.Fatal("no ProcessExited")
	}
	require.NoError(t, cmd.Wait(), "the watch does not reap the child")
	assert.True(t, cmd.ProcessState.Success())

	// Not a child: the shell prints its background job's pid and exits.
	sh := exec.Command("sh", "-c", "sleep 0.2 >/dev/null 2>&1 & echo $!")
	out, err := sh.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, sh.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.NoError(t, sh.Wait())
	orphan, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	_, exited, err = watchProcess(t, g, orphan)
	require.NoError(t, err)
	select {
	case got := <-exited:
		assert.Equal(t, orphan, got.PID())
	case <-time.After(wait):
		t.Fatal("no ProcessExited for a process that is not a child")
	}

	// Exited, not reaped yet: at once.
	zombie := exec.Command("true")
	require.NoError(t, zombie.Start())
	time.Sleep(50 * time.Millisecond)
	_, exited, err = watchProcess(t, g, zombie.Process.Pid)
	require.NoError(t, err)
	select {
	case <-exited:
	case <-time.After(wait):
		t.Fatal("no ProcessExited for an exited child")
	}
	require.NoError(t, zombie.Wait())

	// Stopped before the exit: nothing.
	long := exec.Command("sleep", "10")
	require.NoError(t, long.Start())
	w, exited, err = watchProcess(t, g, long.Process.Pid)
	require.NoError(t, err)
	g.do(func(*loop.Loop) { w.Stop(); w.Stop() })
	require.NoError(t, long.Process.Kill())
	_ = long.Wait()
	g.do(func(*loop.Loop) {})
	g.do(func(*loop.Loop) {})
	select {
	case <-exited:
		t.Fatal("ProcessExited after Stop")
	case <-time.After(50 * time.Millisecond):
	}

	// Refused.
	gone := exec.Command("true")
	require.NoError(t, gone.Run()) // exited and reaped: its pid names nothing
	_, _, err = watchProcess(t, g, gone.Process.Pid)
	assert.ErrorIs(t, err, os.ErrProcessDone)
	assert.Contains(t, err.Error(), strconv.Itoa(gone.Process.Pid))
	g.do(func(l *loop.Loop) {
		_, err := l.WatchProcess(0, loop.ProcessWatcherFunc(func(*loop.ProcessWatch) {}))
		assert.Error(t, err, "pid 0")
		_, err = l.WatchProcess(os.Getpid(), nil)
		assert.Error(t, err, "nil watcher")
	})

	// A watch still running when the loop stops ends with it (the leak
	// check sees its pidfd closed).
	long = exec.Command("sleep", "10")
	require.NoError(t, long.Start())
	_, _, err = watchProcess(t, g, long.Process.Pid)
	require.NoError(t, err)
	require.NoError(t, g.stop())
	require.NoError(t, long.Process.Kill())
	_ = long.Wait()
}
