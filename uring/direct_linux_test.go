package uring

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestDirectDescriptors walks a connection's life on direct descriptors: a
// sparse table, a multishot accept into it, TCP_NODELAY by a socket command, a
// send and a receive on the fixed file, a short-lived installed fd for
// getpeername, and the close of the slot. No process descriptor is taken by
// the connection itself (the installed one is closed at once).
func TestDirectDescriptors(t *testing.T) {
	r := newRing(t, 16, nil)
	require.NoError(t, r.RegisterFilesSparse(8))
	ln, port := listenTCP(t)

	s := sqe(t, r)
	s.PrepAcceptMultishotDirect(ln, unix.SOCK_NONBLOCK)
	s.SetUserData(1)
	c := dialTCP(t, port)
	cqes := reap(t, r, 1)
	require.Equal(t, uint64(1), cqes[0].UserData)
	require.GreaterOrEqual(t, cqes[0].Res, int32(0), "accept: %v", cqes[0].Err())
	require.True(t, cqes[0].More())
	slot := int(cqes[0].Res)
	require.Less(t, slot, 8, "a slot of the table, not an fd")

	one := int32(1)
	var pin runtime.Pinner
	pin.Pin(&one)
	defer pin.Unpin()
	s = sqe(t, r)
	s.PrepSetsockoptInt(slot, unix.IPPROTO_TCP, unix.TCP_NODELAY, &one)
	s.SetFlags(SQEFixedFile)
	s.SetUserData(2)
	cqes = reap(t, r, 1)
	require.Equal(t, int32(0), cqes[0].Res, "setsockopt: %v", cqes[0].Err())

	msg := []byte("direct")
	pin.Pin(&msg[0])
	s = sqe(t, r)
	s.PrepSend(slot, msg, 0)
	s.SetFlags(SQEFixedFile)
	s.SetUserData(3)
	cqes = reap(t, r, 1)
	require.Equal(t, int32(len(msg)), cqes[0].Res)
	assert.Equal(t, msg, readAll(t, c, len(msg)))

	s = sqe(t, r)
	s.PrepFixedFDInstall(slot, 0)
	s.SetUserData(4)
	cqes = reap(t, r, 1)
	require.GreaterOrEqual(t, cqes[0].Res, int32(0), "install: %v", cqes[0].Err())
	fd := int(cqes[0].Res)
	nodelay, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
	require.NoError(t, err)
	assert.Equal(t, 1, nodelay, "set through the socket command")
	peer, err := unix.Getpeername(fd)
	require.NoError(t, err)
	local, err := unix.Getsockname(c)
	require.NoError(t, err)
	assert.Equal(t, local, peer)
	require.NoError(t, unix.Close(fd))

	s = sqe(t, r)
	s.PrepCloseDirect(uint32(slot))
	s.SetUserData(5)
	s2 := sqe(t, r)
	s2.PrepCancel(1, 0)
	s2.SetUserData(6)
	got := byUserData(reap(t, r, 3))
	require.Len(t, got[5], 1)
	assert.Equal(t, int32(0), got[5][0].Res)
	// The peer sees the connection closed.
	buf := make([]byte, 1)
	n, err := unix.Read(c, buf)
	require.NoError(t, err)
	assert.Zero(t, n, "EOF after the direct close")
}

// TestFixedBufferSendZC: a zero-copy send from a slot of the fixed-buffer
// table sends exactly the bytes of the registered buffer it names, from any
// offset in it; a buffer outside the slot or running past its end, or an
// empty slot, fails with -EFAULT instead of sending other memory. Updating a slot outside the table
// or with an empty buffer is an error.
func TestFixedBufferSendZC(t *testing.T) {
	r := newRing(t, 16, nil)
	require.NoError(t, r.RegisterBuffersSparse(2))
	backing := make([]byte, 128<<10)
	buf := backing[:64<<10] // the slot's buffer: the rest lies outside it
	for i := range backing {
		backing[i] = byte(i*7 + i>>8)
	}
	var pin runtime.Pinner
	pin.Pin(&backing[0])
	defer pin.Unpin()
	require.NoError(t, r.UpdateBuffer(1, buf))
	assert.ErrorIs(t, r.UpdateBuffer(2, buf), unix.EINVAL, "slot outside the table")
	assert.ErrorIs(t, r.UpdateBuffer(0, buf[:0]), unix.EINVAL, "empty buffer")
	a, b := tcpPair(t)

	send := func(p []byte, index uint16) int32 {
		t.Helper()
		s := sqe(t, r)
		s.PrepSendZCFixed(a, p, unix.MSG_NOSIGNAL, 0, index)
		s.SetUserData(9)
		c := reap(t, r, 1)[0]
		require.Equal(t, uint64(9), c.UserData)
		require.False(t, c.Notif())
		if c.More() { // a notification follows (a failed send may post one too)
			n := reap(t, r, 1)[0]
			require.True(t, n.Notif(), "notification")
		}
		if c.Res >= 0 {
			require.True(t, c.More(), "a zero-copy send's result comes before its notification")
		}
		return c.Res
	}
	for _, off := range []int{0, 1000, len(buf) - 4096} {
		p := buf[off : off+4096]
		require.Equal(t, int32(len(p)), send(p, 1), "offset %d", off)
		assert.Equal(t, p, readAll(t, b, len(p)), "offset %d", off)
	}
	other := make([]byte, 4096)
	pin.Pin(&other[0])
	assert.Equal(t, -int32(unix.EFAULT), send(other, 1), "a buffer outside the slot")
	assert.Equal(t, -int32(unix.EFAULT), send(buf[:4096], 0), "an empty slot")
	assert.Equal(t, -int32(unix.EFAULT), send(backing[len(buf)-100:len(buf)-100+4096], 1), "a buffer running past the slot's end")
}
