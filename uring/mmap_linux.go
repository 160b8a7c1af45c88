package uring

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file owns the mappings: the SQ/CQ rings and SQE array shared with the kernel, and
// the anonymous memory behind buffer rings. Mappings are made with unix.Mmap, so each is a
// []byte whose bounds are checked before any pointer is derived from it, and released with
// unix.Munmap only by Ring.Close / BufRing.Close, after which no pointer into them is used.

// mmapRing maps size bytes of the ring fd at the IORING_OFF_* offset off.
func mmapRing(fd int, off int64, size int) ([]byte, error) {
	b, err := unix.Mmap(fd, off, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("uring: mmap: %w", err)
	}
	return b, nil
}

// mmapAnon maps size bytes of zeroed, page-aligned private memory outside the Go heap.
// It is not pre-faulted: a provided-buffer ring reserves room for its largest size, and
// a buffer should cost resident memory only once the kernel has received into it.
func mmapAnon(size int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("uring: mmap: %w", err)
	}
	return b, nil
}

// munmap releases a mapping made by mmapRing or mmapAnon; nil is a no-op.
func munmap(b []byte) error {
	if b == nil {
		return nil
	}
	if err := unix.Munmap(b); err != nil {
		return fmt.Errorf("uring: munmap: %w", err)
	}
	return nil
}

// at returns a pointer to the size bytes at off in mem, panicking (a broken invariant: the
// kernel's offsets and our sizes disagree) if they do not fit.
func at(mem []byte, off, size uintptr) unsafe.Pointer {
	if off+size > uintptr(len(mem)) || off+size < off {
		panic(fmt.Sprintf("uring: ring offset %d+%d outside a %d-byte mapping", off, size, len(mem)))
	}
	// Memory: mem is a live mapping (checked bounds above) that stays mapped until Close,
	// and nothing derived from it is used after Close.
	return unsafe.Add(unsafe.Pointer(unsafe.SliceData(mem)), off)
}

// atomicU32 returns the ring index or flags word at byte offset off of mem.
func atomicU32(mem []byte, off uint32) *atomic.Uint32 {
	// Memory: at checked the 4 bytes lie in the mapping; kernel offsets are 4-aligned.
	return (*atomic.Uint32)(at(mem, uintptr(off), 4))
}

// sqeSlice returns the n SQEs of the SQE array mapping.
func sqeSlice(mem []byte, n uint32) []SQE {
	size := uintptr(n) * unsafe.Sizeof(SQE{})
	// Memory: the n*64 bytes lie in the mapping (checked by at), which is page-aligned.
	return unsafe.Slice((*SQE)(at(mem, 0, size)), n)
}

// cqeSlice returns the n CQEs at byte offset off of the CQ ring mapping.
func cqeSlice(mem []byte, off, n uint32) []CQE {
	size := uintptr(n) * unsafe.Sizeof(CQE{})
	// Memory: the n*16 bytes lie in the mapping (checked by at); cq_off.cqes is 64-aligned.
	return unsafe.Slice((*CQE)(at(mem, uintptr(off), size)), n)
}

// u32Slice returns the n uint32 values at byte offset off of mem (the SQ index array).
func u32Slice(mem []byte, off, n uint32) []uint32 {
	// Memory: the n*4 bytes lie in the mapping (checked by at); sq_off.array is 4-aligned.
	return unsafe.Slice((*uint32)(at(mem, uintptr(off), uintptr(n)*4)), n)
}

// bufEntries returns the n io_uring_buf entries at the start of a buffer ring mapping.
func bufEntries(mem []byte, n uint32) []bufRingEntry {
	size := uintptr(n) * unsafe.Sizeof(bufRingEntry{})
	// Memory: the entries lie in the anonymous mapping (checked by at), page-aligned, which
	// BufRing.Close unmaps only after unregistering it from the kernel.
	return unsafe.Slice((*bufRingEntry)(at(mem, 0, size)), n)
}
