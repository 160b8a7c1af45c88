package loop

import (
	"errors"
	"time"

	"github.com/ringmachine/ringmachine/conn"
)

// ProcessFDSuite reports whether the suite runs io_uring servers on process
// fds (RINGMACHINE_TEST_PROCESS_FDS=1).
func ProcessFDSuite() bool { return testHookProcessFDs }

// RecvBundleSuite reports whether the suite's io_uring loops receive in
// bundles (RINGMACHINE_TEST_RECV_BUNDLE=1).
func RecvBundleSuite() bool { return testHookRecvBundle }

// SetTestDirectFiles sizes the direct descriptor table of loops run
// afterwards; the returned func restores it.
func SetTestDirectFiles(n int) (restore func()) {
	old := testHookDirectFiles
	testHookDirectFiles = n
	return func() { testHookDirectFiles = old }
}

// StaleCompletions reports the completions dropped because their token's
// slot generation had moved on.
func (l *Loop) StaleCompletions() int { return l.net.stale }

// SetTestRingEntries sets the io_uring SQ size of loops run afterwards (the
// CQ is four times larger); the returned func restores it.
func SetTestRingEntries(n int) (restore func()) {
	old := testHookRingEntries
	testHookRingEntries = n
	return func() { testHookRingEntries = old }
}

// RecvBuffersProvided reports how many buffers the io_uring backend's
// provided-buffer ring holds (0 on epoll). Call on the loop goroutine.
func (l *Loop) RecvBuffersProvided() int {
	if b, ok := l.be.(*uringBackend); ok {
		return b.e.Stats().RecvBuffers
	}
	return 0
}

// HandoffStats reports how many connections l adopted from a MSG_RING
// message and how many MSG_RING hand-offs to l fell back to its queue.
// Safe for concurrent use.
func (l *Loop) HandoffStats() (viaMsgRing, fallbacks uint64) {
	return l.inbox.viaMsgRing.Load(), l.inbox.fallbacks.Load()
}

// SetTestHandoffQueue makes io_uring groups hand connections off through
// the MPSC queue (on) instead of MSG_RING; the returned func restores it.
func SetTestHandoffQueue(on bool) (restore func()) {
	old := testHookHandoffQueue
	testHookHandoffQueue = on
	return func() { testHookHandoffQueue = old }
}

// SetTestHookBeforeMsgRing installs fn to run on the acceptor's goroutine
// before each MSG_RING hand-off with the target and its ring fd; fn returns
// the ring fd to send to. The returned func restores the previous hook.
func SetTestHookBeforeMsgRing(fn func(target *Loop, ringFD int) int) (restore func()) {
	old := testHookBeforeMsgRing
	testHookBeforeMsgRing = fn
	return func() { testHookBeforeMsgRing = old }
}

// ZeroCopySends reports the zero-copy sends the io_uring backend submitted
// (URingOptions.SendZC; 0 on epoll). Call on the loop goroutine.
func (l *Loop) ZeroCopySends() int {
	if b, ok := l.be.(*uringBackend); ok {
		return b.e.Stats().ZeroCopySends
	}
	return 0
}

// FixedZeroCopySends reports the zero-copy sends the io_uring backend
// submitted from a send slab registered as a fixed buffer (0 on epoll). Call
// on the loop goroutine.
func (l *Loop) FixedZeroCopySends() int {
	if b, ok := l.be.(*uringBackend); ok {
		return b.e.Stats().FixedZeroCopySends
	}
	return 0
}

// SetTestHookNoFixedSendBuffers makes the loops opened until restore is
// called send zero-copy from unregistered slabs.
func SetTestHookNoFixedSendBuffers() (restore func()) {
	old := testHookNoFixedSendBuffers
	testHookNoFixedSendBuffers = true
	return func() { testHookNoFixedSendBuffers = old }
}

// RecvBundles reports the receive completions that filled several
// buffers (URingOptions.RecvBundle; 0 on epoll). Call on the loop goroutine.
func (l *Loop) RecvBundles() int {
	if b, ok := l.be.(*uringBackend); ok {
		return b.e.Stats().RecvBundles
	}
	return 0
}

// LiveRecords reports the socket records not freed yet (listeners
// included). Call on the loop goroutine.
func (l *Loop) LiveRecords() int { return l.net.live }

// EngineMinWait reports the minimum wait the io_uring engine applies
// (URingOptions.MinWait; 0 on epoll). Call on the loop goroutine.
func (l *Loop) EngineMinWait() time.Duration {
	if b, ok := l.be.(*uringBackend); ok {
		return b.e.MinWait()
	}
	return 0
}

// ProxyPipeSize is the capacity asked for each of a proxy's pipes.
const ProxyPipeSize = proxyPipeSize

// SetTestSpliceInHook runs fn with the source connection before each
// spliceIn completion that moved bytes is handled; the returned func
// removes it.
func SetTestSpliceInHook(fn func(c *conn.Conn)) (restore func()) {
	testHookSpliceIn = fn
	return func() { testHookSpliceIn = nil }
}

// SetTestHookNoWaitid makes the loops opened until restore is called wait
// for their children by polling the pidfd, as on a kernel without
// IORING_OP_WAITID.
func SetTestHookNoWaitid() (restore func()) {
	old := testHookWrapBackend
	testHookWrapBackend = func(b backend) backend { return noWaitid{b} }
	return func() { testHookWrapBackend = old }
}

// noWaitid is a backend without waitid.
type noWaitid struct{ backend }

func (noWaitid) waitid(int, *siginfo, uint64) error { return errors.ErrUnsupported }

// PinnedSendBuffers reports the send buffers the io_uring backend pinned
// per operation, outside its pinned send slabs (0 on epoll). Call on the
// loop goroutine.
func (l *Loop) PinnedSendBuffers() int {
	if b, ok := l.be.(*uringBackend); ok {
		return b.e.Stats().PinnedSendBuffers
	}
	return 0
}

// CloseFDUnowned closes fd through the backend as the loop closes a
// descriptor no connection owns (a hand-off or accept met while stopping):
// with an operation whose completion nothing waits for. Call on the loop
// goroutine.
func (l *Loop) CloseFDUnowned(fd int) error {
	return l.be.closeFD(fd, makeToken(opDropFD, 0, 0))
}

// SetTestHookSendBufs caps every send of the loops at n buffers (0: no
// cap) until restore is called.
func SetTestHookSendBufs(n int) (restore func()) {
	old := testHookSendBufs
	testHookSendBufs = n
	return func() { testHookSendBufs = old }
}

// SetTestHookCompletionBatch makes the io_uring loops opened until restore
// is called take at most n completions per engine Wait (0: the default).
func SetTestHookCompletionBatch(n int) (restore func()) {
	old := testHookCompletionBatch
	testHookCompletionBatch = n
	return func() { testHookCompletionBatch = old }
}
