// Package epoll is RingMachine's epoll engine, the fallback: the
// completion-style ("proactor") operations of the io_uring engine (package
// engine in uring/engine, with the same method set), built on epoll(7)
// readiness, non-blocking system calls and an eventfd(2) wake-up. The loop
// cannot tell the two engines apart except by speed; internal/enginetest
// runs one conformance table against both. Import it with an explicit alias,
// since the directory is fallback_epoll:
//
//	import epoll "github.com/ringmachine/ringmachine/fallback_epoll"
//
// # Model
//
// Each submit method ([Poller.RecvMultishot], [Poller.Send], ...) queues an
// operation identified by a caller-chosen user-data token and returns at once;
// nothing blocks. [Poller.Wait] then does the work and reports [Completion]
// values that look like io_uring CQEs: Res >= 0 is the result, Res < 0 is
// -errno, and [FlagMore] marks non-final completions of multishot operations.
// Once a submit method has returned nil, its operation ends with exactly one
// final completion (unless the Poller is closed first).
//
// One [Poller.Wait] call runs these steps, in this order:
//
//  1. Deliver leftovers: completions that did not fit in the previous dst are
//     returned first, with no system call.
//  2. Run queue: operations submitted since the last Wait are tried
//     optimistically (io_uring also tries non-blocking first), together with
//     operations carried over from the previous Wait.
//  3. Poll: epoll_wait(2), blocking only when nothing is pending, at most
//     until the timeout (rounded up to whole milliseconds, so a deadline
//     never fires early) or a [Poller.Wake].
//  4. Run queue again: operations whose fd became ready perform their
//     system call; EAGAIN re-arms them.
//
// # Edge-triggered readiness
//
// An fd is added to the epoll set (EPOLL_CTL_ADD) only when one of its
// operations first meets EAGAIN, with the fixed interest
// EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, and removed (EPOLL_CTL_DEL) when its
// last operation ends, or, for an fd that has had a SpliceIn or SpliceOut
// (a proxy's sockets, which take one such operation after another), at
// CloseFD. Like the Go runtime's netpoller, edge triggering means
// the interest set never changes, so there is no EPOLL_CTL_MOD at all: a Send
// that has to wait for EPOLLOUT next to a RecvMultishot costs no extra
// epoll_ctl. The price is that readiness is cached per fd (set by an event,
// cleared by EAGAIN). A drained socket would cost one more read that returns
// EAGAIN; for stream sockets a short read stands in for it (anything that
// arrives later raises a new edge), except after EPOLLRDHUP, when the peer's
// FIN may already sit behind the data and the socket is read until it
// returns 0. That saves one read per message: BenchmarkEchoPingPong
// reports 6 system calls per echo round trip (both ends), where reading
// until EAGAIN would take 8; TestShortReadSavesSyscall checks the count. Events carry a per-fd sequence number, so an event for an
// fd that was removed and re-added is recognised as stale and dropped.
//
// # Memory
//
// Multishot receives read into one arena of Options.RecvBuffers ×
// Options.RecvBufferSize bytes, reset at the start of each Wait: the Buf of
// a completion is valid until the next Wait call. When the arena is full,
// the remaining ready receives are carried over to the next Wait, so memory
// stays bounded without losing data. Each multishot operation is also limited
// to a few completions per Wait and requeued behind the others, so one busy
// connection cannot starve the rest.
//
// # Rules
//
//   - fds handed to a Poller must be in non-blocking mode.
//   - A Poller is used from one goroutine, except [Poller.Wake], which is safe
//     from any goroutine.
//   - Do not close(2) an fd that still has operations: cancel them
//     ([Poller.CancelFD]), reap their completions, then [Poller.CloseFD].
//   - Like io_uring, two sends in flight on one stream socket are not ordered
//     against each other's partial results: keep one send per socket.
//   - User-data tokens lie below [MsgTokens]: every method refuses the range
//     above with an error wrapping unix.EINVAL, as the io_uring engine does.
//   - The package starts no goroutines.
//
// Example: receive on one end of a socket pair.
//
//	p, err := epoll.New(epoll.Options{})
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//	if err := p.RecvMultishot(fd, 1); err != nil {
//		return err
//	}
//	cqes := make([]epoll.Completion, 64)
//	n, err := p.Wait(time.Second, cqes)
//	for _, c := range cqes[:n] {
//		if c.Res > 0 {
//			fmt.Printf("%q\n", c.Buf) // valid until the next Wait
//		}
//	}
//
// On systems other than Linux, [New] returns an error matching
// errors.ErrUnsupported.
package epoll
