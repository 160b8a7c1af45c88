package engine

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Poll waits, once, until fd is ready for mask (unix.POLLIN or
// unix.POLLOUT, with any other poll bits): Res = the events that were ready
// (a poll(2) revents mask, POLLERR and POLLHUP included), or -errno
// (-ECANCELED after Cancel or CancelFD). It is IORING_OP_POLL_ADD, one SQE
// under the caller's token, for any fd a poll works on: a socket, a pipe, a
// pidfd (readable once its process has exited), an inotify or an eventfd.
//
// Errors as AcceptMultishot, and unix.EINVAL for a mask with neither
// POLLIN nor POLLOUT.
func (e *Engine) Poll(fd int, mask uint32, ud uint64) error {
	if err := e.check("poll", fd, ud); err != nil {
		return err
	}
	if mask&(unix.POLLIN|unix.POLLOUT) == 0 {
		return fmt.Errorf("engine: poll fd %d: mask %#x without POLLIN or POLLOUT: %w", fd, mask, unix.EINVAL)
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	f, _ := fdOf(fd)
	s.PrepPollAdd(f, mask)
	target(s, fd)
	s.SetUserData(ud)
	e.ops++
	return nil
}
