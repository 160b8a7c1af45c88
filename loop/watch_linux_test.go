package loop_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/loop"
)

// pipeWatcher records Readable and Writable calls; on Readable it reads
// what the pipe holds itself, as a watch's owner does.
type pipeWatcher struct {
	t        *testing.T
	readable chan string
	writable chan struct{}
}

func (p *pipeWatcher) Readable(w *loop.Watch) {
	buf := make([]byte, 64)
	n, err := unix.Read(w.FD(), buf)
	if assert.NoError(p.t, err) {
		p.readable <- string(buf[:n])
	}
}

func (p *pipeWatcher) Writable(w *loop.Watch) {
	w.NotifyWritable(false) // once is enough
	p.writable <- struct{}{}
}

// testWatch: a watched pipe's reader is told when it is readable (its
// owner reads) and stops being told when NotifyReadable is off; the
// writer is told it is writable; after Stop nothing more comes and both
// ends are still open; a closed or negative fd and a nil handler are
// refused.
func testWatch(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	pw := &pipeWatcher{t: t, readable: make(chan string, 16), writable: make(chan struct{}, 16)}
	var rw, ww *loop.Watch
	var err error
	g.do(func(l *loop.Loop) {
		rw, err = l.Watch(p[0], pw)
		require.NoError(t, err)
		ww, err = l.Watch(p[1], pw)
		require.NoError(t, err)
		assert.False(t, rw.IsNotifyReadable())
		rw.NotifyReadable(true)
		ww.NotifyWritable(true)
		assert.True(t, rw.IsNotifyReadable())
		assert.True(t, ww.IsNotifyWritable())
	})
	select {
	case <-pw.writable:
	case <-time.After(wait):
		t.Fatal("no Writable")
	}
	for _, msg := range []string{"one", "two"} {
		_, err := unix.Write(p[1], []byte(msg))
		require.NoError(t, err)
		select {
		case got := <-pw.readable:
			assert.Equal(t, msg, got)
		case <-time.After(wait):
			t.Fatal("no Readable")
		}
	}
	g.do(func(*loop.Loop) { rw.NotifyReadable(false) })
	_, err = unix.Write(p[1], []byte("unheard"))
	require.NoError(t, err)
	g.do(func(*loop.Loop) {})
	g.do(func(*loop.Loop) {})
	select {
	case got := <-pw.readable:
		t.Fatalf("Readable after NotifyReadable(false): %q", got)
	case <-time.After(50 * time.Millisecond):
	}
	g.do(func(*loop.Loop) {
		rw.NotifyReadable(true) // the byte waiting is heard now
	})
	select {
	case got := <-pw.readable:
		assert.Equal(t, "unheard", got)
	case <-time.After(wait):
		t.Fatal("no Readable after NotifyReadable(true)")
	}
	g.do(func(*loop.Loop) {
		rw.Stop()
		ww.Stop()
		rw.Stop()
		rw.NotifyReadable(true) // after Stop: nothing
	})
	_, err = unix.Write(p[1], []byte("after stop"))
	require.NoError(t, err)
	g.do(func(*loop.Loop) {})
	select {
	case got := <-pw.readable:
		t.Fatalf("Readable after Stop: %q", got)
	case <-time.After(50 * time.Millisecond):
	}
	for _, fd := range p {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		assert.NoError(t, err, "fd %d is still its owner's", fd)
	}
	g.do(func(l *loop.Loop) {
		_, err := l.Watch(-1, pw)
		assert.ErrorIs(t, err, unix.EBADF)
		closed, _ := unix.Dup(p[0])
		unix.Close(closed)
		_, err = l.Watch(closed, pw)
		assert.ErrorIs(t, err, unix.EBADF)
		_, err = l.Watch(p[0], nil)
		assert.ErrorIs(t, err, loop.ErrNilFunc)
		// A watch still armed when the loop stops ends with it.
		w, err := l.Watch(p[0], pw)
		require.NoError(t, err)
		w.NotifyReadable(true)
	})
	require.NoError(t, g.stop())
	_, err = unix.FcntlInt(uintptr(p[0]), unix.F_GETFD, 0)
	assert.NoError(t, err, "the loop's stop left the watched fd open")
}
