package loop

// fifo is a first-in first-out queue over a slice that reuses its storage:
// popped slots are zeroed (so they keep nothing alive), the slice is
// compacted when the live part is at most half of it, and a large backing
// array is dropped when the queue empties (EventMachine's Queue kept its
// peak memory, see eventmachine#566).
type fifo[T any] struct {
	buf  []T
	head int
}

// fifoKeepCap is the largest backing array kept once a fifo empties.
const fifoKeepCap = 1024

// len returns the number of queued values.
func (f *fifo[T]) len() int { return len(f.buf) - f.head }

// push appends vs.
func (f *fifo[T]) push(vs ...T) {
	if f.head > 0 && len(f.buf)+len(vs) > cap(f.buf) && f.head >= f.len() {
		n := copy(f.buf, f.buf[f.head:])
		clear(f.buf[n:])
		f.buf = f.buf[:n]
		f.head = 0
	}
	f.buf = append(f.buf, vs...)
}

// pop removes and returns the oldest value; the fifo must not be empty.
func (f *fifo[T]) pop() T {
	v := f.buf[f.head]
	var zero T
	f.buf[f.head] = zero
	f.head++
	if f.head == len(f.buf) {
		f.head = 0
		f.buf = f.buf[:0]
		if cap(f.buf) > fifoKeepCap {
			f.buf = nil
		}
	}
	return v
}
