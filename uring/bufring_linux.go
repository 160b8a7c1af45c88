package uring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BufRing is a provided-buffer ring (struct io_uring_buf_ring, Linux 5.19): a group of
// equal-sized receive buffers the kernel picks from for SQEs with IOSQE_BUFFER_SELECT (see
// [SQE.PrepRecvMultishot] and [SQE.SetBufGroup]).
//
// The ring and its buffers live in one anonymous mapping outside the Go heap, so nothing
// needs pinning. A buffer the kernel filled (reported by [CQE.BufferID]) belongs to the
// caller until it is given back with Recycle (or Add then Advance).
//
// Like its Ring, a BufRing is not safe for concurrent use: call its methods from the
// ring's thread.
type BufRing struct {
	_ noCopy

	r       *Ring
	group   uint16
	entries uint32
	mask    uint16
	bufSize int

	mem     []byte         // the mapping: ring entries, then the buffers
	bufs    []byte         // the buffers, entries*bufSize bytes of mem
	ring    []bufRingEntry // entries io_uring_buf slots at the start of mem
	tail    uint16         // local tail, including buffers added but not yet published
	tailPtr *atomic.Uint32 // bufs[0].bid and the shared tail, as one 32-bit word
	closed  bool

	provided uint32 // buffers handed to the kernel so far: IDs [0, provided)

	// For receive bundles (TrackBundles): the buffer ID added at every ring position
	// (the 16-bit positions the kernel counts its head and our tail in), and the position
	// each ID was last added at. nil when not tracking.
	hist []uint16
	pos  []uint16
}

// NewBufRing maps entries buffers of bufSize bytes and registers them as buffer group
// group (IORING_REGISTER_PBUF_RING with ring memory we allocate, Linux 5.19), all
// initially available to the kernel. entries must be a power of two up to 32768.
//
// Errors wrap the errno: EEXIST if the group is taken, EINVAL for bad sizes or on kernels
// before 5.19. Close it before closing the ring, once no receive using the group is in
// flight.
func (r *Ring) NewBufRing(group uint16, entries uint16, bufSize int) (*BufRing, error) {
	return r.NewBufRingProvided(group, entries, bufSize, entries)
}

// NewBufRingProvided is [Ring.NewBufRing] with room for entries buffers of which only
// the first provide (1 <= provide <= entries) are handed to the kernel; [BufRing.Grow]
// hands over more later. The whole mapping is reserved up front, but a buffer costs
// resident memory only once the kernel has written into it, so a ring that starts small
// and grows on ENOBUFS keeps an idle process small without re-registering the group.
func (r *Ring) NewBufRingProvided(group uint16, entries uint16, bufSize int, provide uint16) (*BufRing, error) {
	if provide == 0 || provide > entries {
		return nil, fmt.Errorf("uring: buffer ring providing %d of %d entries: %w", provide, entries, unix.EINVAL)
	}
	if r.closed {
		return nil, ErrClosed
	}
	if entries == 0 || entries&(entries-1) != 0 || entries > 32768 {
		return nil, fmt.Errorf("uring: buffer ring of %d entries, want a power of two up to 32768: %w", entries, unix.EINVAL)
	}
	if bufSize <= 0 || bufSize > math.MaxUint32 || bufSize > math.MaxInt/int(entries) {
		return nil, fmt.Errorf("uring: buffer size %d: %w", bufSize, unix.EINVAL)
	}
	page := unix.Getpagesize()
	ringBytes := (int(entries)*int(unsafe.Sizeof(bufRingEntry{})) + page - 1) &^ (page - 1)
	mem, err := mmapAnon(ringBytes + int(entries)*bufSize)
	if err != nil {
		return nil, err
	}
	b := &BufRing{
		r:       r,
		group:   group,
		entries: uint32(entries),
		mask:    entries - 1,
		bufSize: bufSize,
		mem:     mem,
		bufs:    mem[ringBytes:],
		ring:    bufEntries(mem, uint32(entries)),
		tailPtr: atomicU32(mem, bufRingTailOffset-2),
	}
	reg := bufReg{
		// Memory: the ring lives in our anonymous mapping, which Close unmaps only after
		// unregistering the group.
		RingAddr:    uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem)))),
		RingEntries: uint32(entries),
		BGID:        group,
	}
	// Memory: reg is only read during the call.
	if _, err := r.register(RegisterPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		return nil, errors.Join(err, munmap(mem))
	}
	for id := range provide {
		b.Add(id)
	}
	b.provided = uint32(provide)
	b.Advance()
	return b, nil
}

