package engine

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/uring"
)

// bundleReorders reports whether the running kernel is one of those whose
// bundled multishot receives can hand out buffers out of order, which would
// reorder a stream: 6.13.11 up to 6.13's last release and 6.14 before
// 6.14.9, by the reports around liburing's recv-bundle-short-ooo test
// (liburing issue #1409; fixed in 6.14.9). New turns Options.RecvBundle off
// there. A release it cannot parse is not one of them.
func bundleReorders() bool {
	v, ok := kernelRelease()
	return ok && releaseReordersBundles(v)
}

// releaseReordersBundles is bundleReorders for a kernel version.
func releaseReordersBundles(v [3]int) bool {
	switch {
	case v[0] != 6:
		return false
	case v[1] == 13:
		return v[2] >= 11
	case v[1] == 14:
		return v[2] < 9
	}
	return false
}

// kernelRelease returns the running kernel's version from uname.
func kernelRelease() ([3]int, bool) {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return [3]int{}, false
	}
	return parseRelease(unix.ByteSliceToString(u.Release[:]))
}

// parseRelease reads major, minor and patch from a uname release such as
// "6.14.7-arch1-1" (patch 0 when missing, as in "6.14-rc1").
func parseRelease(release string) ([3]int, bool) {
	var v [3]int
	for i, f := range strings.SplitN(release, ".", 3) {
		// Each field up to its first non-digit ("7-arch1-1" is 7).
		end := strings.IndexFunc(f, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(f)
		}
		n, err := strconv.Atoi(f[:end])
		if err != nil {
			if i < 2 {
				return v, false
			}
			n = 0 // "6.14-rc1": no patch level
		}
		v[i] = n
		if end < len(f) {
			break // "6.14-rc1": the rest is not the version
		}
	}
	return v, true
}

// probeBundleCap reports whether the kernel takes a multishot receive that
// is both bundled and capped (sqe->len, the per-completion cap of Linux
// 6.11-era kernels; before it, a multishot RECV with a length fails with
// EINVAL). It receives one byte and the end of stream from a socket pair of
// its own through br, before the engine hands out its first SQE, and gives
// the buffer back. Errors are the system calls'; a kernel without the cap
// is (false, nil).
func probeBundleCap(r *uring.Ring, br *uring.BufRing) (bool, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("engine: bundle probe: socketpair: %w", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if _, err := unix.Write(fds[1], []byte{1}); err != nil {
		return false, fmt.Errorf("engine: bundle probe: write: %w", err)
	}
	if err := unix.Shutdown(fds[1], unix.SHUT_WR); err != nil {
		return false, fmt.Errorf("engine: bundle probe: shutdown: %w", err)
	}
	s, ok := r.GetSQE()
	if !ok {
		return false, fmt.Errorf("engine: bundle probe: submission queue full: %w", unix.EBUSY)
	}
	s.PrepRecvMultishot(fds[0], 0)
	s.SetBufGroup(br.Group())
	s.SetIOPrio(uring.RecvsendBundle)
	s.Len = uint32(bundleBuffers * br.BufSize())
	s.SetUserData(tokIgnore)
	// The byte, then the end of stream, or one EINVAL: a final CQE either
	// way, posted during the submission or soon after.
	var cqes [4]uring.CQE
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := r.SubmitAndWait(1, 100*time.Millisecond); err != nil {
			return false, fmt.Errorf("engine: bundle probe: %w", err)
		}
		for _, c := range cqes[:r.PeekCQEs(cqes[:])] {
			if id, ok := c.BufferID(); ok {
				br.Recycle(id)
			}
			if !c.More() {
				return c.Res >= 0, nil
			}
		}
	}
	return false, fmt.Errorf("engine: bundle probe: no final completion in 5 s: %w", unix.ETIMEDOUT)
}
