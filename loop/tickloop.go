package loop

// TickAction is what a [TickLoop] function returns: whether to go on.
type TickAction uint8

const (
	// TickContinue calls the function again in the next iteration.
	TickContinue TickAction = iota
	// TickStop stops the tick loop (EventMachine's :stop).
	TickStop
)

// TickLoop calls a function once per loop iteration, in the tick phase,
// until it returns TickStop or Stop is called (EventMachine's EM.tick_loop
// and EM::TickLoop). Like any self-rescheduling tick it cannot starve I/O or
// timers: each call is queued by the previous one, so it runs in the next
// iteration. Make one with [Loop.TickLoop]. Call its methods only from the
// loop goroutine.
type TickLoop struct {
	l       *Loop
	fn      func() TickAction
	stopped bool
	gen     uint64 // bumped by Start, so a tick queued before a Stop and Start is ignored
	stops   []func()
}

// TickLoop starts calling fn from the next tick phase, once per iteration,
// until fn returns TickStop or the tick loop's Stop is called
// (EventMachine's EM.tick_loop). If fn panics, the panic is handled like a
// panic in any callback and the tick loop stops (its OnStop functions run).
// A nil fn gives a tick loop that is already stopped.
// Call only from the loop goroutine, or before Run.
func (l *Loop) TickLoop(fn func() TickAction) *TickLoop {
	t := &TickLoop{l: l, fn: fn, stopped: true}
	if fn != nil {
		t.Start()
	}
	return t
}

// Start restarts a stopped tick loop (EventMachine's start) and reports
// whether it did: it does nothing on a running tick loop or one made with a
// nil function.
func (t *TickLoop) Start() bool {
	if !t.stopped || t.fn == nil {
		return false
	}
	t.stopped = false
	t.gen++
	t.schedule()
	return true
}

// Stop stops the tick loop and then runs its OnStop functions, in the order
// they were added (EventMachine's stop). Stopping a stopped tick loop does
// nothing. A panic in an OnStop function is handled like a panic in any
// callback and the others still run.
func (t *TickLoop) Stop() {
	if t.stopped {
		return
	}
	t.stopped = true
	for len(t.stops) > 0 {
		fn := t.stops[0]
		t.stops[0] = nil
		t.stops = t.stops[1:]
		callWith(t.l, func(struct{}) { fn() }, struct{}{})
	}
	t.stops = nil
}

// Stopped reports whether the tick loop is stopped (EventMachine's
// stopped?).
func (t *TickLoop) Stopped() bool { return t.stopped }

// OnStop adds fn to run when the tick loop stops; if it is already stopped,
// fn runs at once (EventMachine's on_stop). A nil fn is ignored.
func (t *TickLoop) OnStop(fn func()) {
	if fn == nil {
		return
	}
	if t.stopped {
		fn()
		return
	}
	t.stops = append(t.stops, fn)
}

// schedule queues the next call.
func (t *TickLoop) schedule() {
	gen := t.gen
	_ = t.l.NextTick(func() { t.tick(gen) }) // fails only for a nil function
}

// tick is one call of the function.
func (t *TickLoop) tick(gen uint64) {
	if t.stopped || gen != t.gen {
		return
	}
	returned := false
	defer func() {
		if !returned && gen == t.gen {
			t.Stop() // fn panicked: stop, then let the panic go on to the loop
		}
	}()
	action := t.fn()
	returned = true
	if gen != t.gen || t.stopped { // fn stopped (and maybe restarted) the tick loop
		return
	}
	if action == TickStop {
		t.Stop()
		return
	}
	t.schedule()
}