// Provided returns how many buffers have been handed to the kernel (IDs 0 to
// Provided-1): all Entries for a ring made by NewBufRing.
func (b *BufRing) Provided() int { return int(b.provided) }

// Grow hands up to n more buffers to the kernel (never beyond Entries) and publishes
// them with any buffers queued by Add. It returns how many it added: 0 once the ring is
// full or closed.
func (b *BufRing) Grow(n int) int {
	if b.closed || n <= 0 {
		return 0
	}
	n = min(n, int(b.entries-b.provided))
	for i := range n {
		b.Add(uint16(b.provided) + uint16(i))
	}
	b.provided += uint32(n)
	b.Advance()
	return n
}

// Group returns the buffer group ID, for [SQE.SetBufGroup].
func (b *BufRing) Group() uint16 { return b.group }

// BufSize returns the size of each buffer.
func (b *BufRing) BufSize() int { return b.bufSize }

// Entries returns the number of buffers.
func (b *BufRing) Entries() int { return int(b.entries) }

// Buffer returns the first n bytes of buffer id: the data of a CQE with that buffer ID
// and Res n. The slice points into the mapping; it is valid until the buffer is recycled
// (the kernel may then overwrite it) or the BufRing is closed, so copy what must outlive
// that. It returns nil if id or n is out of range.
func (b *BufRing) Buffer(id uint16, n int) []byte {
	if b.closed || uint32(id) >= b.entries || n < 0 || n > b.bufSize {
		return nil
	}
	off := int(id) * b.bufSize
	return b.bufs[off : off+n : off+n]
}

// Add queues buffer id for return to the kernel without publishing it (liburing
// io_uring_buf_ring_add); Advance publishes every queued buffer at once. Add only IDs of
// buffers the caller holds: each buffer may be in the ring once. An out-of-range ID is a
// broken invariant and panics.
func (b *BufRing) Add(id uint16) {
	if uint32(id) >= b.entries || b.closed {
		panic(fmt.Sprintf("uring: Add of buffer %d to a %d-entry buffer ring (closed=%v)", id, b.entries, b.closed))
	}
	// Memory: the address is inside our mapping, valid until Close.
	addr := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b.bufs)))) + uint64(id)*uint64(b.bufSize)
	// Memory: the entry at the local tail is not published yet, so the kernel does not
	// read addr, len or bid here; but resv of entry 0 is the shared tail that the kernel
	// reads at any buffer selection, including one triggered by a submission between this
	// Add and Advance. Write the three fields one by one (liburing io_uring_buf_ring_add)
	// and never resv: assigning the whole struct would store 0 into the published tail and
	// let the kernel hand out buffers that are still in use.
	e := &b.ring[b.tail&b.mask]
	e.Addr = addr
	e.Len = uint32(b.bufSize)
	e.BID = id
	if b.hist != nil {
		b.hist[b.tail] = id
		b.pos[id] = b.tail
	}
	b.tail++
}

// TrackBundles makes the ring remember which buffer it added at each position, so that
// [BufRing.BundleIDs] can name every buffer of a receive bundle (IORING_RECVSEND_BUNDLE,
// Linux 6.10): its CQE names only the first buffer, and the others are the ones the
// kernel took from the ring positions after it, whatever their IDs. It costs 128 KiB (a
// buffer ID for each of the 65,536 positions) plus two bytes per buffer.
//
// Call it before any buffer is given back (Add, Recycle, Grow): it returns an error
// wrapping unix.EINVAL afterwards, when the positions of the first buffers are no longer
// known, and [ErrClosed] on a closed ring. A second call does nothing.
func (b *BufRing) TrackBundles() error {
	switch {
	case b.closed:
		return ErrClosed
	case b.hist != nil:
		return nil
	case uint32(b.tail) != b.provided:
		return fmt.Errorf("uring: tracking bundles of a buffer ring after %d buffers were given back: %w", uint32(b.tail)-b.provided, unix.EINVAL)
	}
	b.hist = make([]uint16, 1<<16)
	b.pos = make([]uint16, b.entries)
	for p := range b.tail {
		id := b.ring[p&b.mask].BID
		b.hist[p] = id
		b.pos[id] = p
	}
	return nil
}

