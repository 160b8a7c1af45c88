package pool

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// DefaultWorkers is the number of workers when [Options.Workers] is 0: EventMachine's
// threadpool_size.
const DefaultWorkers = 20

// ErrClosed is returned by [Pool.Submit] after [Pool.Close].
var ErrClosed = errors.New("pool: closed")

// ErrFull is returned by [Pool.Submit] when [Options.MaxQueue] jobs are already waiting
// for a worker.
var ErrFull = errors.New("pool: queue full")

// ErrNilJob is returned by [Pool.Submit] for a nil job.
var ErrNilJob = errors.New("pool: nil job")

// Options configures a [Pool].
type Options struct {
	// Workers is the maximum number of worker goroutines, so of jobs running at once.
	// 0 means DefaultWorkers (20); negative is an error.
	Workers int

	// MaxQueue bounds the jobs accepted but not yet started; past it Submit returns
	// ErrFull. 0 means unbounded, as in EventMachine and libuv; negative is an error.
	MaxQueue int

	// Post receives the completion of every job that returned a non-nil done, and of
	// every recovered panic for which OnPanic returned one. It is required. It is
	// called on the worker goroutine, never after Close has returned, and must not
	// block for long: the loop supplies a function that pushes done on its MPSC queue
	// and writes its eventfd, and later calls done on the loop goroutine.
	Post func(done func())

	// OnPanic is called on the worker goroutine when a job panics, with the panic
	// value and the goroutine's stack; a non-nil result is passed to Post like a
	// normal completion. If OnPanic is nil, the pool posts a done that re-panics with
	// a *PanicError, so the panic surfaces where done runs (on the loop, whose
	// recovery reports it) instead of being lost. A panic inside OnPanic itself is
	// recovered and counted in Stats.Panics, and nothing is posted for that job.
	OnPanic func(v any, stack []byte) (done func())
}

