package uring

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Slabs hands out fixed-size chunks of Go memory that stay pinned
// (runtime.Pinner) for as long as the Slabs is open, for bytes the kernel reads
// after the call that submitted them returns, such as a SEND's payload. A chunk
// from here needs no pin of its own per operation: [Slabs.Contains] tells the
// submitter so. Pinning costs a lock and a record per object each time it is
// done; a slab is pinned once, when it is allocated.
//
// The memory is ordinary Go memory: it stays allocated while anything refers
// to a chunk, closed or not, so a chunk held too long is never a dangling
// pointer. Slabs are allocated on demand, perSlab chunks at a time, up to
// maxSlabs; after that [Slabs.Get] returns nil and the caller allocates (and
// pins per operation) as before.
//
// A nil *Slabs is valid and empty: Get returns nil, Put and Contains false.
// Not safe for concurrent use.
type Slabs struct {
	chunk, perSlab, maxSlabs int

	slabs  []slab
	free   [][]byte
	closed bool
}

// slab is one allocation of perSlab chunks, and its pin.
type slab struct {
	mem       []byte
	base, end uintptr // mem's address range, [base, end)
	pin       runtime.Pinner
	// holds counts, per chunk, the Holds not yet Released; returned marks
	// the held chunks Put back, freed by their last Release.
	holds    []uint32
	returned []bool
}

// NewSlabs returns slabs of perSlab chunks of chunk bytes each, at most
// maxSlabs of them. No memory is allocated until the first Get.
//
// Errors wrap unix.EINVAL for a size, count or product that is not positive
// or does not fit in an int.
func NewSlabs(chunk, perSlab, maxSlabs int) (*Slabs, error) {
	if chunk <= 0 || perSlab <= 0 || maxSlabs <= 0 || chunk > int(^uint(0)>>1)/perSlab {
		return nil, fmt.Errorf("uring: slabs of %d chunks of %d bytes, at most %d slabs: %w", perSlab, chunk, maxSlabs, unix.EINVAL)
	}
	return &Slabs{chunk: chunk, perSlab: perSlab, maxSlabs: maxSlabs}, nil
}

// ChunkSize reports the capacity of the chunks Get returns (0 for nil).
func (s *Slabs) ChunkSize() int {
	if s == nil {
		return 0
	}
	return s.chunk
}

// Get returns a free chunk: length 0, capacity ChunkSize, pinned until Close.
// It allocates a new slab when no chunk is free and fewer than maxSlabs
// exist; it returns nil when all are in use, and after Close.
func (s *Slabs) Get() []byte {
	if s == nil || s.closed {
		return nil
	}
	if len(s.free) == 0 {
		if len(s.slabs) == s.maxSlabs {
			return nil
		}
		s.grow()
	}
	k := len(s.free) - 1
	b := s.free[k]
	s.free[k] = nil
	s.free = s.free[:k]
	return b
}

// grow allocates and pins one more slab and frees its chunks.
func (s *Slabs) grow() {
	s.slabs = append(s.slabs, slab{mem: make([]byte, s.chunk*s.perSlab)})
	sl := &s.slabs[len(s.slabs)-1]
	// Memory: the kernel reads chunks of mem after the submitting call
	// returns; the pin keeps mem in place until Close, and the Go references
	// (s.slabs, and every chunk handed out) keep it allocated.
	sl.pin.Pin(&sl.mem[0])
	sl.base = uintptr(unsafe.Pointer(&sl.mem[0]))
	sl.end = sl.base + uintptr(len(sl.mem))
	sl.holds = make([]uint32, s.perSlab)
	sl.returned = make([]bool, s.perSlab)
	for i := s.perSlab - 1; i >= 0; i-- {
		off := i * s.chunk
		s.free = append(s.free, sl.mem[off:off:off+s.chunk])
	}
}

