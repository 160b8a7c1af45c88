package uring_test

import (
	"fmt"
	"runtime"
	"time"

	"github.com/ringmachine/ringmachine/uring"
)

// A NOP round trip: prepare, submit, wait, and copy the completion out.
func Example() {
	// SINGLE_ISSUER: the thread that creates the ring is the only one that may submit.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	r, err := uring.New(8, nil)
	if err != nil {
		fmt.Println("no io_uring:", err)
		return
	}
	defer r.Close()

	sqe, _ := r.GetSQE()
	sqe.PrepNop()
	sqe.SetUserData(42)
	if _, err := r.SubmitAndWait(1, time.Second); err != nil {
		fmt.Println(err)
		return
	}
	var cqes [8]uring.CQE
	n := r.PeekCQEs(cqes[:])
	fmt.Println(n, cqes[0].UserData, cqes[0].Err())
	// Output: 1 42 <nil>
}
