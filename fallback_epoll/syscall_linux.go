package epoll

import "golang.org/x/sys/unix"

// testEINTREvery, when a test sets it to k > 0, makes every k-th attempt
// through ignoringEINTR (testEINTRAttempts counts them) fail with EINTR
// without entering the kernel, which exercises the retry path; testEINTRs
// counts the failures. Counters rather than a hook function keep
// ignoringEINTR free of a second call, so that it inlines.
var testEINTREvery, testEINTRAttempts, testEINTRs int

// ignoringEINTR makes call, retrying it while it fails with EINTR. It is the
// package's only EINTR loop (STYLE §6). It counts each attempt in n for the
// syscalls/op benchmark metric. It is not generic, and a call that returns
// something else than a count hands back 0: small and of one type, the
// compiler inlines it with its closure into the read and send paths, where
// the generic shape's dictionary call showed in an echo server's profile.
//
// Not for connect(2), whose retry would report EALREADY, nor close(2), which
// on Linux has released the fd even when it reports EINTR.
func ignoringEINTR(n *uint64, call func() (int, error)) (int, error) {
	for {
		if testEINTREvery > 0 {
			testEINTRAttempts++
			if testEINTRAttempts%testEINTREvery == 0 {
				testEINTRs++
				continue
			}
		}
		*n++
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