// PanicError carries a panic recovered from a job to the goroutine that runs the
// posted completion (see [Options.OnPanic]).
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the worker's stack at the time of the panic
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("pool: job panicked: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Stats is a snapshot of a pool's counters. The fields are read one by one, without a
// common lock, so they need not add up exactly while jobs are moving.
type Stats struct {
	Workers   int    // worker goroutines started and not yet exited
	Running   int    // jobs executing now (including their Post call)
	Queued    int    // jobs accepted and waiting for a worker
	Completed uint64 // jobs that returned or panicked
	Panics    uint64 // jobs that panicked (included in Completed)
	Dropped   uint64 // jobs discarded by Close before they started
}

// Pool is a fixed set of worker goroutines running jobs submitted from any goroutine
// and handing their completions to [Options.Post]: the pool behind the loop's Defer,
// like EventMachine's defer threadpool and libuv's work queue.
//
// Workers start lazily: Submit starts one when no worker is idle and fewer than
// Options.Workers exist, so a pool that is never used costs no goroutine. Started
// workers stay until Close. Jobs start in submission order.
//
// A Pool must not be copied; create it with [New].
type Pool struct {
	_ noCopy

	post    func(done func())
	onPanic func(v any, stack []byte) (done func())
	workers int // maximum

	mu      sync.Mutex
	cond    sync.Cond // signalled when a job is queued or the pool closes; L is &mu
	queue   jobQueue  // guarded by mu
	started int       // worker goroutines running; guarded by mu
	idle    int       // workers waiting on cond; guarded by mu
	closed  bool      // guarded by mu
	wg      sync.WaitGroup

	maxQueue  int
	running   atomic.Int64
	queued    atomic.Int64
	completed atomic.Uint64
	panics    atomic.Uint64
	dropped   atomic.Uint64
}

// New returns a pool configured by opts. It returns an error if opts.Post is nil or
// opts.Workers or opts.MaxQueue is negative. No goroutine starts until the first
// Submit.
func New(opts Options) (*Pool, error) {
	switch {
	case opts.Post == nil:
		return nil, errors.New("pool: Options.Post is nil")
	case opts.Workers < 0:
		return nil, fmt.Errorf("pool: Options.Workers is negative (%d)", opts.Workers)
	case opts.MaxQueue < 0:
		return nil, fmt.Errorf("pool: Options.MaxQueue is negative (%d)", opts.MaxQueue)
	}
	p := &Pool{
		post:     opts.Post,
		onPanic:  opts.OnPanic,
		workers:  opts.Workers,
		maxQueue: opts.MaxQueue,
	}
	if p.workers == 0 {
		p.workers = DefaultWorkers
	}
	p.cond.L = &p.mu
	return p, nil
}

// Submit queues job to run on a worker. When job returns a non-nil done, the worker
// calls Options.Post(done); a nil done means there is nothing to report. Safe for
// concurrent use from any goroutine, including from inside a job.
//
// Submit returns [ErrClosed] after Close, [ErrFull] when Options.MaxQueue jobs are
// waiting, and [ErrNilJob] for a nil job; in those cases job never runs. Once Submit
// has returned nil, job runs exactly once unless Close drops it before it starts (see
// [Pool.Close]).
func (p *Pool) Submit(job func() (done func())) error {
	if job == nil {
		return ErrNilJob
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if p.maxQueue > 0 && p.queue.len() >= p.maxQueue {
		p.mu.Unlock()
		return ErrFull
	}
	p.queue.push(job)
	p.queued.Add(1)
	switch {
	case p.idle > 0:
		// Wake one idle worker. Several Submits may signal before any of them wakes;
		// each wakes a different waiter, and a worker drains the queue before it
		// waits again, so no job is left behind.
		p.idle--
		p.cond.Signal()
	case p.started < p.workers:
		p.started++
		p.wg.Add(1) // under mu, so it happens before Close's Wait
		go p.worker()
	}
	p.mu.Unlock()
	return nil
}

// Close stops the pool: further Submits return ErrClosed, jobs still queued are
// dropped (never run, their done is never posted; Stats.Dropped counts them), and
// Close waits until running jobs have returned and their completions have been
// posted. When Close returns, every worker goroutine has exited and Post will not be
// called again. Close is idempotent and safe for concurrent use; every call waits.
// It always returns nil. It must not be called from inside a job (it would wait for
// itself).
func (p *Pool) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		n := p.queue.len()
		p.queue.clear()
		p.queued.Add(-int64(n))
		p.dropped.Add(uint64(n))
		p.cond.Broadcast()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// Stats returns a snapshot of the pool's counters. Safe for concurrent use.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	workers := p.started
	p.mu.Unlock()
	return Stats{
		Workers:   workers,
		Running:   int(p.running.Load()),
		Queued:    int(p.queued.Load()),
		Completed: p.completed.Load(),
		Panics:    p.panics.Load(),
		Dropped:   p.dropped.Load(),
	}
}

// worker runs queued jobs until the pool closes.
func (p *Pool) worker() {
	exited := false
	defer func() {
		if !exited {
			p.goexited()
		}
		p.wg.Done()
	}()
	p.mu.Lock()
	for {
		job, ok := p.queue.pop()
		if !ok {
			if p.closed {
				break
			}
			// While we wait, idle counts us. Submit decrements it when it signals, so
			// idle is the number of waiters not yet woken (Wait enqueues us before it
			// unlocks mu). Close broadcasts without adjusting it; it no longer matters
			// then. If another worker took the job we were woken for, we wait again.
			p.idle++
			p.cond.Wait()
			continue
		}
		p.queued.Add(-1)
		p.running.Add(1)
		p.mu.Unlock()

		if done := p.run(job); done != nil {
			p.post(done)
		}
		p.running.Add(-1)
		p.completed.Add(1)

		p.mu.Lock()
	}
	p.started--
	p.mu.Unlock()
	exited = true
}

// goexited repairs the accounting when a job called runtime.Goexit (t.FailNow in a
// test job, say), which unwinds the worker through its deferred calls: the job counts
// as completed, and a replacement worker starts if jobs are waiting.
func (p *Pool) goexited() {
	p.running.Add(-1)
	p.completed.Add(1)
	p.mu.Lock()
	p.started--
	if !p.closed && p.queue.len() > 0 {
		p.started++
		p.wg.Add(1) // our own Done is still pending, so the counter is not zero
		go p.worker()
	}
	p.mu.Unlock()
}

// run calls job and converts a panic into the completion described at
// [Options.OnPanic].
func (p *Pool) run(job func() func()) (done func()) {
	panicked := true
	defer func() {
		if !panicked {
			return
		}
		v := recover()
		if v == nil {
			return // runtime.Goexit: panic(nil) recovers a *runtime.PanicNilError
		}
		p.panics.Add(1)
		done = p.panicDone(v, debug.Stack())
	}()
	done = job()
	panicked = false
	return done
}

// panicDone returns the completion to post for a job that panicked with v.
func (p *Pool) panicDone(v any, stack []byte) (done func()) {
	if p.onPanic == nil {
		pe := &PanicError{Value: v, Stack: stack}
		return func() { panic(pe) }
	}
	defer func() {
		if recover() != nil {
			done = nil // OnPanic itself panicked; already counted in panics
		}
	}()
	return p.onPanic(v, stack)
}

// jobQueue is a FIFO ring buffer of jobs that grows by doubling. Popped slots are
// cleared so finished jobs' closures can be collected.
type jobQueue struct {
	buf  []func() func()
	head int // index of the first job
	n    int // number of jobs
}

func (q *jobQueue) len() int { return q.n }

func (q *jobQueue) push(job func() func()) {
	if q.n == len(q.buf) {
		nb := make([]func() func(), max(16, 2*len(q.buf)))
		k := copy(nb, q.buf[q.head:])
		copy(nb[k:], q.buf[:q.head])
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = job
	q.n++
}

func (q *jobQueue) pop() (func() func(), bool) {
	if q.n == 0 {
		return nil, false
	}
	job := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return job, true
}

func (q *jobQueue) clear() {
	clear(q.buf)
	q.head, q.n = 0, 0
}

// noCopy makes go vet's copylocks check flag copies of a Pool (see sync.noCopy).
type noCopy struct{}

// Lock is a no-op used by go vet's copylocks check.
func (*noCopy) Lock() {}

// Unlock is a no-op used by go vet's copylocks check.
func (*noCopy) Unlock() {}
