package loop

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/connio"
	"github.com/ringmachine/ringmachine/pool"
	"github.com/ringmachine/ringmachine/timers"
)

// Loop is one reactor: one goroutine locked to one OS thread, one backend,
// its timers, its NextTick queue and its Defer pool.
//
// All methods are for the loop goroutine (the callbacks the loop runs, or the
// goroutine that owns the Loop before Run) unless their documentation says
// they are safe for concurrent use: Stop, NextTick, Running and Backend are.
type Loop struct {
	_ noCopy

	opts Options

	tlsGoroutines sync.WaitGroup // TLS handshakes in progress (tls_linux.go)

	running  atomic.Bool   // between the start and the end of Run
	stopReq  atomic.Bool   // Stop was called (or a panic stopped the loop)
	kindNow  atomic.Uint32 // Backend of the current or last Run
	sleeping atomic.Bool   // the loop goroutine is (about to be) blocked in poll
	wakeSig  atomic.Bool   // a wake-up is in flight (dedupes eventfd writes)

	// runMu orders Stop against the start and the end of Run: a Stop that
	// saw the previous Run still running must not leave stopReq set for
	// the next one (a group's members stop each other as they end).
	runMu sync.Mutex

	// Cross-goroutine queues, guarded by mu. results holds finished Defer
	// callbacks, ticks holds NextTick functions; both run in the tick phase,
	// results first.
	mu       sync.Mutex
	results  []func()
	ticks    []func()
	queued   atomic.Int64 // len(results)+len(ticks), readable without mu
	runBatch []func()     // the snapshot being run, reused

	// waker is the backend's wake function for other goroutines; wakeMu
	// keeps the backend from closing its eventfd under a concurrent write
	// (the fd number could otherwise be reused by then).
	wakeMu sync.RWMutex
	waker  backend

	// Loop-goroutine state.
	be backend
	// leftInFlight is what the backend still had in flight when the last
	// Run closed it: 0 once shutdown has reaped every operation (tests).
	leftInFlight int
	dispatchFn   func(*completion) // l.dispatch, bound once: a method value allocates
	clockStale   bool              // a poll ran since now was refreshed (see dispatch)
	pool         *pool.Pool
	stopping     bool // shutdown has begun: no new Defer, servers, connections
	base         time.Time
	now          int64 // cached monotonic nanoseconds since base
	lastYield    int64 // l.now-scale time of the last yield or idle wait (Options.YieldEvery)
	yields       int   // how many times the loop yielded (tests)
	timerHeap    timers.Heap[*Timer]
	nTimers      int // pending timers, for MaxTimers
	expired      []*timers.Entry[*Timer]
	hooks        []func()

	// nowUsed is set when a callback ran (call) since now was last read:
	// pollIO then reads the clock before computing its timeout. Otherwise
	// the time runTimers read is still current and pollIO reuses it.
	nowUsed   bool
	waitStart int64 // l.now before a poll that may block; -1: it does not (see refreshAfterWait)
	// readiedWorkers is set when the loop readied another goroutine during
	// this iteration: Defer handed work to the pool, or a TLS handshake
	// started or got bytes (see pollIO).
	readiedWorkers bool
	err            error // first unhandled panic, returned by Run

	net netState // servers and connections

	// Group membership, set by NewGroup and never changed.
	group *Group
	index int

	// handoffs are connections accepted by another loop of the group for
	// this one (AcceptHandoff), guarded by mu and counted in queued; they
	// are adopted at the start of the tick phase, and closed if the loop
	// stops first.
	handoffs []handoff
	// inbox holds the connections on their way to this loop over
	// IORING_OP_MSG_RING (see handoff.go).
	inbox handoffInbox
	// outbox holds the direct descriptors this loop is moving to another
	// loop, by the token of their MSG_RING, until it completes (see
	// handOffDirect). Used on the loop goroutine only.
	outbox map[uint64]handoff
}

// handoff is an accepted connection travelling from the acceptor loop to the
// loop that will serve it.
type handoff struct {
	fd      int
	network string
	factory func(l *Loop) conn.Handler // called on the adopting loop
}

