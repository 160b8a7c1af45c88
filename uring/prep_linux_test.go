package uring

import (
	"bytes"
	"encoding/binary"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/internal/leakcheck"
)

func TestTimeout(t *testing.T) {
	r := newRing(t, 8, nil)
	ts := NewTimespec(50 * time.Millisecond)
	s := sqe(t, r)
	s.PrepTimeout(&ts, 0, 0)
	s.SetUserData(1)
	start := time.Now()
	c := reap(t, r, 1)[0]
	assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond)
	assert.Equal(t, uint64(1), c.UserData)
	assert.ErrorIs(t, c.Err(), unix.ETIME)
	runtime.KeepAlive(&ts)
}

func TestTimeoutRemove(t *testing.T) {
	r := newRing(t, 8, nil)
	ts := NewTimespec(10 * time.Second)
	s := sqe(t, r)
	s.PrepTimeout(&ts, 0, 0)
	s.SetUserData(1)
	_, err := r.Submit()
	require.NoError(t, err)
	s = sqe(t, r)
	s.PrepTimeoutRemove(1, 0)
	s.SetUserData(2)
	m := byUserData(reap(t, r, 2))
	assert.ErrorIs(t, m[1][0].Err(), unix.ECANCELED)
	assert.NoError(t, m[2][0].Err())
	runtime.KeepAlive(&ts)
}

func TestLinkTimeoutCancelsRecv(t *testing.T) {
	r := newRing(t, 8, nil)
	a, _ := socketpair(t)
	buf := make([]byte, 16)
	ts := NewTimespec(20 * time.Millisecond)
	s := sqe(t, r)
	s.PrepRecv(a, buf, 0)
	s.SetFlags(SQEIOLink)
	s.SetUserData(1)
	s = sqe(t, r)
	s.PrepLinkTimeout(&ts, 0)
	s.SetUserData(2)
	m := byUserData(reap(t, r, 2))
	assert.ErrorIs(t, m[1][0].Err(), unix.ECANCELED)
	assert.ErrorIs(t, m[2][0].Err(), unix.ETIME)
	runtime.KeepAlive(buf)
	runtime.KeepAlive(&ts)
}

func TestLinkTimeoutUpdate(t *testing.T) {
	r := newRing(t, 8, nil)
	a, _ := socketpair(t)
	buf := make([]byte, 16)
	ts := NewTimespec(time.Hour)
	s := sqe(t, r)
	s.PrepRecv(a, buf, 0)
	s.SetFlags(SQEIOLink)
	s.SetUserData(1)
	s = sqe(t, r)
	s.PrepLinkTimeout(&ts, 0)
	s.SetUserData(2)
	upd := NewTimespec(20 * time.Millisecond)
	s = sqe(t, r)
	s.PrepTimeoutUpdate(&upd, 2, TimeoutLinkTimeoutUpdate)
	s.SetUserData(3)
	start := time.Now()
	m := byUserData(reap(t, r, 3))
	assert.NoError(t, m[3][0].Err(), "the update finds the armed linked timeout")
	assert.ErrorIs(t, m[1][0].Err(), unix.ECANCELED)
	assert.ErrorIs(t, m[2][0].Err(), unix.ETIME)
	assert.Less(t, time.Since(start), 10*time.Second, "the hour-long timeout was shortened")
	runtime.KeepAlive(buf)
	runtime.KeepAlive(&ts)
	runtime.KeepAlive(&upd)
}

func TestCancel(t *testing.T) {
	t.Run("UserData", func(t *testing.T) {
		r := newRing(t, 8, nil)
		a, _ := socketpair(t)
		buf := make([]byte, 16)
		s := sqe(t, r)
		s.PrepRecv(a, buf, 0)
		s.SetUserData(1)
		_, err := r.Submit()
		require.NoError(t, err)
		s = sqe(t, r)
		s.PrepCancel(1, 0)
		s.SetUserData(2)
		m := byUserData(reap(t, r, 2))
		assert.ErrorIs(t, m[1][0].Err(), unix.ECANCELED)
		assert.Equal(t, int32(0), m[2][0].Res)
		runtime.KeepAlive(buf)
	})
	t.Run("FD", func(t *testing.T) {
		r := newRing(t, 8, nil)
		a, _ := socketpair(t)
		b1, b2 := make([]byte, 16), make([]byte, 16)
		for i, b := range [][]byte{b1, b2} {
			s := sqe(t, r)
			s.PrepRecv(a, b, 0)
			s.SetUserData(uint64(10 + i))
		}
		_, err := r.Submit()
		require.NoError(t, err)
		s := sqe(t, r)
		s.PrepCancelFD(a, CancelAll)
		s.SetUserData(2)
		m := byUserData(reap(t, r, 3))
		assert.ErrorIs(t, m[10][0].Err(), unix.ECANCELED)
		assert.ErrorIs(t, m[11][0].Err(), unix.ECANCELED)
		assert.Equal(t, int32(2), m[2][0].Res)
		runtime.KeepAlive(b1)
		runtime.KeepAlive(b2)
	})
	t.Run("NotFound", func(t *testing.T) {
		r := newRing(t, 8, nil)
		s := sqe(t, r)
		s.PrepCancel(99, 0)
		assert.ErrorIs(t, reap(t, r, 1)[0].Err(), unix.ENOENT)
	})
}

