package engine

import (
	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

// A multishot receive can be stranded by the kernel: it stays armed on a
// socket whose peer has gone, and its final CQE never comes. Two orderings
// do it on Linux 6.18 (liburing issue #1549 reports the AF_UNIX case):
//
//   - Many wake-ups, then the hang-up during a pass. The receive's poll
//     counts the wake-ups that land while its task work is pending or
//     running (with DEFER_TASKRUN it runs only when the loop enters the
//     kernel). Past 128 of them (IO_POLL_REF_BIAS) a wake-up no longer adds
//     to the count but sets a retry flag, which the pass checks only when
//     it starts. A peer that writes more than 128 times between two of the
//     loop's entries and closes (or resets) while the pass runs, after its
//     last receive attempt found the socket empty, wakes nobody: the pass
//     ends, the bytes were posted with F_MORE, the EOF or error is never
//     read. `seq` writing its output in 4 KB blocks to a Popen connection
//     and exiting did it about once in 50 runs on a loaded machine;
//     TestRecvPeerWritesManyThenCloses (internal/enginetest) does it within
//     a few hundred rounds.
//   - Bytes and hang-up together before the arming. When a peer's last
//     bytes and its reset or close both land between the receive's first
//     attempt, at submission, and the arming of its poll, the arming finds
//     the socket readable and hung up at once and queues one pass, which
//     reads the bytes and waits for a wake-up the arming spent.
//     (TestRecvMultishotArmedAfterDataAndReset in package uring.)
//
// After a TCP FIN the kernel goes on by itself (tcp_inq_hint reports a byte
// more once SOCK_DONE is set, so the pass tries again and reads the EOF);
// after a reset, an AF_UNIX close or shutdown, nothing does.
//
// The engine therefore arms, with every connection's first multishot
// receive, a one-shot POLL_ADD for its hang-up (POLLRDHUP, POLLHUP,
// POLLERR): a poll of its own, which the data wake-ups (EPOLLIN) do not
// reach and so cannot push past the bias. When the peer goes, the watch
// completes and the engine cancels the receive; its final CQE (-ECANCELED,
// or its own result if that came first) makes the caller arm a new one,
// whose first attempt reads what is left, in order: bytes, then the EOF or
// the error. A watch costs one SQE per connection, one more to cancel it
// at the close, 16 bytes of state per descriptor and no system call; it
// replaced a poll(2) per receive armed, which saw only the second ordering.
//
// A data wake-up lost the same way (more than 128 wake-ups, then the
// peer's last segment during the pass, then silence until the peer sends
// again) is not caught: the bytes wait in the socket until the peer's next
// segment or hang-up. A peer that waits for a reply to bytes sent that way
// waits that long; it takes a peer that wrote more than 128 times without
// one.

// watchSlot is the hang-up watch of one descriptor: the receive it guards,
// and a generation that tells a CQE of a watch the descriptor has since
// dropped from one of its current watch.
type watchSlot struct {
	ud  uint64
	gen uint16
	on  bool
}

// watchProcessFD marks, in a watch token's index, a process fd (without
// it, the index is a slot of the direct descriptor table).
const watchProcessFD = 1 << 31

// watchOf returns the watch state of fd and its index in watch tokens, or
// nil for a descriptor out of range. A process fd's state is allocated as
// fd grows (16 bytes per fd up to the largest watched).
func (e *Engine) watchOf(fd int, grow bool) (*watchSlot, uint32) {
	f, direct := fdOf(fd)
	if direct {
		if f >= len(e.watch) {
			return nil, 0
		}
		return &e.watch[f], uint32(f)
	}
	if f < 0 || f >= watchProcessFD {
		return nil, 0
	}
	if f >= len(e.fdWatch) {
		if !grow {
			return nil, 0
		}
		n := max(64, 2*len(e.fdWatch))
		for n <= f {
			n *= 2
		}
		e.fdWatch = append(e.fdWatch, make([]watchSlot, n-len(e.fdWatch))...)
	}
	return &e.fdWatch[f], uint32(f) | watchProcessFD
}

// watchHangup arms, for the descriptor fd whose multishot receive ud was
// just submitted, a one-shot POLL_ADD for a hang-up, unless one is armed
// already (it then guards ud). When the peer goes the receive is
// cancelled, so a receive the kernel left stranded ends, and the caller's
// next one reads what is left. The watch ends with the connection
// (CloseFD, CancelFD and Release cancel it). Its token is tokWatch with the
// descriptor's index and its watch generation.
func (e *Engine) watchHangup(fd int, ud uint64) {
	w, idx := e.watchOf(fd, true)
	if w == nil {
		return
	}
	if w.on {
		w.ud = ud // watched already: one watch per connection, for its latest receive
		return
	}
	s, err := e.sqe()
	if err != nil {
		e.late = append(e.late, ud) // cancel it now: a new receive is always safe
		return
	}
	w.gen++
	w.ud, w.on = ud, true
	f, _ := fdOf(fd)
	s.PrepPollAdd(f, unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR)
	target(s, fd)
	s.SetUserData(opToken(tokWatch, idx, w.gen))
	e.sqes++
}

// onWatch handles the CQE of a hang-up watch.
func (e *Engine) onWatch(c *uring.CQE) {
	e.sqes--
	_, idx, gen := splitOpToken(c.UserData)
	var w *watchSlot
	switch f := int(idx &^ watchProcessFD); {
	case idx&watchProcessFD == 0 && f < len(e.watch):
		w = &e.watch[f]
	case idx&watchProcessFD != 0 && f < len(e.fdWatch):
		w = &e.fdWatch[f]
	default:
		return
	}
	if !w.on || w.gen != gen {
		return // a watch unwatch dropped: its descriptor has moved on
	}
	w.on = false
	if c.Res > 0 && !e.closed {
		e.cancelRecv(w.ud)
	}
}

// unwatch cancels the hang-up watch of fd, if any: before its close or its
// release to the caller.
func (e *Engine) unwatch(fd int) {
	w, idx := e.watchOf(fd, false)
	if w == nil || !w.on {
		return
	}
	w.on = false
	e.cancelWatch(opToken(tokWatch, idx, w.gen))
}

// cancelRecv cancels the receive ud for a watch that saw its peer go.
//
// A cancel that comes after the receive ended finds nothing (-ENOENT,
// ignored): the caller arms its next receive only at the final CQE, and the
// SQ is consumed in order, so it never reaches a later receive with the
// same token. (A late one, queued by Wait, may; that receive then ends with
// -ECANCELED and the caller arms another, which costs a round trip and
// loses nothing.)
func (e *Engine) cancelRecv(ud uint64) {
	if e.cancelSoon(ud, &e.late) {
		e.stats.FreshRecvCancels++
	}
}

// cancelWatch cancels the watch whose token is tok (a watch left armed
// would hold its socket open in the ring after the caller's close).
func (e *Engine) cancelWatch(tok uint64) { e.cancelSoon(tok, &e.lateWatch) }

// cancelSoon queues a cancel of the operation whose user data is ud and
// reports true, or, when no SQE can be had now, appends ud to *late, which
// the next Wait retries, and reports false. (TestWatchArmedLate and
// TestUnwatchLate take those paths, through testHookSQE.)
func (e *Engine) cancelSoon(ud uint64, late *[]uint64) bool {
	s, err := e.sqe()
	if err != nil {
		*late = append(*late, ud)
		return false
	}
	s.PrepCancel(ud, 0)
	s.SetUserData(tokIgnore)
	return true
}
