package leakcheck

import "time"

// The Go runtime opens its network poller (an epoll fd and an eventfd) the
// first time the process arms a timer, and keeps it for good. In a test
// binary that had armed none when Check took its snapshot, the first retry
// sleep of Leaks opened them, and they were reported as leaked: under load,
// when a goroutine of the test takes a moment to exit, examples/timers
// failed that way. Arming one here, before any snapshot, puts them in every
// snapshot.
func init() {
	time.Sleep(time.Nanosecond)
}
