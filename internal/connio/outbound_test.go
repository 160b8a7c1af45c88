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

// fakeSource hands out its own chunks, at most len(own) at a time.
type fakeSource struct {
	own  [][]byte
	free [][]byte
	puts int
}

func newFakeSource(n int) *fakeSource {
	s := &fakeSource{}
	for range n {
		c := make([]byte, 0, connio.ChunkSize)
		s.own = append(s.own, c)
		s.free = append(s.free, c)
	}
	return s
}

func (s *fakeSource) Get() []byte {
	if len(s.free) == 0 {
		return nil
	}
	c := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	return c
}

func (s *fakeSource) Put(b []byte) bool {
	for _, c := range s.own {
		if &c[:1][0] == &b[:1][0] {
			s.puts++
			s.free = append(s.free, c)
			return true
		}
	}
	return false
}

// TestChunkCacheSource: chunks come from the cache's Src while it has any,
// then from the Go heap; consumed chunks go back where they came from; every
// byte comes out as written.
func TestChunkCacheSource(t *testing.T) {
	src := newFakeSource(2)
	cache := &connio.ChunkCache{Max: 8, Src: src}
	var q connio.Outbound
	q.SetCache(cache)
	data := make([]byte, 3*connio.ChunkSize+100) // four chunks
	for i := range data {
		data[i] = byte(i * 31)
	}
	q.Write(data)
	assert.Empty(t, src.free, "the source's chunks are taken first")
	var got []byte
	for q.Len() > 0 {
		p := q.Pending(nil)[0]
		got = append(got, p...)
		q.Consume(len(p))
	}
	assert.True(t, bytes.Equal(data, got))
	assert.Equal(t, 2, src.puts, "the source's chunks go back to it, the heap's to the cache")
	assert.Len(t, src.free, 2)
	q.Write([]byte("again"))
	assert.Len(t, src.free, 1, "and are taken first again")
	q.Reset()
	assert.Len(t, src.free, 2, "Reset gives them back too")
}
