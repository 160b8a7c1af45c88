package loop

import (
	"errors"
	"slices"
)

// ErrIteratorStarted is returned by [Iterator.Each], [Map] and [Inject] when
// the iterator has already been started: an Iterator runs once
// (EventMachine raises "cannot iterate over an iterator more than once").
var ErrIteratorStarted = errors.New("loop: iterator already started")

// Iterator is EventMachine's EM::Iterator: it walks a slice handing each
// item to an asynchronous function, with at most Concurrency items in
// progress at once. The function signals that it is done with an item by
// calling Next on its [Step] (or Return on a [MapStep] or [InjectStep]),
// possibly much later, from another callback.
//
// Scheduling follows EventMachine exactly: workers start one per tick phase
// (a NextTick each), a worker takes the next item when its previous one is
// done (again through NextTick), and the after function runs once every item
// is done. Lowering the concurrency while running retires workers as their
// items finish; raising it starts new ones; 0 pauses the iteration (no new
// items start) until it is raised again.
//
// Call its methods only from the loop goroutine. Make one with
// [NewIterator]; run it with Each, [Map] or [Inject].
type Iterator[T any] struct {
	l           *Loop
	items       []T
	pos         int
	concurrency int

	started, ended, finished bool
	pending, workers         int

	foreach     func(T, *Step)
	after       func()
	processNext func() // it.processNext, bound once
	startWorker func() // it.spawn, bound once
	itemDoneFn  func() // it.itemDone, bound once
}

// NewIterator returns an iterator over a copy of items (so the caller may
// change its slice) that runs on l with at most concurrency items in
// progress. A concurrency below 1 is treated as 1 (EventMachine raises
// ArgumentError).
func NewIterator[T any](l *Loop, items []T, concurrency int) *Iterator[T] {
	it := &Iterator[T]{l: l, items: slices.Clone(items), concurrency: max(concurrency, 1)}
	it.processNext = it.next
	it.startWorker = it.spawn
	it.itemDoneFn = it.itemDone
	return it
}

// Concurrency returns the current concurrency limit.
func (it *Iterator[T]) Concurrency() int { return it.concurrency }

// SetConcurrency changes the concurrency limit, also while the iteration
// runs (EventMachine's concurrency=): raising it starts workers from the
// next tick phase, lowering it retires workers as their items finish. A
// value below 0 is treated as 0, which pauses the iteration.
func (it *Iterator[T]) SetConcurrency(n int) {
	n = max(n, 0)
	old := it.concurrency
	it.concurrency = n
	if n > old && it.started && !it.ended {
		it.spawnWorkers()
	}
}

// Each calls foreach for every item, at most Concurrency at a time,
// starting in the next tick phase, and after (which may be nil) once every
// item is done (EventMachine's each). foreach must call s.Next() exactly
// once per item, when it is done with it; further calls do nothing.
//
// It returns ErrNilFunc for a nil foreach and ErrIteratorStarted if the
// iterator was started before; foreach and after never run then.
func (it *Iterator[T]) Each(foreach func(item T, s *Step), after func()) error {
	if foreach == nil {
		return ErrNilFunc
	}
	if it.started {
		return ErrIteratorStarted
	}
	it.started = true
	it.foreach = foreach
	it.after = after
	it.spawnWorkers()
	return nil
}

// Step is handed to the function given to [Iterator.Each] with each item.
type Step struct {
	done func()
	used bool
}

// Next tells the iterator the item is done, so the worker goes on with the
// next item in the next tick phase (or the iteration ends). Only the first
// call counts; EventMachine raises on a second one.
func (s *Step) Next() {
	if s.used {
		return
	}
	s.used = true
	s.done()
}

// MapStep is handed to the function given to [Map] with each item.
type MapStep[R any] struct {
	step    *Step
	results []R
	i       int
}

// Return stores v as the item's result and tells the iterator the item is
// done. Only the first call counts.
func (s *MapStep[R]) Return(v R) {
	if s.step.used {
		return
	}
	s.results[s.i] = v
	s.step.Next()
}

// Map calls foreach for every item of it, like Each, and then after with the
// results in the order of the items, whatever order they completed in
// (EventMachine's map). foreach reports an item's result with s.Return(v).
// Errors are as for Each; after may be nil.
func Map[T, R any](it *Iterator[T], foreach func(item T, s *MapStep[R]), after func(results []R)) error {
	if foreach == nil {
		return ErrNilFunc
	}
	results := make([]R, len(it.items))
	index := 0
	return it.Each(func(item T, s *Step) {
		ms := &MapStep[R]{step: s, results: results, i: index}
		index++
		foreach(item, ms)
	}, func() {
		if after != nil {
			after(results)
		}
	})
}

// InjectStep is handed to the function given to [Inject] with each item.
type InjectStep[M any] struct {
	step *Step
	memo *M
}

// Return makes memo the accumulator the next items see and tells the
// iterator the item is done. Only the first call counts.
func (s *InjectStep[M]) Return(memo M) {
	if s.step.used {
		return
	}
	*s.memo = memo
	s.step.Next()
}

// Inject folds the items of it into memo (EventMachine's inject): foreach
// gets the accumulator as it stands when the item starts and reports the new
// one with s.Return; after gets the final accumulator. With a concurrency
// above 1, items that run at the same time see the same accumulator and
// the last Return wins, as in EventMachine. Errors are as for Each; after
// may be nil.
func Inject[T, M any](it *Iterator[T], memo M, foreach func(memo M, item T, s *InjectStep[M]), after func(memo M)) error {
	if foreach == nil {
		return ErrNilFunc
	}
	acc := &memo
	return it.Each(func(item T, s *Step) {
		foreach(*acc, item, &InjectStep[M]{step: s, memo: acc})
	}, func() {
		if after != nil {
			after(*acc)
		}
	})
}

// spawnWorkers starts workers, one per tick phase, up to the concurrency
// (EventMachine's spawn_workers).
func (it *Iterator[T]) spawnWorkers() {
	_ = it.l.NextTick(it.startWorker) // fails only for a nil function
}

// spawn starts one worker and queues itself for the next one.
func (it *Iterator[T]) spawn() {
	if it.workers < it.concurrency && !it.ended {
		it.workers++
		it.next()
		_ = it.l.NextTick(it.startWorker)
	}
}

// next is one worker's step (EventMachine's process_next): retire if the
// iteration ended or there are more workers than the concurrency allows,
// else take the next item, or end the iteration when none is left.
func (it *Iterator[T]) next() {
	if it.ended || it.workers > it.concurrency {
		it.workers--
		return
	}
	if it.pos == len(it.items) {
		it.ended = true
		it.workers--
		it.allDone()
		return
	}
	item := it.items[it.pos]
	var zero T
	it.items[it.pos] = zero // the iterator no longer keeps it alive
	it.pos++
	it.pending++
	it.foreach(item, &Step{done: it.itemDoneFn})
}

// itemDone is Step.Next: the item is finished.
func (it *Iterator[T]) itemDone() {
	it.pending--
	if it.ended {
		it.allDone()
		return
	}
	_ = it.l.NextTick(it.processNext)
}

// allDone runs after once, when the iteration has ended and no item is in
// progress.
func (it *Iterator[T]) allDone() {
	if it.finished || !it.ended || it.pending != 0 {
		return
	}
	it.finished = true
	if it.after != nil {
		it.after()
	}
}
