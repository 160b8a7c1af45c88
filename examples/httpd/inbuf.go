package main

// inbuf holds the received bytes a session has not consumed yet: an
// incomplete request head, and requests left unanswered while the
// connection's outbound queue is above its high watermark. Consumed bytes
// are skipped by an offset; the unconsumed ones move to the front only
// when at least as many were consumed since, or when a full buffer
// doubles, so the copying stays linear in the bytes received.
type inbuf struct {
	b   []byte // b[off:] is unconsumed
	off int
}

// pending returns the unconsumed bytes; valid until the next add or consume.
func (q *inbuf) pending() []byte { return q.b[q.off:] }

// len reports the number of unconsumed bytes.
func (q *inbuf) len() int { return len(q.b) - q.off }

// add appends a copy of data.
func (q *inbuf) add(data []byte) {
	n := q.len()
	switch want := n + len(data); {
	case q.off > 0 && q.off >= n && want <= cap(q.b):
		copy(q.b, q.b[q.off:])
		q.b, q.off = q.b[:n], 0
	case len(q.b)+len(data) > cap(q.b):
		nb := make([]byte, n, max(want, 2*cap(q.b), 512))
		copy(nb, q.b[q.off:])
		q.b, q.off = nb, 0
	}
	q.b = append(q.b, data...)
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
