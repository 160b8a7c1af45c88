// Package uring is a cgo-free io_uring implementation on golang.org/x/sys/unix: ring
// setup with the best flags the kernel accepts, the mmap'd submission and completion
// queues, typed SQE preparation helpers named after liburing's, submit and wait with
// IORING_ENTER_EXT_ARG timeouts, opcode probing, eventfd registration and provided-buffer
// rings. It is the fast backend of package loop and usable on its own.
//
// # Threads
//
// A [Ring] is used by one goroutine locked to its OS thread (runtime.LockOSThread), which
// creates it, submits, waits and closes it: SINGLE_ISSUER lets only the creating thread
// submit, DEFER_TASKRUN posts completions only when that thread waits, and the registered
// ring fd belongs to that thread.
//
// # Memory
//
// Rings and buffer rings are mappings outside the Go heap. Completions are copied out by
// value ([Ring.PeekCQEs]), so nothing that points into ring memory leaves the package
// except [BufRing.Buffer] slices, valid until their buffer is recycled. Prep methods that
// store an address say in a "Memory:" paragraph what the caller must keep alive (and pin
// with runtime.Pinner if it is Go memory) until which completion. user_data is a token,
// never a pointer.
//
// # Errors
//
// Setup and syscall errors wrap the errno with the syscall's name, so errors.Is(err,
// unix.ENOMEM) works; operation results are [CQE.Err]. Missing kernel features are
// [*FeatureError] values matching errors.ErrUnsupported. On systems other than Linux, New
// returns such an error.
//
// # Example
//
//	runtime.LockOSThread() // SINGLE_ISSUER: this thread alone submits
//	defer runtime.UnlockOSThread()
//	r, err := uring.New(64, nil)
//	if err != nil {
//		return err
//	}
//	defer r.Close()
//	sqe, _ := r.GetSQE()
//	sqe.PrepNop()
//	sqe.SetUserData(1)
//	if _, err := r.SubmitAndWait(1, time.Second); err != nil {
//		return err
//	}
//	var cqes [8]uring.CQE
//	n := r.PeekCQEs(cqes[:]) // cqes[0].UserData == 1, cqes[0].Res == 0
package uring