// New returns a loop configured by opts. It validates the options but opens
// no backend: the backend (io_uring ring or epoll set) is created by Run on
// the loop's own locked OS thread.
//
// It returns an error for negative PoolSize or MaxTimers and for an unknown
// Backend (wrapping ErrInvalidBackend).
func New(opts Options) (*Loop, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	l := &Loop{opts: opts}
	l.kindNow.Store(uint32(opts.Backend))
	return l, nil
}

// Run creates a loop with the zero Options and runs it with fn, like
// EventMachine's EM.run { ... }: it returns when the loop stops. See
// [Loop.Run] for the errors. To configure the loop, call [New] with an
// [Options] and then [Loop.Run].
func Run(fn func(l *Loop)) error {
	l, err := New(Options{})
	if err != nil {
		return err
	}
	return l.Run(fn)
}

// RunContext creates a loop with the zero Options and runs it with
// [Loop.RunContext]: a server is signal.NotifyContext plus this one call.
func RunContext(ctx context.Context, fn func(l *Loop) error) error {
	l, err := New(Options{})
	if err != nil {
		return err
	}
	return l.RunContext(ctx, fn)
}

// RunContext is [Loop.Run] for a setup that can fail and a run that a
// context ends. It calls fn on the loop goroutine, as Run does; when fn
// returns an error (a StartServer that cannot bind, say), the loop stops
// cleanly, as with Stop, and RunContext returns that error as is, joined
// with Run's own if there is one. When ctx is done, the loop stops
// gracefully, as with Stop, and RunContext returns nil: ending ctx is how
// the program asked to stop (signal.NotifyContext on SIGINT, say), not a
// failure. Other errors as Run, plus ErrNilFunc for a nil fn or ctx.
func (l *Loop) RunContext(ctx context.Context, fn func(l *Loop) error) error {
	if fn == nil || ctx == nil {
		return ErrNilFunc
	}
	var setupErr error
	var release func() bool
	err := l.Run(func(l *Loop) {
		// Registered on the loop goroutine, once the loop runs: a Stop
		// before that would be ignored.
		release = context.AfterFunc(ctx, l.Stop)
		if e := fn(l); e != nil {
			setupErr = e
			l.Stop()
		}
	})
	if release != nil {
		release()
	}
	return errors.Join(setupErr, err)
}

