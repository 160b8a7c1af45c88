package epoll

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// testHookEINTR, when set by a test, is called before every system call made
// through ignoringEINTR; returning true makes that attempt fail with EINTR
// without entering the kernel, which exercises the retry path.
var testHookEINTR func() bool

// ignoringEINTR makes call, retrying it while it fails with EINTR. It is the
// package's only EINTR loop (STYLE §6). It counts each attempt in n (nil: do
// not count) for the syscalls/op benchmark metric.
//
// Not for connect(2), whose retry would report EALREADY, nor close(2), which
// on Linux has released the fd even when it reports EINTR.
func ignoringEINTR[T any](n *atomic.Uint64, call func() (T, error)) (T, error) {
	for {
		if h := testHookEINTR; h != nil && h() {
			continue
		}
		if n != nil {
			n.Add(1)
		}
		v, err := call()
		if err != unix.EINTR {
			return v, err
		}
	}
}

// errnoRes turns a system call error into a negative Res (-errno). An error
// that is not an errno (which x/sys does not return) maps to -EIO.
func errnoRes(err error) int32 {
	if errno, ok := err.(unix.Errno); ok {
		return -int32(errno)
	}
	return -int32(unix.EIO)
}

// The reads and sends of the ready path are made with RawSyscall: the
// descriptors are nonblocking, so the call returns within microseconds, and
// the Go scheduler's system-call bookkeeping (entersyscall/exitsyscall) is
// what made them costly. With it, sysmon sees the loop's thread "in a
// system call" on every read and send, keeps waking at its shortest
// interval, retakes the P and hands it to another thread, and the loop's
// locked thread then waits to get a P back: perf showed 23 % of the
// capped echo server's CPU in context switches from sysmon's sleeps, the
// return from those system calls and the P hand-off. Blocking calls
// (epoll_wait) keep Syscall: a thread blocked without releasing its P
// would stall the garbage collector's stop-the-world.

// rawRead is read(2) on a nonblocking fd, without the scheduler's
// bookkeeping (see above). b must be heap memory.
func rawRead(fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(p), uintptr(len(b)))
	runtime.KeepAlive(b)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// rawSendmsg is sendmsg(2) of bufs (at most len(iov) of them) on a
// nonblocking fd with flags, without the scheduler's bookkeeping (see
// above); iov is scratch space for the iovecs and msg for the header, both
// heap memory the caller reuses, as are the buffers.
func rawSendmsg(fd int, bufs [][]byte, iov []unix.Iovec, msg *unix.Msghdr, flags int) (int, error) {
	k := 0
	for _, b := range bufs {
		if len(b) == 0 || k == len(iov) {
			continue
		}
		iov[k] = unix.Iovec{Base: &b[0]}
		iov[k].SetLen(len(b))
		k++
	}
	if k == 0 {
		return 0, nil
	}
	*msg = unix.Msghdr{Iov: &iov[0]}
	msg.SetIovlen(k)
	n, _, errno := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(msg)), uintptr(flags))
	runtime.KeepAlive(bufs)
	clear(iov[:k]) // no pointers into sent buffers stay behind
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