// BundleIDs appends to dst the IDs of the n buffers of a receive bundle whose CQE names
// buffer first ([CQE.BufferID]): first, then the buffers added after it, in ring order.
// For a bundle of Res bytes, n is Res divided by [BufRing.BufSize], rounded up: the
// kernel fills each buffer before the next. The IDs come from the ring's record of the
// last 65,536 buffers added, so collect them before that many more are given back.
//
// Errors (dst returned unchanged): unix.EINVAL without [BufRing.TrackBundles], for an ID
// out of range or n outside 1..Entries, or when the positions after first were not all
// filled yet (the CQE does not match this ring); [ErrClosed] on a closed ring.
func (b *BufRing) BundleIDs(first uint16, n int, dst []uint16) ([]uint16, error) {
	switch {
	case b.closed:
		return dst, ErrClosed
	case b.hist == nil:
		return dst, fmt.Errorf("uring: buffer ring bundle IDs without TrackBundles: %w", unix.EINVAL)
	case uint32(first) >= b.entries || n < 1 || n > int(b.entries):
		return dst, fmt.Errorf("uring: bundle of %d buffers from buffer %d of a %d-entry ring: %w", n, first, b.entries, unix.EINVAL)
	}
	p := b.pos[first]
	if b.hist[p] != first || int(b.tail-p) < n {
		return dst, fmt.Errorf("uring: bundle of %d buffers from buffer %d at ring position %d (tail %d): not in the ring: %w", n, first, p, b.tail, unix.EINVAL)
	}
	for i := range uint16(n) {
		dst = append(dst, b.hist[p+i])
	}
	return dst, nil
}

// Advance publishes the buffers queued by Add to the kernel (liburing
// io_uring_buf_ring_advance).
func (b *BufRing) Advance() {
	if b.closed {
		return
	}
	// The tail is a __u16 at offset 14, overlaying bufs[0].resv, and Go has no 16-bit
	// atomics. So store the 32-bit word at offset 12, bufs[0].bid plus the tail, writing
	// bid back unchanged: we are its only writer and the kernel only reads it.
	var w [4]byte
	binary.NativeEndian.PutUint16(w[0:], b.ring[0].BID)
	binary.NativeEndian.PutUint16(w[2:], b.tail)
	// release: pairs with the kernel's smp_load_acquire of br->tail (io_ring_buffer_select),
	// so the entries written by Add are visible before the tail that exposes them.
	b.tailPtr.Store(binary.NativeEndian.Uint32(w[:]))
}

// Recycle gives buffer id back to the kernel: Add then Advance.
func (b *BufRing) Recycle(id uint16) {
	b.Add(id)
	b.Advance()
}

// Close unregisters the buffer group (IORING_UNREGISTER_PBUF_RING) and unmaps the ring and
// its buffers; slices from Buffer must not be used afterwards. If unregistering fails the
// memory is deliberately left mapped (the kernel may still write into it) and the error
// returned. If the Ring was closed first, the kernel already dropped the group. A second
// Close returns [ErrClosed].
func (b *BufRing) Close() error {
	if b.closed {
		return ErrClosed
	}
	if !b.r.closed {
		reg := bufReg{BGID: b.group}
		// Memory: reg is only read during the call.
		if _, err := b.r.register(UnregisterPbufRing, unsafe.Pointer(&reg), 1); err != nil {
			return err
		}
	}
	b.closed = true
	b.ring, b.bufs, b.tailPtr = nil, nil, nil
	err := munmap(b.mem)
	b.mem = nil
	return err
}