// Run opens the backend, calls fn on the loop goroutine, and then runs the
// loop until Stop is called. The calling goroutine becomes the loop goroutine
// and stays locked to its OS thread for the whole run, because io_uring's
// SINGLE_ISSUER and DEFER_TASKRUN let only the thread that created the ring
// submit to it and reap its completions.
//
// Each iteration runs three phases, each followed by the closes it caused:
//
//  1. runTicks: the NextTick queue as it stood when the phase began,
//     finished Defer callbacks first.
//  2. pollIO: submit, wait (not at all when ticks are pending, else until the
//     earliest timer or a wake-up) and dispatch completions.
//  3. runTimers: every timer due at the loop's cached time, in deadline
//     order, ties in insertion order.
//
// Run may be called again after it returns. It returns nil after Stop;
// ErrAlreadyRunning if the loop is running; the backend's error if none can
// be opened (for an explicit URing, one naming the missing feature); and,
// when Options.ErrorHandler is nil, the first panic recovered from a callback
// as a *PanicError, after stopping cleanly. A panic during the stop itself
// (an Unbind, say) comes joined with the errors of the stop (errors.Join):
// find the *PanicError with errors.As, not a type assertion.
func (l *Loop) Run(fn func(l *Loop)) error {
	if fn == nil {
		return ErrNilFunc
	}
	l.runMu.Lock()
	if l.running.Load() {
		l.runMu.Unlock()
		return ErrAlreadyRunning
	}
	l.running.Store(true)
	l.runMu.Unlock()
	defer func() {
		l.runMu.Lock()
		l.stopReq.Store(false)
		if h := testHookRunEnding; h != nil {
			h(l)
		}
		l.running.Store(false)
		l.runMu.Unlock()
	}()

	// SINGLE_ISSUER: the ring must be created, submitted to and waited on by
	// this one thread, for the whole run.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if !l.opts.FixedGOMAXPROCS {
		raiseProcs()
	}

	l.stopping = false
	l.err = nil

	be, err := openBackend(l.opts.Backend, backendConfig{
		recvBufferSize: l.opts.RecvBufferSize,
		recvBuffers:    l.opts.RecvBuffers,
		recvBuffersMax: l.opts.URing.RecvBuffersMax,
		ringEntries:    testHookRingEntries,
		setup:          l.opts.URing.Setup,
		sendZC:         l.opts.URing.SendZC,
		submitPerOp:    l.opts.URing.Submit == SubmitPerOp,
		directFiles:    directFiles(!l.opts.URing.ProcessFDs && !testHookProcessFDs),
		minWait:        l.opts.URing.MinWait,
		minWaitBatch:   l.opts.URing.MinWaitBatch,
		recvBundle:     l.opts.URing.Recv == RecvMultishotBundle || testHookRecvBundle && l.opts.URing.Recv == RecvMultishot,
		spliceWorker:   l.opts.URing.SpliceWorker,
	})
	if err != nil {
		return err
	}
	if h := testHookWrapBackend; h != nil {
		be = h(be)
	}
	l.be = be
	l.useBackendChunks(be)
	l.inbox.open(-1, false)
	if mr, ok := be.(msgRinger); ok && l.group != nil {
		dm, ok := be.(directMover)
		l.inbox.open(mr.msgRingFD(), ok && dm.directFiles() > 0)
		l.topUpInbox()
	}
	if l.group != nil {
		l.group.up.Add(1)
		defer l.group.up.Add(-1)
	}
	if l.dispatchFn == nil {
		l.dispatchFn = l.dispatch
	}
	l.kindNow.Store(uint32(be.kind()))
	l.wakeSig.Store(false)
	l.wakeMu.Lock()
	l.waker = be
	l.wakeMu.Unlock()
	p, err := pool.New(pool.Options{Workers: l.opts.PoolSize, Post: l.postResult, OnPanic: deferPanic})
	if err != nil {
		return errors.Join(err, l.closeBackend())
	}
	l.pool = p
	l.base = time.Now()
	l.now = 0
	l.lastYield = 0

	l.call(func() { fn(l) })
	l.runCloses()
	for !l.stopReq.Load() {
		l.runTicks()
		if l.stopReq.Load() {
			break
		}
		l.pollIO()
		if l.stopReq.Load() {
			break
		}
		l.runTimers()
	}
	return l.shutdown()
}

// Stop asks the loop to stop. Safe for concurrent use, and from callbacks.
// Unlike EventMachine, stopping is graceful: the loop stops accepting,
// runs the shutdown hooks (last added first), lets connections flush their
// queued output for up to Options.StopTimeout, unbinds every connection,
// reaps every in-flight operation, closes the backend and the Defer pool, and
// only then does Run return. Timers and ticks still pending are discarded,
// including those due in the phase that called Stop: no tick or timer
// callback runs after the one that stopped the loop. (EventMachine runs the
// rest of the iteration; then a periodic timer due with the stopping timer
// fires once more after EM.stop, depending on scheduling.)
// Stop on a loop that is not running does nothing, and a Stop that races
// with the end of a Run stops at most that Run, never the next one.
func (l *Loop) Stop() {
	l.runMu.Lock()
	asked := l.running.Load() && l.stopReq.CompareAndSwap(false, true)
	l.runMu.Unlock()
	if asked {
		l.wakeup(true)
	}
}

// testHookRunEnding, when set, runs at the end of Run, between clearing
// the stop request and clearing running, with Stop held off.
var testHookRunEnding func(l *Loop)

// Running reports whether Run is executing (EventMachine's
// reactor_running?). Safe for concurrent use.
func (l *Loop) Running() bool { return l.running.Load() }

// Backend reports the backend of the current or last Run; before the first
// Run it reports Options.Backend. Safe for concurrent use.
func (l *Loop) Backend() Backend { return Backend(l.kindNow.Load()) }

