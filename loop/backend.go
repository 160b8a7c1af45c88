package loop

import "time"

// backend is the contract between the loop and an I/O backend (io_uring or
// epoll). It is completion based: the loop asks for operations tagged with a
// token and later receives their completions from poll. Both implementations
// live in this package as thin adapters (backend_uring_linux.go,
// backend_epoll_linux.go) over the leaf packages uring and epoll, each with a
// compile-time assertion that it satisfies this interface.
//
// Every method except wake is called only from the loop goroutine.
type backend interface {
	// kind reports which backend this is.
	kind() Backend

	// poll submits queued operations and waits at most timeout for at least
	// one completion or a wake-up (timeout 0: do not block; negative: no
	// limit). It calls dispatch once per completion, in the order the backend
	// reports them; the completion and its buffer are valid only during the
	// call.
	poll(timeout time.Duration, dispatch func(*completion)) error

	// wake makes a poll blocked on another goroutine return. Safe for
	// concurrent use. The loop dedupes calls (see Loop.wakeup).
	wake() error

	// inFlight reports the operations submitted whose final completion has
	// not been dispatched yet (the backend's own wake-up read included only
	// while it is armed). Zero after close.
	inFlight() int

	// close cancels every operation still in flight, reaps their
	// completions without dispatching them, and releases the backend's
	// resources (ring or epoll fd, eventfd, buffers).
	close() error
}

// completion is one finished operation, as both backends report it.
type completion struct {
	tok   uint64 // the token the operation was submitted with
	res   int32  // >= 0: result; < 0: -errno
	flags uint32 // flagMore when a multishot operation goes on
	buf   []byte // received bytes, valid only during dispatch
}

// flagMore marks a completion after which the same multishot operation will
// complete again. Must match uring.CQEFMore and epoll.FlagMore.
const flagMore = 1 << 1

// testHookOpenURing, when set by a test, replaces opening the io_uring
// backend, so fallback rules can be exercised on a kernel that has io_uring.
var testHookOpenURing func() (backend, error)
