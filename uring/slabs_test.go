package uring_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/uring"
)

// TestSlabs: chunks are distinct, empty, of the chunk size and inside the
// slabs; the slabs grow on demand up to their cap, then Get returns nil;
// Put takes back only its own chunks; Contains is exact at the edges of a
// chunk; Close ends it all; a nil *Slabs is empty.
func TestSlabs(t *testing.T) {
	const chunk, per, slabs = 64, 4, 2
	s, err := uring.NewSlabs(chunk, per, slabs)
	require.NoError(t, err)
	assert.Equal(t, chunk, s.ChunkSize())

	var got [][]byte
	for i := 0; i < per*slabs; i++ {
		b := s.Get()
		require.NotNil(t, b, "chunk %d", i)
		assert.Zero(t, len(b))
		assert.Equal(t, chunk, cap(b))
		b = b[:chunk]
		for j := range b {
			b[j] = byte(i) // every chunk its own bytes: overlaps show below
		}
		got = append(got, b)
	}
	assert.Nil(t, s.Get(), "all chunks of all slabs in use")
	for i, b := range got {
		for j := range b {
			require.Equal(t, byte(i), b[j], "chunk %d byte %d overwritten by another chunk", i, j)
		}
		assert.True(t, s.Contains(b), "chunk %d", i)
		assert.True(t, s.Contains(b[chunk-1:]), "chunk %d, last byte", i)
		assert.True(t, s.Contains(b[10:20]), "chunk %d, middle", i)
		assert.False(t, s.Contains(b[:0]), "empty")
		assert.Equal(t, i/per, s.Index(b[10:20]), "chunk %d: its slab", i)
		slab := s.Slab(i / per)
		assert.Equal(t, &slab[(i%per)*chunk], &b[0], "chunk %d lies in its slab's memory", i)
		assert.Len(t, slab, chunk*per)
	}
	assert.Equal(t, -1, s.Index(got[0][:0]), "empty")
	assert.Nil(t, s.Slab(slabs), "no such slab")
	assert.Nil(t, s.Slab(-1), "no such slab")
	assert.Equal(t, slabs, s.MaxSlabs())
	straddle := s.Slab(0)[chunk-10 : chunk+10] // the end of one chunk, the start of the next
	assert.Equal(t, -1, s.Index(straddle), "spans two chunks")
	assert.False(t, s.Contains(straddle), "spans two chunks")
	heap := make([]byte, chunk)
	assert.False(t, s.Contains(heap), "memory of the Go heap")
	assert.Equal(t, -1, s.Index(heap), "memory of the Go heap")
	assert.False(t, s.Put(heap[:0]), "a chunk-sized slice that is not a chunk")
	assert.False(t, s.Put(got[0][1:1:chunk]), "a slice inside a chunk that is not its start")

	require.True(t, s.Put(got[3]))
	again := s.Get()
	require.NotNil(t, again)
	assert.Equal(t, &got[3][0], &again[:1][0], "a chunk put back is handed out again")
	assert.Nil(t, s.Get())

	s.Close()
	s.Close() // idempotent
	assert.Nil(t, s.Get(), "after Close")
	assert.False(t, s.Contains(got[0]), "after Close nothing is pinned")
	assert.Equal(t, -1, s.Index(got[0]), "after Close")
	assert.Nil(t, s.Slab(0), "after Close")
	assert.False(t, s.Put(got[0][:0]), "after Close")
	assert.Equal(t, byte(0), got[0][0], "chunks stay readable Go memory after Close")

	var none *uring.Slabs
	assert.Nil(t, none.Get())
	assert.False(t, none.Put(heap))
	assert.False(t, none.Contains(heap))
	assert.Zero(t, none.ChunkSize())
	assert.Zero(t, none.MaxSlabs())
	assert.Equal(t, -1, none.Index(heap))
	assert.Nil(t, none.Slab(0))
	none.Close()

	for _, bad := range [][3]int{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}, {-1, 1, 1}, {1 << 62, 4, 1}} {
		_, err := uring.NewSlabs(bad[0], bad[1], bad[2])
		assert.ErrorIs(t, err, unix.EINVAL, "%v", bad)
	}
}

// TestSlabsHold: a held chunk Put back is not handed out again until its
// last Release; one never Put back is not freed by the Release.
func TestSlabsHold(t *testing.T) {
	const chunk, per = 64, 2
	s, err := uring.NewSlabs(chunk, per, 1)
	require.NoError(t, err)
	defer s.Close()
	a, b := s.Get(), s.Get()
	require.NotNil(t, a)
	require.NotNil(t, b)
	a = append(a, "abcdefgh"...)
	assert.True(t, s.Hold(a[2:6]))
	assert.True(t, s.Hold(a))
	assert.False(t, s.Hold(make([]byte, 8)), "memory of the Go heap")
	assert.False(t, s.Hold(a[:0]), "empty")
	require.True(t, s.Put(a))
	assert.Nil(t, s.Get(), "a held chunk put back is not free")
	s.Release(a)
	assert.Nil(t, s.Get(), "one hold left")
	s.Release(a[2:6])
	again := s.Get()
	require.NotNil(t, again, "the last release frees it")
	assert.Equal(t, &a[0], &again[:1][0])
	s.Release(a) // no hold left: nothing happens
	assert.Nil(t, s.Get(), "a release without a hold frees nothing")

	// Held, released before it is put back: Put frees it at once.
	b = append(b, 'x')
	assert.True(t, s.Hold(b))
	s.Release(b)
	require.True(t, s.Put(b))
	assert.NotNil(t, s.Get())

	s.Close()
	assert.False(t, s.Hold(a), "after Close")
	s.Release(a) // after Close: nothing
	var none *uring.Slabs
	assert.False(t, none.Hold(a))
	none.Release(a)
}
