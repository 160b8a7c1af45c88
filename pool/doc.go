// Package pool is the fixed worker pool behind the loop's Defer: EventMachine's
// 20-thread defer pool, libuv's work queue.
//
// Jobs are submitted from any goroutine and run on at most [Options.Workers] worker
// goroutines, in submission order. A job returns its completion, a func() or nil; the
// worker hands a non-nil completion to [Options.Post], which the loop supplies (it
// queues the function on its MPSC queue and writes its eventfd), so the completion
// runs on the loop goroutine. A panicking job does not kill its worker: the panic is
// recovered and turned into a completion by [Options.OnPanic].
//
// Guarantees: a job accepted by [Pool.Submit] runs exactly once, and its non-nil
// completion is posted exactly once, unless [Pool.Close] drops the job before it
// starts (counted in [Stats].Dropped; its completion is never posted). When Close
// returns, no worker goroutine is left and Post will not be called again.
//
// Example:
//
//	p, err := pool.New(pool.Options{Post: l.post}) // 20 workers, unbounded queue
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//	err = p.Submit(func() (done func()) {
//		sum := 2 + 2 // blocking work goes here, off the loop
//		return func() { fmt.Println("2 + 2 ==", sum) } // runs where Post sends it
//	})
package pool
