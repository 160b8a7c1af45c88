package epoll

import (
	"sync/atomic"

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
