package loop

// SetTestRecvPollFirst makes the io_uring backend submit multishot receives
// with IORING_RECVSEND_POLL_FIRST (see testHookRecvPollFirst); the returned
// func restores the previous setting.
func SetTestRecvPollFirst(on bool) (restore func()) {
	old := testHookRecvPollFirst
	testHookRecvPollFirst = on
	return func() { testHookRecvPollFirst = old }
}

// FreshRecvCancels reports how many multishot receives the io_uring backend
// cancelled because their peer went (the engine's hang-up watch, see
// hangup_linux.go); 0 on epoll. Call on the loop goroutine.
func (l *Loop) FreshRecvCancels() int {
	if b, ok := l.be.(*uringBackend); ok {
		return b.e.Stats().FreshRecvCancels
	}
	return 0
}
