package main

// inbuf holds the received bytes a session has not consumed yet: an
// incomplete command, and commands left unanswered while the connection's
// outbound queue is above its high watermark. Appending and consuming are
// linear in the bytes received: consumed bytes are skipped by an offset,
// the unconsumed ones move to the front only when at least as many bytes
// were consumed since, and a full buffer doubles (or grows to the size the
// command is known to need). A large command arriving in many reads is
// thus copied about twice in all, never once per read.
type inbuf struct {
	b   []byte // b[off:] is unconsumed
	off int
	// copied counts the bytes written into b (by add and by compaction):
	// tests check that it stays linear in the bytes received.
	copied int64
}

// pending returns the unconsumed bytes; valid until the next add or consume.
func (q *inbuf) pending() []byte { return q.b[q.off:] }

// len reports the number of unconsumed bytes.
func (q *inbuf) len() int { return len(q.b) - q.off }

// add appends a copy of data. need, when larger than the unconsumed bytes
// plus data, is how many bytes the command in progress is known to take:
// a growing buffer is sized no larger than that, and exactly that when
// exact is set.
func (q *inbuf) add(data []byte, need int, exact bool) {
	n := q.len()
	switch want := n + len(data); {
	case q.off > 0 && q.off >= n && want <= cap(q.b):
		// Costs n, no more than the bytes consumed since the last move.
		copy(q.b, q.b[q.off:])
		q.copied += int64(n)
		q.b, q.off = q.b[:n], 0
	case len(q.b)+len(data) > cap(q.b):
		c := max(want, 2*cap(q.b), 512)
		if need > want && (exact || need < c) {
			c = need
		}
		nb := make([]byte, n, c)
		copy(nb, q.b[q.off:])
		q.copied += int64(n)
		q.b, q.off = nb, 0
	}
	q.b = append(q.b, data...)
	q.copied += int64(len(data))
}

// consume drops the first n unconsumed bytes. Once nothing is left, a
// buffer larger than keep is released so an idle connection stays small.
func (q *inbuf) consume(n, keep int) {
	q.off += n
	if q.off == len(q.b) {
		q.off = 0
		q.b = q.b[:0]
		if cap(q.b) > keep {
			q.b = nil
		}
	}
}

// detach moves the unconsumed bytes to a buffer of their own, leaving the
// current one to whoever keeps slices of it.
func (q *inbuf) detach() {
	n := q.len()
	var nb []byte
	if n > 0 {
		nb = make([]byte, n, max(n, 512))
		copy(nb, q.b[q.off:])
		q.copied += int64(n)
	}
	q.b, q.off = nb, 0
}
