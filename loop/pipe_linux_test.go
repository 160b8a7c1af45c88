package loop_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

// pipePair returns a blocking pipe, both ends close-on-exec.
func pipePair(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	return p[0], p[1]
}

// testAttachPipe: Attach adopts pipe and FIFO ends. 10 MB written into a
// pipe arrive, every byte checked, at the ReceiveData of its attached read
// end, whose Unbind is io.EOF when the writer closes; 10 MB sent with
// SendData and a file sent with SendFile through an attached write end
// reach the reader intact before the EOF of CloseAfterWriting; CloseWrite
// of a write end closes it once its queue is written; a write end whose
// reader is gone ends with an *conn.OpError wrapping EPIPE (and the test
// process lives on); a read end refuses to send, with an error saying why;
// a FIFO made with mkfifo works both ways.
func testAttachPipe(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})

	// Read end: 10 MB in, checked with sha256, then the writer's EOF.
	const size = 10 << 20
	in := randomBytes(t, size)
	r, w := pipePair(t)
	ev := make(chan event, 16)
	hash := sha256.New()
	got := 0
	g.do(func(l *loop.Loop) {
		h := &handler{t: t, ev: ev}
		h.receive = func(c *conn.Conn, data []byte) {
			hash.Write(data)
			got += len(data)
		}
		c, err := l.Attach(r, h)
		require.NoError(t, err)
		assert.Nil(t, c.LocalAddr(), "a pipe has no address")
		assert.Nil(t, c.RemoteAddr(), "a pipe has no address")
		err = c.SendData([]byte("x"))
		assert.ErrorIs(t, err, conn.ErrClosed, "the read end cannot send")
		assert.ErrorContains(t, err, "read end")
		assert.ErrorIs(t, c.SendFile("/dev/null"), conn.ErrClosed)
	})
	expectKind(t, ev, "post_init")
	wf := os.NewFile(uintptr(w), "pipe-w")
	writeErr := make(chan error, 1)
	go func() {
		_, err := wf.Write(in)
		writeErr <- errors.Join(err, wf.Close())
	}()
	u := expectKind(t, ev, "unbind")
	assert.ErrorIs(t, u.err, io.EOF)
	require.NoError(t, <-writeErr)
	want := sha256.Sum256(in)
	assert.Equal(t, size, got, "bytes received")
	assert.Equal(t, want[:], hash.Sum(nil), "sha256 of what was received")

	// Write end: 10 MB with SendData, then a file with SendFile, then
	// CloseAfterWriting.
	file := randomBytes(t, 1<<20+17)
	path := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(path, file, 0o600))
	r, w = pipePair(t)
	rf := os.NewFile(uintptr(r), "pipe-r")
	defer rf.Close()
	out := randomBytes(t, size)
	g.do(func(l *loop.Loop) {
		h := &handler{t: t, ev: ev}
		c, err := l.Attach(w, h)
		require.NoError(t, err)
		for p := out; len(p) > 0; p = p[min(len(p), 100000):] {
			require.NoError(t, c.SendData(p[:min(len(p), 100000)]))
		}
		require.NoError(t, c.SendFile(path))
		require.NoError(t, c.CloseAfterWriting())
	})
	expectKind(t, ev, "post_init")
	all, err := io.ReadAll(rf)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(append(bytes.Clone(out), file...), all), "%d bytes read of %d written", len(all), len(out)+len(file))
	assert.NoError(t, expectKind(t, ev, "unbind").err)

	// CloseWrite of a write end: closed once its queue is written.
	r, w = pipePair(t)
	rf2 := os.NewFile(uintptr(r), "pipe-r")
	defer rf2.Close()
	g.do(func(l *loop.Loop) {
		c, err := l.Attach(w, &handler{t: t, ev: ev})
		require.NoError(t, err)
		require.NoError(t, c.SendData([]byte("last words")))
		require.NoError(t, c.CloseWrite())
		assert.ErrorIs(t, c.SendData([]byte("more")), conn.ErrClosed)
	})
	expectKind(t, ev, "post_init")
	all, err = io.ReadAll(rf2)
	require.NoError(t, err)
	assert.Equal(t, "last words", string(all))
	assert.NoError(t, expectKind(t, ev, "unbind").err)

	// The reader gone: EPIPE, not a dead process.
	r, w = pipePair(t)
	require.NoError(t, unix.Close(r))
	g.do(func(l *loop.Loop) {
		c, err := l.Attach(w, &handler{t: t, ev: ev})
		require.NoError(t, err)
		require.NoError(t, c.SendData([]byte("nobody listens")))
	})
	expectKind(t, ev, "post_init")
	u = expectKind(t, ev, "unbind")
	var op *conn.OpError
	require.ErrorAs(t, u.err, &op)
	assert.Equal(t, "write", op.Op)
	assert.ErrorIs(t, u.err, unix.EPIPE)

	// A FIFO: its read end attached, then its write end.
	fifo := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, unix.Mkfifo(fifo, 0o600))
	fr, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	fw, err := unix.Open(fifo, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	g.do(func(l *loop.Loop) {
		_, err := l.Attach(fr, &handler{t: t, ev: ev})
		require.NoError(t, err)
	})
	expectKind(t, ev, "post_init")
	_, err = unix.Write(fw, []byte("through a fifo"))
	require.NoError(t, err)
	require.NoError(t, unix.Close(fw))
	data, u := collectData(t, ev)
	assert.Equal(t, "through a fifo", data)
	assert.ErrorIs(t, u.err, io.EOF)

	fr, err = unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, unix.SetNonblock(fr, false))
	frf := os.NewFile(uintptr(fr), "fifo-r")
	defer frf.Close()
	fw, err = unix.Open(fifo, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	g.do(func(l *loop.Loop) {
		c, err := l.Attach(fw, &handler{t: t, ev: ev})
		require.NoError(t, err)
		require.NoError(t, c.SendData([]byte("into a fifo")))
		require.NoError(t, c.CloseAfterWriting())
	})
	expectKind(t, ev, "post_init")
	all, err = io.ReadAll(frf)
	require.NoError(t, err)
	assert.Equal(t, "into a fifo", string(all))
	assert.NoError(t, expectKind(t, ev, "unbind").err)

	require.NoError(t, g.stop())
}