func TestPoll(t *testing.T) {
	r := newRing(t, 8, nil)
	rd, wr := pipe(t)
	s := sqe(t, r)
	s.PrepPollAdd(rd, unix.POLLIN)
	s.SetUserData(1)
	_, err := r.Submit()
	require.NoError(t, err)
	_, err = unix.Write(wr, []byte("x"))
	require.NoError(t, err)
	c := reap(t, r, 1)[0]
	assert.NotZero(t, c.Res&unix.POLLIN)
	assert.False(t, c.More())

	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	require.NoError(t, err)
	closeOnCleanup(t, efd)
	s = sqe(t, r)
	s.PrepPollMultishot(efd, unix.POLLIN)
	s.SetUserData(2)
	_, err = r.Submit()
	require.NoError(t, err)
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	var v [8]byte
	for range 2 {
		_, err = unix.Write(efd, one)
		require.NoError(t, err)
		c = reap(t, r, 1)[0]
		assert.Equal(t, uint64(2), c.UserData)
		assert.True(t, c.More())
		_, err = unix.Read(efd, v[:])
		require.NoError(t, err)
	}
	s = sqe(t, r)
	s.PrepPollRemove(2)
	s.SetUserData(3)
	m := byUserData(reap(t, r, 2))
	assert.ErrorIs(t, m[2][0].Err(), unix.ECANCELED)
	assert.False(t, m[2][0].More())
	assert.NoError(t, m[3][0].Err())
}

func TestRead(t *testing.T) {
	r := newRing(t, 8, nil)
	rd, wr := pipe(t)
	_, err := unix.Write(wr, []byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 16)
	s := sqe(t, r)
	s.PrepRead(rd, buf, ^uint64(0))
	c := reap(t, r, 1)[0]
	require.Equal(t, int32(5), c.Res)
	assert.Equal(t, "hello", string(buf[:5]))

	path := t.TempDir() + "/f"
	require.NoError(t, os.WriteFile(path, []byte("0123456789"), 0o600))
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	closeOnCleanup(t, fd)
	s = sqe(t, r)
	s.PrepRead(fd, buf[:4], 3)
	c = reap(t, r, 1)[0]
	require.Equal(t, int32(4), c.Res)
	assert.Equal(t, "3456", string(buf[:4]))
	runtime.KeepAlive(buf)
}

