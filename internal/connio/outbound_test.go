package connio_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/connio"
)

func TestOutboundCoalescesAndConsumes(t *testing.T) {
	var q connio.Outbound
	assert.Empty(t, q.Pending(nil))
	q.Write([]byte("hello "))
	q.Write([]byte("world"))
	p := q.Pending(nil)
	require.Len(t, p, 1, "small writes share a chunk")
	assert.Equal(t, "hello world", string(p[0]))
	q.Consume(6)
	assert.Equal(t, 5, q.Len())
	assert.Equal(t, "world", string(q.Pending(nil)[0]))
	q.Consume(5)
	assert.Zero(t, q.Len())
	assert.Empty(t, q.Pending(nil))
}

func TestOutboundInFlightBytesDoNotMove(t *testing.T) {
	var q connio.Outbound
	q.Write([]byte("abc"))
	p := q.Pending(nil)
	first := &p[0][0]
	for range 1000 {
		q.Write(bytes.Repeat([]byte("x"), 100))
	}
	p2 := q.Pending(nil)
	assert.Same(t, first, &p2[0][0], "queued bytes moved")
	assert.Equal(t, "abc", string(p[0]))
}

func TestOutboundRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var q connio.Outbound
	var want, got []byte
	for range 2000 {
		b := make([]byte, r.IntN(40000))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		q.Write(b)
		want = append(want, b...)
		if r.IntN(2) == 0 {
			p := q.Pending(nil)
			total := 0
			for _, s := range p {
				total += len(s)
			}
			n := r.IntN(total + 1)
			k := n
			for _, s := range p {
				m := min(k, len(s))
				got = append(got, s[:m]...)
				k -= m
			}
			q.Consume(n)
		}
	}
	for q.Len() > 0 {
		for _, s := range q.Pending(nil) {
			got = append(got, s...)
			q.Consume(len(s))
		}
	}
	assert.Equal(t, want, got)
	assert.Panics(t, func() { q.Consume(1) })
}

func TestOutboundChunkCache(t *testing.T) {
	cache := &connio.ChunkCache{Max: 2}
	var q connio.Outbound
	q.SetCache(cache)
	q.Write([]byte("a"))
	first := &q.Pending(nil)[0][:1][0]
	q.Consume(1)
	q.Write([]byte("b"))
	p := q.Pending(nil)
	assert.Same(t, first, &p[0][0], "the consumed chunk is reused")
	assert.Equal(t, "b", string(p[0]))
	q.Reset()
	assert.Zero(t, q.Len())
}
