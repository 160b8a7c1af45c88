// Package engine is the io_uring engine: completion-style socket operations
// on one ring, the counterpart of the epoll engine (package epoll in
// fallback_epoll) with the same method set, plus what only io_uring has
// (ConnectTimeout and UpdateConnectTimeout, MsgRing). The loop drives one of
// the two through a thin adapter each; package uring below holds the ring
// primitives.
//
// # Contract
//
// Every operation is submitted with a caller's token (user data) and ends
// with one final completion carrying it, returned by [Engine.Wait]: Res >= 0
// is the result, Res < 0 is -errno. Multishot operations (accept, receive)
// complete many times with [FlagMore] before their final completion.
// Operations are queued in the submission queue and reach the kernel at the
// next Wait (or earlier when the queue fills). Tokens at or above
// [MsgTokens] are the engine's own (token.go has the layout).
//
// The engine owns the kernel-visible memory of its operations (iovecs,
// msghdr, sockaddr, timespec; pinned from submission to the last CQE) in a
// table indexed by the completion's token, so the completion path does no
// map lookup. The caller owns the buffers it passes (send data, receive
// targets) and must not touch them until the completion.
//
// # Example
//
//	runtime.LockOSThread() // the ring is SINGLE_ISSUER: one thread submits
//	e, err := engine.New(engine.Options{})
//	if err != nil {
//		return err // errors.Is(err, errors.ErrUnsupported): use package epoll
//	}
//	defer e.Close()
//	const accept = 1 << 32 // tokens: the accept's, and each connection's fd
//	e.AcceptMultishot(listenFD, accept)
//	cs := make([]engine.Completion, 64)
//	for {
//		n, err := e.Wait(-1, cs)
//		if err != nil {
//			return err
//		}
//		for _, c := range cs[:n] {
//			switch {
//			case c.UserData == accept && c.Res >= 0:
//				e.RecvMultishot(int(c.Res), uint64(c.Res))
//			case c.UserData != accept && c.Res > 0:
//				use(c.Buf) // valid until the next Wait
//			}
//		}
//	}
package engine
