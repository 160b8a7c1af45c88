package connio

// ChunkSize is the capacity of the chunks an Outbound copies small
// writes into.
const ChunkSize = 16 << 10

// maxPending is IOV_MAX: the most slices Pending returns.
const maxPending = 1024

// Outbound is a connection's outbound byte queue: Write copies into
// fixed-capacity chunks (coalescing small writes), so bytes already queued
// never move, and the slices Pending returns stay valid, with the same
// contents, until Consume passes them. That is what lets a loop hand those
// slices to the kernel while more writes are queued behind them.
//
// An empty Outbound holds no chunk. The zero value is an empty queue. It is
// not safe for concurrent use.
type Outbound struct {
	chunks [][]byte // each chunk's len is its filled part; cap never grows
	head   int      // bytes of chunks[0] already consumed
	n      int      // bytes queued and not consumed
	cache  *ChunkCache
}

// ChunkCache recycles the ChunkSize chunks of the Outbound queues
// that share it (one per event loop), so a connection that empties its
// queue after every send does not allocate a chunk per write. It holds at
// most Max chunks. Not safe for concurrent use.
type ChunkCache struct {
	Max int
	// Src, when set, supplies chunks before the cache's own: the io_uring
	// engine's pinned send slabs, whose chunks need no pin per send. Its
	// chunks go back to it; it must hand out chunks of ChunkSize bytes.
	Src  ChunkSource
	free [][]byte
}

// ChunkSource supplies empty chunks of capacity ChunkSize (Get returns nil
// when it has none left) and takes back its own (Put reports false for a
// chunk that is not).
type ChunkSource interface {
	Get() []byte
	Put(b []byte) bool
}

func (c *ChunkCache) get() []byte {
	if c != nil {
		if c.Src != nil {
			if b := c.Src.Get(); b != nil {
				return b
			}
		}
		if k := len(c.free); k > 0 {
			b := c.free[k-1]
			c.free[k-1] = nil
			c.free = c.free[:k-1]
			return b
		}
	}
	return make([]byte, 0, ChunkSize)
}

func (c *ChunkCache) put(b []byte) {
	if c != nil && c.Src != nil && c.Src.Put(b) {
		return
	}
	if c != nil && cap(b) == ChunkSize && len(c.free) < c.Max {
		c.free = append(c.free, b[:0])
	}
}

// SetCache makes q take its chunks from c and give them back to it once
// consumed.
func (q *Outbound) SetCache(c *ChunkCache) { q.cache = c }

// Len reports the bytes queued and not consumed.
func (q *Outbound) Len() int { return q.n }

// Write queues a copy of b; the caller may reuse b at once.
func (q *Outbound) Write(b []byte) {
	q.n += len(b)
	for len(b) > 0 {
		if k := len(q.chunks); k > 0 {
			t := q.chunks[k-1]
			if room := cap(t) - len(t); room > 0 {
				m := min(room, len(b))
				q.chunks[k-1] = append(t, b[:m]...) // within cap: no move
				b = b[m:]
				continue
			}
		}
		// Every chunk is ChunkSize, large writes included, so every
		// chunk goes back to the cache once sent: a connection echoing large
		// deliveries over and over allocates nothing once the cache is warm.
		q.chunks = append(q.chunks, q.cache.get())
	}
}

// Pending appends to dst the queued bytes as at most 1024 (IOV_MAX) slices,
// oldest first, and returns it. The slices alias the queue: they stay valid
// and unchanged until Consume passes them; do not write to them.
func (q *Outbound) Pending(dst [][]byte) [][]byte {
	for i, c := range q.chunks {
		if i == 0 {
			c = c[q.head:]
		}
		if len(c) == 0 {
			continue
		}
		if len(dst) == maxPending {
			break
		}
		dst = append(dst, c)
	}
	return dst
}

// Consume drops the first n queued bytes (those sent). It panics if n is
// negative or more than Len: a broken invariant of the caller.
func (q *Outbound) Consume(n int) {
	if n < 0 || n > q.n {
		panic("connio: Outbound.Consume(" + itoa(n) + ") with " + itoa(q.n) + " bytes queued")
	}
	q.n -= n
	for n > 0 {
		c := q.chunks[0]
		avail := len(c) - q.head
		if n < avail {
			q.head += n
			return
		}
		n -= avail
		q.cache.put(q.chunks[0])
		// Shift instead of reslicing so the list keeps its capacity (the
		// list is short: one entry per 16 KiB queued).
		k := copy(q.chunks, q.chunks[1:])
		q.chunks[k] = nil
		q.chunks = q.chunks[:k]
		q.head = 0
	}
	if q.n == 0 {
		// Hold no chunk while idle (an idle connection must stay small),
		// but keep a small chunk list: a request/response connection would
		// otherwise allocate it again on every reply (24 B per chunk slot).
		clear(q.chunks)
		if cap(q.chunks) <= 2 {
			q.chunks = q.chunks[:0]
		} else {
			q.chunks = nil
		}
		q.head = 0
	}
}

// Reset drops everything queued. Call it only when no slice from Pending is
// in use by the kernel any more.
func (q *Outbound) Reset() {
	for _, c := range q.chunks {
		q.cache.put(c)
	}
	clear(q.chunks)
	*q = Outbound{cache: q.cache}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
