package uring

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func newBufRing(t *testing.T, r *Ring, group, entries uint16, size int) *BufRing {
	t.Helper()
	b, err := r.NewBufRing(group, entries, size)
	require.NoError(t, err)
	// Registered after the ring's cleanup, so it runs first: buffer rings close first.
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

func TestBufRingRecvMultishot(t *testing.T) {
	r := newRing(t, 8, nil)
	br := newBufRing(t, r, 3, 4, 16)
	assert.Equal(t, uint16(3), br.Group())
	assert.Equal(t, 4, br.Entries())
	assert.Equal(t, 16, br.BufSize())
	a, b := socketpair(t)

	arm := func() {
		s := sqe(t, r)
		s.PrepRecvMultishot(a, 0)
		s.SetBufGroup(br.Group())
		s.SetUserData(9)
		assert.True(t, s.Flags.Has(SQEBufferSelect))
	}

	want := make([]byte, 5*16)
	for i := range want {
		want[i] = byte(i)
	}
	_, err := unix.Write(b, want)
	require.NoError(t, err)
	arm()

	var got []byte
	var held []uint16
	// Four full buffers, then -ENOBUFS ends the multishot receive.
	for {
		c := reap(t, r, 1)[0]
		require.Equal(t, uint64(9), c.UserData)
		if c.Res < 0 {
			assert.ErrorIs(t, c.Err(), unix.ENOBUFS)
			assert.False(t, c.More(), "a failed multishot receive is final")
			break
		}
		assert.True(t, c.More())
		id, ok := c.BufferID()
		require.True(t, ok)
		got = append(got, br.Buffer(id, int(c.Res))...)
		held = append(held, id)
	}
	assert.Len(t, held, 4)
	assert.Equal(t, want[:64], got)

	// Recycle (one directly, the rest batched) and re-arm: the rest arrives, in order.
	br.Recycle(held[0])
	for _, id := range held[1:] {
		br.Add(id)
	}
	br.Advance()
	arm()
	c := reap(t, r, 1)[0]
	require.NoError(t, c.Err())
	assert.True(t, c.More())
	id, ok := c.BufferID()
	require.True(t, ok)
	got = append(got, br.Buffer(id, int(c.Res))...)
	br.Recycle(id)
	assert.Equal(t, want, got)

	// More data on the still-armed receive, then EOF ends it.
	_, err = unix.Write(b, []byte("tail"))
	require.NoError(t, err)
	c = reap(t, r, 1)[0]
	id, _ = c.BufferID()
	assert.Equal(t, "tail", string(br.Buffer(id, int(c.Res))))
	br.Recycle(id)
	require.NoError(t, unix.Shutdown(b, unix.SHUT_WR))
	c = reap(t, r, 1)[0]
	assert.Equal(t, int32(0), c.Res)
	assert.False(t, c.More())
}

func TestBufRingErrors(t *testing.T) {
	r := newRing(t, 8, nil)
	for _, n := range []uint16{0, 3, 65535} {
		_, err := r.NewBufRing(1, n, 16)
		assert.ErrorIs(t, err, unix.EINVAL, "entries %d", n)
	}
	_, err := r.NewBufRing(1, 4, 0)
	assert.ErrorIs(t, err, unix.EINVAL)

	br := newBufRing(t, r, 1, 4, 16)
	_, err = r.NewBufRing(1, 4, 16)
	assert.ErrorIs(t, err, unix.EEXIST)
	assert.Nil(t, br.Buffer(4, 1))
	assert.Nil(t, br.Buffer(0, 17))
	assert.Len(t, br.Buffer(3, 16), 16)
	assert.Panics(t, func() { br.Add(4) })

	other, err := r.NewBufRing(2, 2, 8)
	require.NoError(t, err)
	require.NoError(t, other.Close())
	assert.ErrorIs(t, other.Close(), ErrClosed)
	assert.Nil(t, other.Buffer(0, 1))
}

func TestBufRingAfterRingClose(t *testing.T) {
	r := newRing(t, 8, nil)
	br, err := r.NewBufRing(1, 2, 8)
	require.NoError(t, err)
	// Only the mapping is left to free once the ring is gone.
	require.NoError(t, r.Close())
	require.NoError(t, br.Close())
}

func TestBufRingLargeBuffers(t *testing.T) {
	r := newRing(t, 8, nil)
	br := newBufRing(t, r, 7, 8, 4096)
	a, b := socketpair(t)
	payload := bytes.Repeat([]byte("x"), 3000)
	_, err := unix.Write(b, payload)
	require.NoError(t, err)
	s := sqe(t, r)
	s.PrepRecvMultishot(a, 0)
	s.SetBufGroup(br.Group())
	c := reap(t, r, 1)[0]
	require.Equal(t, int32(3000), c.Res)
	id, _ := c.BufferID()
	assert.Equal(t, payload, br.Buffer(id, 3000))
	s = sqe(t, r)
	s.PrepCancelFD(a, CancelAll)
	reap(t, r, 2)
}

// publishedTail reads the tail the kernel sees (struct io_uring_buf_ring's tail,
// which overlays entry 0's resv).
func publishedTail(b *BufRing) uint16 { return uint16(b.tailPtr.Load() >> 16) }

// TestBufRingAddKeepsPublishedTail: Add writes the entry at the local tail, which for
// slot 0 shares its last two bytes with the published tail. Queuing a buffer must not
// move the tail the kernel reads; only Advance does.
func TestBufRingAddKeepsPublishedTail(t *testing.T) {
	r := newRing(t, 8, nil)
	br := newBufRing(t, r, 5, 4, 16)
	require.Equal(t, uint16(4), publishedTail(br))
	br.Add(0) // local tail 4: slot 4&3 = 0, whose resv is the tail
	assert.Equal(t, uint16(4), publishedTail(br), "Add into slot 0 changed the published tail")
	br.Add(1)
	assert.Equal(t, uint16(4), publishedTail(br))
	br.Advance()
	assert.Equal(t, uint16(6), publishedTail(br))
}

// TestBufRingAddThenSubmitSelectsNothing: the kernel has taken every buffer; one is
// queued with Add (slot 0) but not published, and a receive is submitted before Advance
// (as happens when the SQ fills in the middle of a reap). The kernel must find no buffer:
// before Add wrote only addr, len and bid, it saw tail 0 and handed out a buffer the
// program still held, delivering one connection's bytes over another's.
func TestBufRingAddThenSubmitSelectsNothing(t *testing.T) {
	r := newRing(t, 8, nil)
	br := newBufRing(t, r, 6, 4, 16)
	a, b := socketpair(t)
	recv := func(ud uint64) CQE {
		s := sqe(t, r)
		s.PrepRecv(a, nil, 0)
		s.Flags |= SQEBufferSelect
		s.SetBufGroup(br.Group())
		s.SetUserData(ud)
		return reap(t, r, 1)[0]
	}
	var held []uint16
	for i := range 4 {
		_, err := unix.Write(b, bytes.Repeat([]byte{byte('a' + i)}, 16))
		require.NoError(t, err)
		c := recv(uint64(i))
		require.NoError(t, c.Err())
		id, ok := c.BufferID()
		require.True(t, ok)
		held = append(held, id)
	}
	br.Add(held[0]) // queued, not published
	_, err := unix.Write(b, []byte("zzzz"))
	require.NoError(t, err)
	c := recv(9)
	if c.Res >= 0 {
		id, _ := c.BufferID()
		t.Fatalf("the kernel selected buffer %d (%d bytes) from an empty ring: tail clobbered by Add", id, c.Res)
	}
	assert.ErrorIs(t, c.Err(), unix.ENOBUFS)
	br.Advance()
	c = recv(10)
	require.NoError(t, c.Err())
	id, _ := c.BufferID()
	assert.Equal(t, held[0], id)
	assert.Equal(t, "zzzz", string(br.Buffer(id, int(c.Res))))
}

// TestBufRingRecvBundle: a multishot receive with IORING_RECVSEND_BUNDLE
// fills several 32-byte buffers per CQE, which names only the first. The
// buffers go back in a shuffled order, so after the first rounds a bundle's
// buffer IDs are no longer consecutive: only the ring's record of what it
// added where (BundleIDs) names them. Every byte must come back in order.
func TestBufRingRecvBundle(t *testing.T) {
	r := newRing(t, 8, nil)
	if !r.Features().Has(FeatRecvsendBundle) {
		t.Skip("no IORING_FEAT_RECVSEND_BUNDLE (Linux 6.10)")
	}
	const size = 32
	br := newBufRing(t, r, 5, 16, size)
	require.NoError(t, br.TrackBundles())
	a, b := tcpPair(t)
	arm := func() {
		s := sqe(t, r)
		s.PrepRecvMultishot(b, 0)
		s.SetBufGroup(br.Group())
		s.SetIOPrio(RecvsendBundle)
		s.SetUserData(4)
	}
	arm()
	rng := rand.New(rand.NewPCG(1, 2))
	var sent, got []byte
	var ids []uint16
	bundles := 0
	for round := range 300 {
		chunk := make([]byte, 1+rng.IntN(16*size-1))
		for i := range chunk {
			chunk[i] = byte(len(sent) + i + len(sent)/251)
		}
		_, err := unix.Write(a, chunk)
		require.NoError(t, err)
		sent = append(sent, chunk...)
		var held []uint16
		for len(got) < len(sent) {
			c := reap(t, r, 1)[0]
			require.Equal(t, uint64(4), c.UserData)
			if c.Res == -int32(unix.ENOBUFS) {
				// Every buffer is held: give them back, then re-arm.
				require.False(t, c.More())
				for _, id := range held {
					br.Add(id)
				}
				br.Advance()
				held = held[:0]
				arm()
				continue
			}
			require.NoError(t, c.Err(), "round %d", round)
			require.Positive(t, c.Res, "round %d", round)
			first, ok := c.BufferID()
			require.True(t, ok)
			n := (int(c.Res) + size - 1) / size
			if n > 1 {
				bundles++
			}
			ids, err = br.BundleIDs(first, n, ids[:0])
			require.NoError(t, err)
			left := int(c.Res)
			for _, id := range ids {
				k := min(left, size)
				got = append(got, br.Buffer(id, k)...)
				left -= k
			}
			held = append(held, ids...)
			if !c.More() {
				arm()
			}
		}
		rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
		for _, id := range held {
			br.Add(id)
		}
		br.Advance()
		require.Equal(t, sent, got, "round %d", round)
	}
	assert.Greater(t, bundles, 100, "receives that filled more than one buffer")
}

func TestBufRingBundleIDs(t *testing.T) {
	r := newRing(t, 8, nil)
	br := newBufRing(t, r, 6, 8, 16)
	_, err := br.BundleIDs(0, 1, nil)
	assert.ErrorIs(t, err, unix.EINVAL, "without TrackBundles")
	require.NoError(t, br.TrackBundles())
	require.NoError(t, br.TrackBundles(), "a second call")
	ids, err := br.BundleIDs(2, 3, nil)
	require.NoError(t, err)
	assert.Equal(t, []uint16{2, 3, 4}, ids, "as first provided")

	// Give buffers back in a fixed scrambled order for more than 65,536
	// positions: the record wraps with the kernel's 16-bit ring positions.
	order := []uint16{5, 0, 7, 2, 6, 1, 3, 4}
	for i := range 70000 {
		br.Add(order[i%len(order)])
	}
	ids, err = br.BundleIDs(7, 4, nil)
	require.NoError(t, err)
	assert.Equal(t, []uint16{7, 2, 6, 1}, ids)
	_, err = br.BundleIDs(4, 2, nil)
	assert.ErrorIs(t, err, unix.EINVAL, "past the last buffer added")
	_, err = br.BundleIDs(8, 1, nil)
	assert.ErrorIs(t, err, unix.EINVAL, "an ID out of range")
	_, err = br.BundleIDs(0, 0, nil)
	assert.ErrorIs(t, err, unix.EINVAL, "an empty bundle")

	late := newBufRing(t, r, 7, 8, 16)
	late.Recycle(0)
	assert.ErrorIs(t, late.TrackBundles(), unix.EINVAL, "after a buffer went back")
}