func TestAcceptMultishot(t *testing.T) {
	r := newRing(t, 8, nil)
	ln, port := listenTCP(t)
	s := sqe(t, r)
	s.PrepAcceptMultishot(ln, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
	s.SetUserData(1)
	_, err := r.Submit()
	require.NoError(t, err)
	var clients []int
	for range 3 {
		clients = append(clients, dialTCP(t, port))
	}
	cqes := reap(t, r, 3)
	for i, c := range cqes {
		require.NoError(t, c.Err())
		assert.True(t, c.More())
		fd := int(c.Res)
		closeOnCleanup(t, fd)
		peer, err := unix.Getpeername(fd)
		require.NoError(t, err)
		local, err := unix.Getsockname(clients[i])
		require.NoError(t, err)
		assert.Equal(t, local.(*unix.SockaddrInet4).Port, peer.(*unix.SockaddrInet4).Port)
	}
	s = sqe(t, r)
	s.PrepCancel(1, 0)
	s.SetUserData(2)
	m := byUserData(reap(t, r, 2))
	assert.ErrorIs(t, m[1][0].Err(), unix.ECANCELED)
	assert.False(t, m[1][0].More())

	// One-shot accept.
	s = sqe(t, r)
	s.PrepAccept(ln, unix.SOCK_CLOEXEC)
	_, err = r.Submit()
	require.NoError(t, err)
	dialTCP(t, port)
	c := reap(t, r, 1)[0]
	require.NoError(t, c.Err())
	assert.False(t, c.More())
	closeOnCleanup(t, int(c.Res))
}

func TestConnect(t *testing.T) {
	r := newRing(t, 8, nil)
	ln, port := listenTCP(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	closeOnCleanup(t, fd)
	var sa Sockaddr
	require.NoError(t, sa.Set(&unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}))
	s := sqe(t, r)
	s.PrepConnect(fd, &sa)
	require.NoError(t, reap(t, r, 1)[0].Err())
	nfd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
	require.NoError(t, err)
	closeOnCleanup(t, nfd)

	// Refused: connect to the now-closed listener's port.
	require.NoError(t, unix.Close(ln))
	fd2, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	closeOnCleanup(t, fd2)
	s = sqe(t, r)
	s.PrepConnect(fd2, &sa)
	assert.ErrorIs(t, reap(t, r, 1)[0].Err(), unix.ECONNREFUSED)
	runtime.KeepAlive(&sa)
}

func TestConnectUnixAbstract(t *testing.T) {
	r := newRing(t, 8, nil)
	name := "@ringmachine-test-" + time.Now().Format("150405.000000000")
	ln, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	closeOnCleanup(t, ln)
	require.NoError(t, unix.Bind(ln, &unix.SockaddrUnix{Name: name}))
	require.NoError(t, unix.Listen(ln, 4))
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	closeOnCleanup(t, fd)
	var sa Sockaddr
	require.NoError(t, sa.Set(&unix.SockaddrUnix{Name: name}))
	assert.Equal(t, uint32(2+len(name)), sa.Len())
	s := sqe(t, r)
	s.PrepConnect(fd, &sa)
	require.NoError(t, reap(t, r, 1)[0].Err())
	runtime.KeepAlive(&sa)
}

func TestSockaddr(t *testing.T) {
	var sa Sockaddr
	require.NoError(t, sa.Set(&unix.SockaddrInet4{Addr: [4]byte{10, 0, 0, 1}, Port: 0x1234}))
	assert.Equal(t, uint32(16), sa.Len())
	assert.Equal(t, []byte{0x12, 0x34, 10, 0, 0, 1}, sa.Bytes()[2:8])

	require.NoError(t, sa.Set(&unix.SockaddrInet6{Addr: [16]byte{15: 1}, Port: 80, ZoneId: 3}))
	assert.Equal(t, uint32(28), sa.Len())
	assert.Equal(t, []byte{0, 80}, sa.Bytes()[2:4])
	assert.Equal(t, byte(1), sa.Bytes()[23])

	require.NoError(t, sa.Set(&unix.SockaddrUnix{Name: "/tmp/x"}))
	assert.Equal(t, uint32(2+6+1), sa.Len())
	require.NoError(t, sa.Set(&unix.SockaddrUnix{Name: "@abs"}))
	assert.Equal(t, []byte{0, 'a', 'b', 's'}, sa.Bytes()[2:])

	assert.ErrorIs(t, sa.Set(&unix.SockaddrUnix{Name: string(make([]byte, 108))}), unix.EINVAL)
	assert.ErrorIs(t, sa.Set(&unix.SockaddrNetlink{}), unix.EAFNOSUPPORT)
	assert.ErrorIs(t, sa.Set(nil), unix.EAFNOSUPPORT)
	assert.Zero(t, sa.Len())
}

// TestSockaddrDecode decodes what Set encodes, for every family, and
// refuses lengths and families it cannot read.
func TestSockaddrDecode(t *testing.T) {
	for _, in := range []unix.Sockaddr{
		&unix.SockaddrInet4{Addr: [4]byte{10, 0, 0, 1}, Port: 0x1234},
		&unix.SockaddrInet6{Addr: [16]byte{0: 0xfe, 15: 1}, Port: 80, ZoneId: 3},
		&unix.SockaddrUnix{Name: "/tmp/x"},
		&unix.SockaddrUnix{Name: "@abs"},
	} {
		var sa Sockaddr
		require.NoError(t, sa.Set(in))
		out, err := sa.Decode(sa.Len())
		require.NoError(t, err)
		assert.Equal(t, in, out)
	}
	var sa Sockaddr
	out, err := sa.Decode(0)
	assert.NoError(t, err)
	assert.Nil(t, out, "an unnamed sender")
	require.NoError(t, sa.Set(&unix.SockaddrInet4{}))
	_, err = sa.Decode(8)
	assert.ErrorIs(t, err, unix.EINVAL, "too short for its family")
	_, err = sa.Decode(129)
	assert.ErrorIs(t, err, unix.EINVAL, "beyond the buffer")
	p, n := sa.Storage()
	assert.Equal(t, uint32(128), n)
	binary.NativeEndian.PutUint16(unsafe.Slice(p, 2), unix.AF_NETLINK)
	_, err = sa.Decode(12)
	assert.ErrorIs(t, err, unix.EAFNOSUPPORT)
}

func TestSend(t *testing.T) {
	r := newRing(t, 8, nil)
	a, b := socketpair(t)
	msg := []byte("send me")
	s := sqe(t, r)
	s.PrepSend(a, msg, 0)
	c := reap(t, r, 1)[0]
	require.Equal(t, int32(len(msg)), c.Res)
	assert.Equal(t, msg, readAll(t, b, len(msg)))
	runtime.KeepAlive(msg)
}

func TestRecv(t *testing.T) {
	r := newRing(t, 8, nil)
	a, b := socketpair(t)
	_, err := unix.Write(b, []byte("abc"))
	require.NoError(t, err)
	buf := make([]byte, 8)
	s := sqe(t, r)
	s.PrepRecv(a, buf, 0)
	c := reap(t, r, 1)[0]
	require.Equal(t, int32(3), c.Res)
	assert.Equal(t, "abc", string(buf[:3]))
	runtime.KeepAlive(buf)
}

func TestSendmsg(t *testing.T) {
	r := newRing(t, 8, nil)
	a, b := socketpair(t)
	p1, p2 := []byte("hello, "), []byte("world")
	iov := []unix.Iovec{
		{Base: unsafe.SliceData(p1), Len: uint64(len(p1))},
		{Base: unsafe.SliceData(p2), Len: uint64(len(p2))},
	}
	msg := &unix.Msghdr{Iov: unsafe.SliceData(iov), Iovlen: uint64(len(iov))}
	var pin runtime.Pinner
	pin.Pin(msg)
	pin.Pin(unsafe.SliceData(iov))
	pin.Pin(unsafe.SliceData(p1))
	pin.Pin(unsafe.SliceData(p2))
	defer pin.Unpin()
	s := sqe(t, r)
	s.PrepSendmsg(a, msg, 0)
	c := reap(t, r, 1)[0]
	require.Equal(t, int32(12), c.Res)
	assert.Equal(t, "hello, world", string(readAll(t, b, 12)))
}

func TestSendZC(t *testing.T) {
	r := newRing(t, 8, nil)
	a, b := tcpPair(t)
	msg := bytes.Repeat([]byte("z"), 4096)
	s := sqe(t, r)
	s.PrepSendZC(a, msg, 0, 0)
	s.SetUserData(5)
	cqes := reap(t, r, 2)
	assert.Equal(t, int32(len(msg)), cqes[0].Res)
	assert.True(t, cqes[0].More())
	assert.False(t, cqes[0].Notif())
	assert.True(t, cqes[1].Notif())
	assert.False(t, cqes[1].More())
	assert.Equal(t, uint64(5), cqes[1].UserData)
	assert.Equal(t, msg, readAll(t, b, len(msg)))
	runtime.KeepAlive(msg)

	// AF_UNIX cannot zero-copy.
	u, _ := socketpair(t)
	s = sqe(t, r)
	s.PrepSendZC(u, msg, 0, 0)
	c := reap(t, r, 1)[0]
	assert.ErrorIs(t, c.Err(), unix.EOPNOTSUPP)
}

func TestWritev(t *testing.T) {
	r := newRing(t, 8, nil)
	rd, wr := pipe(t)
	p1, p2 := []byte("ab"), []byte("cde")
	iov := []unix.Iovec{
		{Base: unsafe.SliceData(p1), Len: uint64(len(p1))},
		{Base: unsafe.SliceData(p2), Len: uint64(len(p2))},
	}
	s := sqe(t, r)
	s.PrepWritev(wr, iov, ^uint64(0))
	c := reap(t, r, 1)[0]
	require.Equal(t, int32(5), c.Res)
	assert.Equal(t, "abcde", string(readAll(t, rd, 5)))
	runtime.KeepAlive(iov)
	runtime.KeepAlive(p1)
	runtime.KeepAlive(p2)
}

func TestWrite(t *testing.T) {
	r := newRing(t, 8, nil)
	rd, wr := pipe(t)
	msg := []byte("write")
	s := sqe(t, r)
	s.PrepWrite(wr, msg, ^uint64(0))
	require.Equal(t, int32(5), reap(t, r, 1)[0].Res)
	assert.Equal(t, msg, readAll(t, rd, 5))
}

func TestSpliceFileToSocket(t *testing.T) {
	r := newRing(t, 8, nil)
	content := bytes.Repeat([]byte("0123456789abcdef"), 64)
	path := t.TempDir() + "/f"
	require.NoError(t, os.WriteFile(path, content, 0o600))
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	closeOnCleanup(t, fd)
	prd, pwr := pipe(t)
	a, b := socketpair(t)

	// file -> pipe, linked to pipe -> socket.
	s := sqe(t, r)
	s.PrepSplice(fd, 0, pwr, -1, uint32(len(content)), 0)
	s.SetFlags(SQEIOLink)
	s.SetUserData(1)
	s = sqe(t, r)
	s.PrepSplice(prd, -1, a, -1, uint32(len(content)), 0)
	s.SetUserData(2)
	m := byUserData(reap(t, r, 2))
	assert.Equal(t, int32(len(content)), m[1][0].Res)
	assert.Equal(t, int32(len(content)), m[2][0].Res)
	assert.Equal(t, content, readAll(t, b, len(content)))
}

func TestShutdown(t *testing.T) {
	r := newRing(t, 8, nil)
	a, b := socketpair(t)
	s := sqe(t, r)
	s.PrepShutdown(a, unix.SHUT_WR)
	require.NoError(t, reap(t, r, 1)[0].Err())
	var buf [4]byte
	n, err := unix.Read(b, buf[:])
	require.NoError(t, err)
	assert.Zero(t, n, "peer should see EOF")
}

func TestClose(t *testing.T) {
	r := newRing(t, 8, nil)
	leakcheck.Check(t)
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	for _, fd := range p {
		s := sqe(t, r)
		s.PrepClose(fd)
	}
	for _, c := range reap(t, r, 2) {
		require.NoError(t, c.Err())
	}
	_, err := unix.FcntlInt(uintptr(p[0]), unix.F_GETFD, 0)
	assert.ErrorIs(t, err, unix.EBADF)
}

func TestMsgRing(t *testing.T) {
	src := newRing(t, 8, nil)
	dst := newRing(t, 8, nil)
	s := sqe(t, src)
	s.PrepMsgRing(dst.FD(), 42, 0xdead, 0)
	s.SetUserData(1)
	c := reap(t, src, 1)[0]
	require.NoError(t, c.Err())
	got := reap(t, dst, 1)[0]
	assert.Equal(t, uint64(0xdead), got.UserData)
	assert.Equal(t, int32(42), got.Res)
}

// TestWaitid reaps a child through IORING_OP_WAITID on its pidfd and reads
// its exit code from the siginfo the kernel filled.
func TestWaitid(t *testing.T) {
	r := newRing(t, 8, nil)
	pidfd := -1
	p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", "exit 7"}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{PidFD: &pidfd},
	})
	require.NoError(t, err)
	childPid := p.Pid
	require.NoError(t, p.Release())
	require.GreaterOrEqual(t, pidfd, 0)
	closeOnCleanup(t, pidfd)
	info := new(unix.Siginfo)
	s := sqe(t, r)
	s.PrepWaitid(unix.P_PIDFD, pidfd, info, unix.WEXITED)
	s.SetUserData(1)
	_, err = r.Submit()
	require.NoError(t, err)
	c := reap(t, r, 1)[0]
	require.NoError(t, c.Err())
	runtime.KeepAlive(info)
	assert.Equal(t, int32(unix.SIGCHLD), info.Signo)
	assert.Equal(t, int32(1), info.Code, "CLD_EXITED")
	pid, st := WaitidStatus(info)
	assert.Equal(t, childPid, pid, "si_pid")
	assert.Equal(t, 7, st, "si_status")

	// Reaped: a second wait finds no child.
	s = sqe(t, r)
	s.PrepWaitid(unix.P_PIDFD, pidfd, info, unix.WEXITED|unix.WNOHANG)
	s.SetUserData(2)
	_, err = r.Submit()
	require.NoError(t, err)
	assert.ErrorIs(t, reap(t, r, 1)[0].Err(), unix.ECHILD)
}
