package loop

// Spawned is a lightweight process made by [Spawn] (EventMachine's
// EM.spawn and EM::SpawnedProcess): a function that runs once per
// [Spawned.Notify], on the loop goroutine, with the notified value.
type Spawned[T any] struct {
	l  *Loop
	fn func(T)
}

// Spawn returns a process that runs fn(v) on the loop goroutine for each
// Notify(v), in a later tick phase, in the order of the Notify calls
// (EventMachine's EM.spawn { |v| ... }). fn may refer to the returned
// *Spawned to notify itself. A nil fn makes a process whose Notify does
// nothing. Safe for concurrent use.
//
// EventMachine's EM.yield and EM.yield_and_notify, which swap the block for
// later notifies, are not carried over: keep the state in fn's closure.
func Spawn[T any](l *Loop, fn func(T)) *Spawned[T] {
	return &Spawned[T]{l: l, fn: fn}
}

// Notify queues one run of the process's function with v (EventMachine's
// notify, resume and run). It never runs the function synchronously: the run
// happens in the loop's tick phase like a [Loop.NextTick] function, so runs
// queued by one goroutine keep their order, and a run queued by the process
// itself happens in the next iteration. Safe for concurrent use; from
// another goroutine it wakes the loop.
//
// As with NextTick, runs queued while the loop is not running wait for the
// next Run, and runs still queued when a Run ends are discarded. A panic in
// the function is handled like a panic in any callback.
func (s *Spawned[T]) Notify(v T) {
	if s.fn == nil {
		return
	}
	fn := s.fn
	// NextTick fails only for a nil function.
	_ = s.l.NextTick(func() { fn(v) })
}
