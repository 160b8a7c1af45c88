package loop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Group is a set of loops run together, one per core or as many as asked:
// each loop has its own backend (io_uring ring or epoll set), its own locked
// OS thread, timers, NextTick queue and Defer pool, exactly as a lone [Loop].
// Nothing is shared between them but what the program shares: a connection,
// a timer or a handler belongs to the loop that runs it, and work crosses
// loops only through [Loop.Post], [Group.Each] or [Loop.NextTick].
//
// Servers started with [Group.StartServer] accept on every loop: by default
// each loop has its own SO_REUSEPORT listener on the same address and the
// kernel spreads connections among them ([AcceptReusePort]); with
// Options.Accept = [AcceptHandoff] one listener on the first loop hands
// accepted connections round-robin to all loops.
//
// A group runs and stops as a unit: when any of its loops stops — [Group.Stop],
// [Loop.Stop] on any member, or a panic without an ErrorHandler — the others
// are stopped too, each gracefully (see [Loop.Stop]), and [Group.Run] returns
// once all of them have. A panic follows the ErrorHandler rules of the loop it
// happened on.
type Group struct {
	_ noCopy

	loops []*Loop
	opts  Options

	mu      sync.Mutex
	servers []*GroupServer // started and not yet cleaned up after a Run
	running bool

	// stopping is set by Stop while the group runs: a loop that starts
	// after it stops at once.
	stopping atomic.Bool

	// up counts the loops whose backend is open (during their Run): a
	// hand-off server starts accepting once every loop can take
	// connections (GroupServer.adopt).
	up atomic.Int32
}

// NewGroup returns a group of n loops, each configured by opts (see [New]).
// n <= 0 means one loop per usable CPU: runtime.GOMAXPROCS(0), or 1 when
// Run raised it from 1 (see Options.FixedGOMAXPROCS). Like New, it
// opens no backend: each loop opens its own in [Group.Run], on its own thread.
//
// It returns the errors of New.
func NewGroup(n int, opts Options) (*Group, error) {
	if n <= 0 {
		n = usableCPUs()
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	g := &Group{opts: opts, loops: make([]*Loop, n)}
	for i := range g.loops {
		l, err := New(opts)
		if err != nil {
			return nil, err
		}
		l.group, l.index = g, i
		g.loops[i] = l
	}
	return g, nil
}

// Len returns the number of loops in g. Safe for concurrent use.
func (g *Group) Len() int { return len(g.loops) }

// Loop returns the i-th loop of g (0 <= i < Len). Safe for concurrent use.
func (g *Group) Loop(i int) *Loop { return g.loops[i] }

// Loops returns the loops of g, in index order. The slice is a copy. Safe for
// concurrent use.
func (g *Group) Loops() []*Loop { return append([]*Loop(nil), g.loops...) }

// Run runs every loop of g, each on its own goroutine locked to its own OS
// thread, calling fn on each of them first (as [Loop.Run] does; fn may tell
// the loops apart with [Loop.Index]). It returns when all loops have
// stopped: nil, or the errors of the loops that failed, joined with
// errors.Join in loop order (a *PanicError from a loop without ErrorHandler
// is found with errors.As). When one loop stops, for whatever reason, Run
// stops the others.
//
// It returns ErrNilFunc for a nil fn and ErrAlreadyRunning when g is running.
// Run may be called again after it returns.
func (g *Group) Run(fn func(l *Loop)) error {
	if fn == nil {
		return ErrNilFunc
	}
	g.mu.Lock()
	if g.running {
		g.mu.Unlock()
		return ErrAlreadyRunning
	}
	g.running = true
	g.stopping.Store(false)
	g.mu.Unlock()

	errs := make([]error, len(g.loops))
	var wg sync.WaitGroup
	for i, l := range g.loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Run(func(l *Loop) {
				if g.stopping.Load() {
					// The group was stopped before this loop ran (another
					// failed to start, say): Stop then found it not
					// running yet.
					l.Stop()
					return
				}
				fn(l)
			})
			// One member stopping stops the group: a half-running group
			// would serve a shrinking share of a SO_REUSEPORT address.
			g.Stop()
		}()
	}
	wg.Wait()

	g.mu.Lock()
	servers := g.servers
	g.servers = nil
	g.running = false
	g.mu.Unlock()
	for _, gs := range servers {
		gs.cleanup()
	}
	for _, l := range g.loops {
		l.dropHandoffs()
	}
	for i, err := range errs {
		if err != nil && len(g.loops) > 1 {
			errs[i] = fmt.Errorf("loop %d: %w", i, err)
		}
	}
	return errors.Join(errs...)
}

// RunContext is [Group.Run] for a setup that can fail and a run that a
// context ends, as [Loop.RunContext] is for one loop: an error from fn on
// any loop stops the group cleanly and is returned (with the loop's index,
// joined with the others'); ctx being done stops the group gracefully, and
// then RunContext returns nil. Other errors as Run, plus ErrNilFunc for a
// nil fn or ctx.
func (g *Group) RunContext(ctx context.Context, fn func(l *Loop) error) error {
	if fn == nil || ctx == nil {
		return ErrNilFunc
	}
	setupErrs := make([]error, len(g.loops))
	var releases []func() bool
	var mu sync.Mutex
	err := g.Run(func(l *Loop) {
		if l.Index() == 0 {
			r := context.AfterFunc(ctx, g.Stop)
			mu.Lock()
			releases = append(releases, r)
			mu.Unlock()
		}
		if e := fn(l); e != nil {
			if len(g.loops) > 1 {
				e = fmt.Errorf("loop %d: %w", l.Index(), e)
			}
			setupErrs[l.Index()] = e
			g.Stop()
		}
	})
	for _, r := range releases {
		r()
	}
	return errors.Join(errors.Join(setupErrs...), err)
}

// Stop stops every loop of g gracefully (see [Loop.Stop]); [Group.Run]
// returns once they all have. Safe for concurrent use, and from callbacks.
// Stopping a group that is not running does nothing.
func (g *Group) Stop() {
	g.stopping.Store(true) // before the loops: one not running yet sees it (Run)
	for _, l := range g.loops {
		l.Stop()
	}
}

// Running reports whether Run is executing. Safe for concurrent use.
func (g *Group) Running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}

// Each queues fn to run once on every loop of g, each time on that loop's
// goroutine in its tick phase, with that loop as argument (like
// [Loop.NextTick] on each loop). Safe for concurrent use. The calls run
// concurrently with each other, one per loop, so fn must only touch what
// belongs to the loop it is given, or synchronise. It returns ErrNilFunc for
// a nil fn.
func (g *Group) Each(fn func(l *Loop)) error {
	if fn == nil {
		return ErrNilFunc
	}
	for _, l := range g.loops {
		_ = l.NextTick(func() { fn(l) })
	}
	return nil
}

// Post queues fn to run on the loop other, in its next tick phase, and wakes
// it: the way to hand work to another loop of a group, which then runs it on
// its own goroutine like any of its callbacks (a panic in fn follows other's
// ErrorHandler rules). l is the sending loop and only documents the intent;
// Post is other.NextTick(fn) and, like it, safe for concurrent use. It
// returns ErrNilFunc for a nil fn.
func (l *Loop) Post(other *Loop, fn func()) error {
	return other.NextTick(fn)
}

// Group returns the group l belongs to, or nil for a loop made by [New] or
// [Run]. Safe for concurrent use.
func (l *Loop) Group() *Group { return l.group }

// Index returns the position of l in its group (0 for a loop not in a
// group). Safe for concurrent use.
func (l *Loop) Index() int { return l.index }
