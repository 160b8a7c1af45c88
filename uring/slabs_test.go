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
	}
	heap := make([]byte, chunk)
	assert.False(t, s.Contains(heap), "memory of the Go heap")
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
	assert.False(t, s.Put(got[0][:0]), "after Close")
	assert.Equal(t, byte(0), got[0][0], "chunks stay readable Go memory after Close")

	var none *uring.Slabs
	assert.Nil(t, none.Get())
	assert.False(t, none.Put(heap))
	assert.False(t, none.Contains(heap))
	assert.Zero(t, none.ChunkSize())
	none.Close()

	for _, bad := range [][3]int{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}, {-1, 1, 1}, {1 << 62, 4, 1}} {
		_, err := uring.NewSlabs(bad[0], bad[1], bad[2])
		assert.ErrorIs(t, err, unix.EINVAL, "%v", bad)
	}
}
