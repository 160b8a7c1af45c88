package loop

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
	if b, ok := l.be.(*uringBackend); ok && b.br != nil {
		return b.br.Provided()
	}
	return 0
}