// Put gives back a chunk Get returned, which its user no longer needs, and
// reports true; a chunk that is held ([Slabs.Hold]) goes back to the free
// chunks at its last Release instead of now. For any other slice (one Get
// did not return, or a chunk of a Slabs since closed) it does nothing and
// reports false, so the caller can recycle or drop it as its own.
func (s *Slabs) Put(b []byte) bool {
	if s == nil || s.closed || cap(b) != s.chunk {
		return false
	}
	b = b[:1]
	i, j := s.locate(b)
	if i < 0 {
		return false
	}
	sl := &s.slabs[i]
	if uintptr(unsafe.Pointer(&b[0])) != sl.base+uintptr(j*s.chunk) {
		return false // inside a chunk, not its start
	}
	if sl.holds[j] > 0 {
		sl.returned[j] = true
	} else {
		s.free = append(s.free, b[:0])
	}
	return true
}

// Hold keeps the chunk that holds all of p from being handed out again
// until a matching Release, even if its user Puts it back before: for bytes
// the kernel reads after the operation that sent them has completed (a
// zero-copy send, until its notification). It reports whether p lies in a
// chunk of an open slab (as Contains); for any other p it does nothing.
func (s *Slabs) Hold(p []byte) bool {
	i, j := s.locate(p)
	if i < 0 {
		return false
	}
	s.slabs[i].holds[j]++
	return true
}

// Release ends one Hold of the chunk that holds p; the last one frees the
// chunk if it was Put back meanwhile. It does nothing for a p Hold would
// report false for (after Close too).
func (s *Slabs) Release(p []byte) {
	i, j := s.locate(p)
	if i < 0 {
		return
	}
	sl := &s.slabs[i]
	if sl.holds[j] == 0 {
		return
	}
	if sl.holds[j]--; sl.holds[j] == 0 && sl.returned[j] {
		sl.returned[j] = false
		off := j * s.chunk
		s.free = append(s.free, sl.mem[off:off:off+s.chunk])
	}
}

// Contains reports whether all of p lies in one chunk of an open slab, that is,
// in memory pinned until Close. It is false for an empty p and after Close.
func (s *Slabs) Contains(p []byte) bool { return s.Index(p) >= 0 }

// Index returns the number of the slab (0 for the first allocated, and so on)
// one of whose chunks holds all of p, or -1 if none does, for an empty p and
// after Close.
func (s *Slabs) Index(p []byte) int {
	i, _ := s.locate(p)
	return i
}

// locate returns the slab and the chunk in it that hold all of p, or -1, -1.
func (s *Slabs) locate(p []byte) (slab, chunk int) {
	if s == nil || s.closed || len(p) == 0 {
		return -1, -1
	}
	start := uintptr(unsafe.Pointer(&p[0]))
	last := start + uintptr(len(p)) - 1
	for i := range s.slabs {
		sl := &s.slabs[i]
		if start >= sl.base && last < sl.end {
			j := (start - sl.base) / uintptr(s.chunk)
			if j == (last-sl.base)/uintptr(s.chunk) {
				return i, int(j)
			}
			return -1, -1
		}
	}
	return -1, -1
}

// Slab returns the memory of slab i (as numbered by Index), every chunk of it,
// or nil for a slab not allocated and after Close. The caller may hand it to
// the kernel for as long as the Slabs is open (to register it as a fixed
// buffer, say) but must not write into chunks it did not Get.
func (s *Slabs) Slab(i int) []byte {
	if s == nil || s.closed || i < 0 || i >= len(s.slabs) {
		return nil
	}
	return s.slabs[i].mem
}

// MaxSlabs reports how many slabs the Slabs allocates at most (0 for nil).
func (s *Slabs) MaxSlabs() int {
	if s == nil {
		return 0
	}
	return s.maxSlabs
}

// Close unpins every slab. Chunks still referenced stay valid Go memory, but
// are no longer pinned: Contains and Put report false for them from now on.
// Close is idempotent.
func (s *Slabs) Close() {
	if s == nil || s.closed {
		return
	}
	s.closed = true
	for i := range s.slabs {
		s.slabs[i].pin.Unpin()
	}
	clear(s.free)
	s.free = nil
}
