// Package leakcheck fails a test that leaves goroutines or file descriptors
// behind: the project's goleak, in-house because the module depends only on
// x/sys and testify. It imports nothing of the project, so every package's
// tests can use it, the leaves' included.
//
//	func TestX(t *testing.T) {
//		leakcheck.Check(t) // first, so it runs after every other cleanup
//		...
//	}
package leakcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Snapshot records the goroutines and open file descriptors of the process.
type Snapshot struct {
	goroutines map[int]string // id → first line of the creator/stack
	fds        map[int]string // fd → readlink target
}

// Take records the current goroutines and open fds.
func Take() Snapshot {
	return Snapshot{goroutines: goroutines(), fds: openFDs()}
}

// Leaks returns a description of every goroutine and fd present now that was
// not present in s, waiting up to wait for them to go away. It returns ""
// when nothing leaked.
func (s Snapshot) Leaks(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		msg := s.diff()
		if msg == "" || time.Now().After(deadline) {
			return msg
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s Snapshot) diff() string {
	var b strings.Builder
	now := goroutines()
	ids := make([]int, 0)
	for id := range now {
		if _, ok := s.goroutines[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if ignorable(now[id]) {
			continue
		}
		fmt.Fprintf(&b, "leaked goroutine %d:\n%s\n", id, now[id])
	}
	fds := openFDs()
	nums := make([]int, 0)
	for fd, target := range fds {
		if old, ok := s.fds[fd]; !ok || old != target {
			nums = append(nums, fd)
		}
	}
	slices.Sort(nums)
	for _, fd := range nums {
		fmt.Fprintf(&b, "leaked fd %d -> %s\n", fd, fds[fd])
	}
	return b.String()
}

// ignorable reports goroutines that belong to the test framework or the
// runtime rather than to the code under test.
func ignorable(stack string) bool {
	for _, s := range []string{
		"testing.(*T).Run", "testing.tRunner", "testing.runTests",
		"testing.(*M).", "runtime.goexit0", "os/signal.signal_recv",
		"runtime.ensureSigM", "testing.(*F).", "testing.runFuzzing",
		"internal/poll.runtime_pollWait", // the framework's own pipes
	} {
		if strings.Contains(stack, s) && !strings.Contains(stack, "ringmachine") {
			return true
		}
	}
	return false
}

func goroutines() map[int]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[int]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		// "goroutine 12 [running]:"
		rest, ok := strings.CutPrefix(g, "goroutine ")
		if !ok {
			continue
		}
		idStr, _, _ := strings.Cut(rest, " ")
		id, err := strconv.Atoi(idStr)
		if err != nil {
			continue
		}
		out[id] = g
	}
	return out
}

func openFDs() map[int]string {
	out := make(map[int]string)
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return out
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the fd of the ReadDir itself, closed by now
		}
		out[fd] = target
	}
	return out
}

// Check takes a snapshot now and registers a cleanup that fails t if
// goroutines or fds created during the test are still there (after a grace
// period of two seconds). Register it first, so it runs after every other
// cleanup of the test.
func Check(t testing.TB) {
	t.Helper()
	s := Take()
	t.Cleanup(func() {
		if msg := s.Leaks(2 * time.Second); msg != "" {
			t.Errorf("leak check:\n%s", msg)
		}
	})
}
