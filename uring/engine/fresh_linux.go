package engine

import "golang.org/x/sys/unix"

// freshRecv is a multishot receive submitted but not checked yet.
type freshRecv struct {
	fd int32
	ud uint64
}

// checkFresh works around a kernel race that strands a multishot receive
// for ever (seen on Linux 6.18.44 with TCP resets and AF_UNIX closes;
// liburing issue #1549 reports the AF_UNIX EOF case). When a peer's last
// bytes and its reset or close both land between the receive's first
// attempt, at submission, and the arming of its poll, the arming finds the
// socket readable and hung up at once and queues one pass of task work.
// That pass receives the bytes, posts them with IORING_CQE_F_MORE and, the
// socket reporting nothing more queued, waits for the next wake-up; but the
// peer's last one was spent on the arming. No final CQE ever comes, the
// ring's fdinfo lists the RECV for good, and a caller waiting for that CQE
// never closes the fd. (After a TCP FIN the kernel does go on: tcp_inq_hint
// reports a byte more once SOCK_DONE is set, so the next attempt reads the
// EOF. After a reset, or an AF_UNIX close or shutdown, nothing does. A
// receive armed before the peer goes is woken by it as usual.) The kernel's
// tracepoints show the sequence: io_uring_submit_req, io_uring_task_add with
// mask IN|ERR|HUP|RDHUP, io_uring_poll_arm, one io_uring_complete with the
// bytes and F_MORE, then nothing. The uring package's
// TestRecvMultishotArmedAfterDataAndReset reproduces it.
//
// The arming happens inside the io_uring_enter that submits the receive, so
// a poll(2) once that enter has returned sees any peer the race concerns as
// gone (POLLHUP, POLLERR or POLLRDHUP). Wait runs it for every receive
// submitted since its last call, right after its own enter (which flushed
// them all). Then the receive is cancelled; its final CQE (-ECANCELED, or
// its own result if that came first) makes the caller arm a new one, whose
// first attempt reads what is left, in order: bytes, then the EOF or the
// error. It costs one poll(2) per receive armed, not per CQE, and no lookup
// on the CQE path. A peer found alive cannot be lost this way: whatever it
// does next wakes the armed receive.
func (e *Engine) checkFresh() {
	for _, f := range e.fresh {
		e.pfd[0] = unix.PollFd{Fd: f.fd, Events: unix.POLLRDHUP}
		n, err := unix.Poll(e.pfd[:], 0)
		if err == nil && (n == 0 || e.pfd[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLRDHUP) == 0) {
			continue
		}
		// Gone, or the poll failed (EINTR, say): a new receive is always safe.
		e.cancelFresh(f.ud)
	}
	e.fresh = e.fresh[:0]
}

// cancelFresh cancels the receive ud for checkFresh, or queues the cancel
// for the next Wait when no SQE can be had now.
func (e *Engine) cancelFresh(ud uint64) {
	s, err := e.sqe()
	if err != nil {
		e.late = append(e.late, ud)
		return
	}
	// A cancel that comes after the receive ended finds nothing (-ENOENT,
	// ignored): the caller arms its next receive only at the final CQE, and
	// the SQ is consumed in order, so it never reaches a later receive with
	// the same token. (A late one, queued by Wait, may; that receive then
	// ends with -ECANCELED and the caller arms another, which costs a round
	// trip and loses nothing.)
	s.PrepCancel(ud, 0)
	s.SetUserData(tokIgnore)
	e.stats.FreshRecvCancels++
}
