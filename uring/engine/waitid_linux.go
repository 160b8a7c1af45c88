package engine

import (
	"fmt"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

// Waitid waits for the exit of the child whose pidfd is pidfd and reaps it
// (IORING_OP_WAITID with P_PIDFD and WEXITED, Linux 6.7): Res = 0 once the
// kernel has filled *info as waitid(2) does, or -errno (-ECHILD: not a
// child of this process, or already reaped; -ECANCELED after Cancel).
// pidfd is a process fd: the kernel looks it up as waitid(2)'s id, never in
// the direct descriptor table.
//
// Memory: the kernel writes *info when the child exits; the caller keeps
// it reachable and pinned (runtime.Pinner) until the completion.
//
// Errors: ErrClosed, an error wrapping unix.EBADF for a negative pidfd or
// unix.EINVAL for a reserved ud, ErrSQFull; a *uring.FeatureError
// (errors.ErrUnsupported) when the kernel lacks IORING_OP_WAITID: poll the
// pidfd and call waitid(2) instead.
func (e *Engine) Waitid(pidfd int, info *unix.Siginfo, ud uint64) error {
	if err := e.check("waitid", pidfd, ud); err != nil {
		return err
	}
	if IsDirect(pidfd) {
		return fmt.Errorf("engine: waitid: fd %d is a direct descriptor: %w", pidfd, unix.EBADF)
	}
	if !e.waitid {
		return &uring.FeatureError{Feature: "IORING_OP_WAITID"}
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	s.PrepWaitid(unix.P_PIDFD, pidfd, info, unix.WEXITED)
	s.SetUserData(ud)
	e.ops++
	return nil
}

// WaitidStatus returns si_pid and si_status of the siginfo a Waitid (or
// waitid(2)) filled; see uring.WaitidStatus.
func WaitidStatus(info *unix.Siginfo) (pid, status int) { return uring.WaitidStatus(info) }