// Now returns the loop's cached time, like libuv's uv_now: refreshed after
// the I/O wait (before the first completion is handled) and before the timer
// phase. Timers are measured against it.
func (l *Loop) Now() time.Time { return l.base.Add(time.Duration(l.now)) }

// AddShutdownHook registers fn to run on the loop goroutine when the loop
// stops, before connections are unbound; hooks run last added first, like
// EventMachine's add_shutdown_hook. It returns ErrNilFunc for a nil fn.
func (l *Loop) AddShutdownHook(fn func()) error {
	if fn == nil {
		return ErrNilFunc
	}
	l.hooks = append(l.hooks, fn)
	return nil
}

// NextTick queues fn to run on the loop goroutine at the start of the next
// tick phase (EventMachine's next_tick and schedule). Safe for concurrent use:
// from another goroutine it wakes the loop (one eventfd write per wake-up,
// however many functions are queued). A tick queued by a tick runs in the
// next iteration, after the timers due by then, so a self-rescheduling tick
// cannot starve I/O or timers.
//
// Functions queued while the loop is not running wait for the next Run;
// functions still queued when a Run ends are discarded. It returns ErrNilFunc
// for a nil fn.
func (l *Loop) NextTick(fn func()) error {
	if fn == nil {
		return ErrNilFunc
	}
	l.mu.Lock()
	l.ticks = append(l.ticks, fn)
	l.mu.Unlock()
	l.queued.Add(1)
	l.wakeup(false)
	return nil
}

// postResult queues a finished Defer callback; it is the pool's Post.
func (l *Loop) postResult(done func()) {
	l.mu.Lock()
	l.results = append(l.results, done)
	l.mu.Unlock()
	l.queued.Add(1)
	l.wakeup(false)
}

// wakeup makes the loop goroutine leave poll. The write is skipped while
// the loop is not sleeping (it will see the queue before blocking: poll's
// caller sets sleeping and then checks queued, and we add to queued and then
// check sleeping; both sides use sequentially consistent atomics, so at least
// one sees the other) and deduped with wakeSig, as the runtime's
// netpollBreak does.
func (l *Loop) wakeup(force bool) {
	if !force && !l.sleeping.Load() {
		return
	}
	if !l.wakeSig.CompareAndSwap(false, true) {
		return
	}
	l.wakeMu.RLock()
	if l.waker != nil {
		// An error here means the backend is closing: the loop is stopping
		// and nothing is left to wake.
		_ = l.waker.wake()
	}
	l.wakeMu.RUnlock()
}

// runTicks is phase 1: it runs the results and ticks queued when the phase
// began.
func (l *Loop) runTicks() {
	if l.queued.Load() == 0 {
		return
	}
	l.mu.Lock()
	hand := l.handoffs
	l.handoffs = nil
	batch := append(l.runBatch[:0], l.results...)
	batch = append(batch, l.ticks...)
	clear(l.results)
	clear(l.ticks)
	l.results = l.results[:0]
	l.ticks = l.ticks[:0]
	l.mu.Unlock()
	l.queued.Add(-int64(len(batch) + len(hand)))
	// Connections handed over by the group's acceptor come first: they
	// were accepted before anything queued now could refer to them.
	for _, h := range hand {
		if l.stopReq.Load() {
			closeFD(h.fd)
			continue
		}
		l.adoptConn(h)
	}
	for i, fn := range batch {
		batch[i] = nil
		if l.stopReq.Load() {
			// Stop was called: the rest of the snapshot is discarded, as
			// pending ticks are at shutdown (see Stop).
			continue
		}
		l.call(fn)
	}
	l.runBatch = batch[:0]
	l.runCloses()
}

// pollIO is phase 2: flush pending sends, submit, wait and dispatch
// completions.
func (l *Loop) pollIO() {
	l.flushSends()
	if l.inbox.short.Load() {
		l.topUpInbox()
	}
	if l.nowUsed {
		// Callbacks ran since the timer phase read the clock: a timeout
		// measured from then would wait their run time too long.
		l.updateTime()
	}
	timeout := time.Duration(-1)
	deadline, timed := l.timerHeap.NextDeadline()
	if timed {
		timeout = max(time.Duration(deadline-l.now), 0)
	}
	switch {
	case timeout != 0 && l.readiedWorkers:
		// Submit readied a pool worker (or a TLS handshake goroutine) onto
		// this P's run queue; if we block in the kernel now, the worker
		// waits until another thread steals it or sysmon retakes the P (up
		// to milliseconds). Yielding first hands the P over at once:
		// measured 3x faster Defer round trips (BenchmarkDeferRoundTrip).
		l.yield()
	case l.opts.YieldEvery > 0 && l.now-l.lastYield >= int64(l.opts.YieldEvery):
		// Busy for a whole interval without a reschedule: yield before
		// sysmon takes the P in a system call (Options.YieldEvery).
		l.yield()
	}
	if timed && l.lastYield == l.now {
		// Yielded (which read the clock): the timeout runs from now.
		timeout = max(time.Duration(deadline-l.now), 0)
	}
	l.readiedWorkers = false
	if timeout != 0 {
		// Publish that we may block, then look at the queue once more: a
		// poster that added after our check sees sleeping and wakes us.
		l.sleeping.Store(true)
		if l.queued.Load() > 0 || l.stopReq.Load() || l.closesPending() {
			timeout = 0
		}
	}
	// The first completion refreshes the time (see dispatch), whether or
	// not the wait blocked: handlers that read Now or arm timers, and the
	// activity stamps of connections (inactivity timeouts), then read the
	// cached time instead of the clock, once per poll rather than per
	// completion. A poll without completions refreshes it on return.
	// l.now is current here (read above or by the timer phase), so it is
	// also when the wait began.
	l.clockStale = true
	l.waitStart = -1
	if timeout != 0 {
		l.waitStart = l.now
	}
	err := l.be.poll(timeout, l.dispatchFn)
	l.sleeping.Store(false)
	if l.clockStale {
		l.refreshAfterWait()
	}
	// Any wake-up in flight has been consumed or will make the next poll
	// return at once; either way the queues are read after this store.
	l.wakeSig.Store(false)
	if err != nil {
		l.fail(fmt.Errorf("loop: %s backend: %w", l.be.kind(), err))
	}
	l.runCloses()
}

// yield lets the Go scheduler run other goroutines on the loop's P, and
// marks the start of a new busy stretch.
func (l *Loop) yield() {
	l.yields++
	runtime.Gosched()
	l.updateTime() // the yield may have lasted: the wait starts now
	l.lastYield = l.now
}

// monotonic returns nanoseconds since base on the monotonic clock.
func (l *Loop) monotonic() int64 { return int64(time.Since(l.base)) }

// updateTime refreshes the cached loop time.
func (l *Loop) updateTime() {
	l.now = l.monotonic()
	l.nowUsed = false
}

// refreshAfterWait refreshes the cached time once per poll, when the wait
// returned (at its first completion, or after it if none came). A wait that
// blocked for a whole YieldEvery interval ends the busy stretch: the work
// that woke the loop is not delayed by a yield.
func (l *Loop) refreshAfterWait() {
	l.clockStale = false
	l.updateTime()
	if l.waitStart >= 0 && l.now-l.waitStart >= int64(l.opts.YieldEvery) {
		l.lastYield = l.now
	}
}

// call runs fn, recovering a panic into the error handler.
func (l *Loop) call(fn func()) {
	l.nowUsed = true
	defer func() {
		if v := recover(); v != nil {
			if d, ok := v.(deferredPanic); ok { // a Defer op's panic, re-raised here
				l.handlePanic(d.err)
				return
			}
			l.handlePanic(&PanicError{Value: v, Stack: debug.Stack()})
		}
	}()
	fn()
}

// handlePanic reports err to the ErrorHandler, or stops the loop with it.
func (l *Loop) handlePanic(err error) {
	h := l.opts.ErrorHandler
	if h == nil {
		l.fail(err)
		return
	}
	defer func() {
		if v := recover(); v != nil {
			l.fail(&PanicError{Value: v, Stack: debug.Stack()})
		}
	}()
	h(err)
}

// fail records the first fatal error and stops the loop.
func (l *Loop) fail(err error) {
	if l.err == nil {
		l.err = err
	}
	l.stopReq.Store(true)
}

// shutdown runs the graceful stop sequence and returns Run's result:
// stop accepting (servers stop, their listeners close), run the shutdown
// hooks, keep doing I/O until every connection's output is flushed or
// Options.StopTimeout passes, close every connection (Unbind(nil) each),
// reap every operation in flight and close the fds, then close the Defer
// pool and the backend.
func (l *Loop) shutdown() error {
	l.stopping = true
	var errs []error
	if l.be != nil {
		errs = append(errs, l.stopServers())
	}
	for len(l.hooks) > 0 {
		fn := l.hooks[len(l.hooks)-1]
		l.hooks[len(l.hooks)-1] = nil
		l.hooks = l.hooks[:len(l.hooks)-1]
		l.call(fn)
	}
	if l.be != nil {
		errs = append(errs, l.shutdownConns())
	}
	// Every connection is closed, and with it its TLS transport: the
	// handshake goroutines return.
	l.tlsGoroutines.Wait()
	if l.pool != nil {
		// Waits for running Defer operations; queued ones never start and
		// finished callbacks are discarded below.
		if err := l.pool.Close(); err != nil {
			errs = append(errs, err)
		}
		l.pool = nil
	}
	if err := l.closeBackend(); err != nil {
		errs = append(errs, err)
	}
	l.clearTimers()
	l.mu.Lock()
	clear(l.results)
	clear(l.ticks)
	n := len(l.results) + len(l.ticks)
	l.results, l.ticks = l.results[:0], l.ticks[:0]
	l.mu.Unlock()
	l.queued.Add(-int64(n))
	l.dropHandoffs()
	if l.err != nil {
		errs = append([]error{l.err}, errs...)
	}
	return errors.Join(errs...)
}

// postConn hands the accepted fd to l, which adopts it in its next tick
// phase (or closes it if it stops first). Safe for concurrent use.
func (l *Loop) postConn(h handoff) {
	l.mu.Lock()
	l.handoffs = append(l.handoffs, h)
	l.mu.Unlock()
	l.queued.Add(1)
	l.wakeup(false)
}

// dropHandoffs closes the connections handed to l that it did not adopt.
func (l *Loop) dropHandoffs() {
	l.mu.Lock()
	hand := l.handoffs
	l.handoffs = nil
	l.mu.Unlock()
	l.queued.Add(-int64(len(hand)))
	for _, h := range hand {
		closeFD(h.fd)
	}
}

// closeBackend closes the backend once.
func (l *Loop) closeBackend() error {
	be := l.be
	if be == nil {
		return nil
	}
	l.wakeMu.Lock()
	l.waker = nil
	l.wakeMu.Unlock()
	// No new MSG_RING hand-offs from now on (they take the MPSC queue);
	// those delivered but not dispatched die with the ring, and their fds
	// are closed once it is gone.
	l.inbox.shut()
	l.leftInFlight = be.inFlight()
	err := be.close()
	l.closePipes()
	l.inbox.drain()
	l.outbox = nil // their descriptors died with the ring
	l.be = nil
	return err
}

// noCopy makes go vet's copylocks check flag copies of a Loop.
type noCopy struct{}

// Lock is a no-op used by go vet's copylocks check.
func (*noCopy) Lock() {}

// Unlock is a no-op used by go vet's copylocks check.
func (*noCopy) Unlock() {}

// Of returns the loop that owns c (the loop whose server accepted it, or
// whose Connect or OpenDatagram made it), so a handler can reach its loop's
// timers, NextTick and Connect without capturing the loop in its factory.
// It returns nil for a nil Conn.
func Of(c *conn.Conn) *Loop {
	d := connio.DriverOf(c)
	if d == nil {
		return nil
	}
	l, _ := d.Owner().(*Loop)
	return l
}
