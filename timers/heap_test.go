package timers

import (
	"cmp"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkInvariants verifies the heap property, that every entry knows its position,
// and that no slot outside the heap (padding, spare room, spare pages) holds anything.
func checkInvariants[T any](t testing.TB, h *Heap[T]) {
	t.Helper()
	// Plain comparisons: this runs after every fuzz step, and testify's reflection
	// would dominate the fuzzer's time.
	if h.n > 0 {
		if want := (h.n+slotOffset-1)>>pageShift + 1; len(h.pages) != want {
			t.Fatalf("%d entries in %d pages, want %d", h.n, len(h.pages), want)
		}
	}
	for i := range h.n {
		s := h.at(i)
		if s.e == nil {
			t.Fatalf("nil slot %d", i)
		}
		if s.e.pos != int32(i+1) {
			t.Fatalf("entry at %d has pos %d", i, s.e.pos)
		}
		if i > 0 {
			if p := h.at((i - 1) / arity); s.before(p) {
				t.Fatalf("entry %d (%d,%d) fires before its parent (%d,%d)",
					i, s.deadline, s.seq, p.deadline, p.seq)
			}
		}
	}
	for pi, pg := range h.pages[:cap(h.pages)] {
		if pi > 0 && pg != nil && len(pg) != pageSize {
			t.Fatalf("page %d has %d slots", pi, len(pg))
		}
		for j := range pg {
			if phys := pi*pageSize + j; (phys < slotOffset || phys >= h.n+slotOffset) && pg[j] != (slot[T]{}) {
				t.Fatalf("unused physical slot %d holds an entry", phys)
			}
		}
	}
}

// values returns the Values of entries, for readable comparisons.
func values[T any](es []*Entry[T]) []T {
	out := make([]T, len(es))
	for i, e := range es {
		out[i] = e.Value
	}
	return out
}

func TestEntrySize(t *testing.T) {
	// The loop's per-timer budget is 64 bytes: its Timer embeds an Entry next to two
	// words (32 bytes) and the heap holds one slot per timer.
	assert.Equal(t, uintptr(16), reflect.TypeFor[Entry[*int]]().Size(), "entry")
	assert.Equal(t, uintptr(24), reflect.TypeFor[slot[*int]]().Size(), "heap slot")
	assert.Zero(t, pageSize%arity, "sibling groups must not straddle pages")
	assert.Greater(t, 2*arity, slotOffset, "page 0 must hold the padding")
}

func TestPopExpiredOrder(t *testing.T) {
	tests := []struct {
		name      string
		deadlines []int64 // entry i gets Value i, pushed in this order
		now       int64
		want      []int // Values popped
		left      int
	}{
		{name: "empty", now: 100, want: []int{}},
		{name: "ascending", deadlines: []int64{1, 2, 3}, now: 3, want: []int{0, 1, 2}},
		{name: "descending", deadlines: []int64{3, 2, 1}, now: 3, want: []int{2, 1, 0}},
		{name: "partial", deadlines: []int64{5, 1, 9, 3}, now: 4, want: []int{1, 3}, left: 2},
		{name: "none due", deadlines: []int64{5, 6}, now: 4, want: []int{}, left: 2},
		{name: "deadline equal to now is due", deadlines: []int64{7}, now: 7, want: []int{0}},
		{name: "ties in insertion order", deadlines: []int64{2, 1, 2, 1, 2, 1}, now: 2, want: []int{1, 3, 5, 0, 2, 4}},
		{name: "all tied", deadlines: []int64{4, 4, 4, 4, 4, 4, 4, 4, 4, 4}, now: 4, want: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{name: "negative deadlines", deadlines: []int64{-1, math.MinInt64, 0}, now: 0, want: []int{1, 0, 2}},
		{name: "max deadline never due", deadlines: []int64{math.MaxInt64, 1}, now: math.MaxInt64 - 1, want: []int{1}, left: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Heap[int]
			for i, d := range tt.deadlines {
				require.NoError(t, h.Push(&Entry[int]{Value: i}, d))
				checkInvariants(t, &h)
			}
			got := h.PopExpired(tt.now, nil)
			checkInvariants(t, &h)
			assert.Equal(t, tt.want, values(got))
			assert.Equal(t, tt.left, h.Len())
			for _, e := range got {
				assert.False(t, e.Queued())
			}
		})
	}
}

func TestPeekAndNextDeadline(t *testing.T) {
	var h Heap[string]
	_, ok := h.Peek()
	assert.False(t, ok)
	_, ok = h.NextDeadline()
	assert.False(t, ok)

	a, b := &Entry[string]{Value: "a"}, &Entry[string]{Value: "b"}
	require.NoError(t, h.Push(a, 20))
	require.NoError(t, h.Push(b, 10))
	e, ok := h.Peek()
	require.True(t, ok)
	assert.Same(t, b, e)
	d, ok := h.NextDeadline()
	require.True(t, ok)
	assert.Equal(t, int64(10), d)
	assert.Equal(t, 2, h.Len(), "Peek does not remove")
}

func TestPushQueued(t *testing.T) {
	var h, other Heap[int]
	e := &Entry[int]{}
	require.NoError(t, h.Push(e, 5))
	require.ErrorIs(t, h.Push(e, 1), ErrQueued)
	require.ErrorIs(t, other.Push(e, 1), ErrQueued)
	d, ok := h.Deadline(e)
	assert.True(t, ok)
	assert.Equal(t, int64(5), d, "failed Push leaves the entry alone")
	_, ok = other.Deadline(e)
	assert.False(t, ok, "queued in another heap")
	assert.Equal(t, 1, h.Len())
	assert.Equal(t, 0, other.Len())
}

func TestRePushAfterPop(t *testing.T) {
	var h Heap[int]
	a, b := &Entry[int]{Value: 1}, &Entry[int]{Value: 2}
	require.NoError(t, h.Push(a, 10))
	require.NoError(t, h.Push(b, 10))
	got := h.PopExpired(10, nil)
	require.Equal(t, []int{1, 2}, values(got))

	// Re-push in reverse order with the same deadline: insertion order is the new one.
	require.NoError(t, h.Push(b, 20))
	require.NoError(t, h.Push(a, 20))
	assert.Greater(t, h.at(int(a.pos)-1).seq, h.at(int(b.pos)-1).seq)
	got = h.PopExpired(20, got[:0])
	assert.Equal(t, []int{2, 1}, values(got))
	assert.Zero(t, h.Len())
}

func TestRemove(t *testing.T) {
	// With increasing deadlines entry i sits at index i; 21 entries span three levels.
	const n = 1 + arity + 12
	tests := []struct {
		name   string
		remove []int
	}{
		{name: "top", remove: []int{0}},
		{name: "middle", remove: []int{2}},
		{name: "bottom", remove: []int{n - 1}},
		{name: "leaf not last", remove: []int{7}},
		{name: "several", remove: []int{5, 0, 20, 13, 1}},
		{name: "all", remove: []int{3, 1, 4, 15, 9, 2, 6, 5, 0, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Heap[int]
			es := make([]*Entry[int], n)
			for i := range es {
				es[i] = &Entry[int]{Value: i}
				require.NoError(t, h.Push(es[i], int64(i*10)))
			}
			removed := map[int]bool{}
			for _, r := range tt.remove {
				require.True(t, h.Remove(es[r]), "remove %d", r)
				removed[r] = true
				checkInvariants(t, &h)
				assert.False(t, es[r].Queued())
				assert.False(t, h.Remove(es[r]), "second remove of %d", r)
			}
			want := []int{}
			for i := range n {
				if !removed[i] {
					want = append(want, i)
				}
			}
			got := h.PopExpired(math.MaxInt64, nil)
			assert.Equal(t, want, values(got))
		})
	}
}

func TestRemoveNotQueued(t *testing.T) {
	var h, other Heap[int]
	never := &Entry[int]{}
	assert.False(t, h.Remove(never), "never pushed")

	fired := &Entry[int]{}
	require.NoError(t, h.Push(fired, 1))
	h.PopExpired(1, nil)
	assert.False(t, h.Remove(fired), "already fired")

	foreign := &Entry[int]{}
	require.NoError(t, other.Push(foreign, 1))
	require.NoError(t, h.Push(&Entry[int]{}, 1))
	assert.False(t, h.Remove(foreign), "queued in another heap")
	assert.True(t, foreign.Queued())
	assert.Equal(t, 1, other.Len())
	assert.Equal(t, 1, h.Len())
}

func TestReset(t *testing.T) {
	var h Heap[int]
	es := make([]*Entry[int], 10)
	for i := range es {
		es[i] = &Entry[int]{Value: i}
		require.NoError(t, h.Push(es[i], int64(i)))
	}
	require.NoError(t, h.Reset(es[0], 100)) // top to bottom
	checkInvariants(t, &h)
	require.NoError(t, h.Reset(es[9], -1)) // bottom to top
	checkInvariants(t, &h)
	require.NoError(t, h.Reset(es[5], 5)) // same deadline: moves after other 5s (none)
	checkInvariants(t, &h)
	fresh := &Entry[int]{Value: 10}
	require.NoError(t, h.Reset(fresh, 3)) // not queued: Push, after es[3]
	checkInvariants(t, &h)

	var other Heap[int]
	require.ErrorIs(t, other.Reset(es[1], 0), ErrQueued)

	got := h.PopExpired(math.MaxInt64, nil)
	assert.Equal(t, []int{9, 1, 2, 3, 10, 4, 5, 6, 7, 8, 0}, values(got))
}

func TestClear(t *testing.T) {
	var h Heap[int]
	es := make([]*Entry[int], 7)
	for i := range es {
		es[i] = &Entry[int]{Value: i}
		require.NoError(t, h.Push(es[i], int64(7-i)))
	}
	h.Clear()
	assert.Zero(t, h.Len())
	checkInvariants(t, &h)
	for i, e := range es {
		assert.False(t, e.Queued(), "entry %d", i)
		assert.False(t, h.Remove(e), "entry %d", i)
	}
	// Entries and the heap are reusable.
	require.NoError(t, h.Push(es[3], 1))
	assert.Equal(t, []int{3}, values(h.PopExpired(1, nil)))
}

// TestManyPages crosses page boundaries in both directions and drains through the
// page merge and through popping, against a sorted copy of the keys.
func TestManyPages(t *testing.T) {
	const n = 3*pageSize + 100
	for _, bulk := range []bool{true, false} {
		t.Run(map[bool]string{true: "merge", false: "pop"}[bulk], func(t *testing.T) {
			var h Heap[int]
			es := make([]Entry[int], n)
			r := rand.New(rand.NewPCG(3, 4))
			type key struct {
				d  int64
				id int
			}
			var want []key
			for round := range 2 { // the second round reuses spare pages
				want = want[:0]
				for i := range es {
					es[i].Value = i
					d := r.Int64N(500) // many ties
					require.NoError(t, h.Push(&es[i], d))
					want = append(want, key{d, i})
				}
				checkInvariants(t, &h)
				// Remove a stretch so the last page empties and comes back.
				for i := n - 200; i < n; i++ {
					require.True(t, h.Remove(&es[i]))
				}
				checkInvariants(t, &h)
				want = want[:n-200]
				for i := n - 200; i < n; i++ {
					require.NoError(t, h.Push(&es[i], int64(i%7)))
					want = append(want, key{int64(i % 7), i})
				}
				checkInvariants(t, &h)
				slices.SortStableFunc(want, func(a, b key) int { return cmp.Compare(a.d, b.d) })
				var got []*Entry[int]
				if bulk {
					got = h.PopExpired(math.MaxInt64, nil)
				} else {
					for now := int64(0); h.Len() > 0; now += 50 {
						got = h.PopExpired(now, got)
						checkInvariants(t, &h)
					}
				}
				checkInvariants(t, &h)
				require.Len(t, got, n, "round %d", round)
				for i, e := range got {
					require.Equal(t, want[i].id, e.Value, "round %d, position %d", round, i)
					require.False(t, e.Queued())
				}
			}
		})
	}
}

func TestAddDuration(t *testing.T) {
	tests := []struct {
		name string
		now  int64
		d    time.Duration
		want int64
	}{
		{name: "plain", now: 1000, d: 500, want: 1500},
		{name: "zero", now: 1000, d: 0, want: 1000},
		{name: "negative gives past", now: 1000, d: -1500, want: -500},
		{name: "exact max", now: math.MaxInt64 - 10, d: 10, want: math.MaxInt64},
		{name: "clamp high", now: math.MaxInt64 - 10, d: 11, want: math.MaxInt64},
		{name: "clamp huge", now: 1, d: math.MaxInt64, want: math.MaxInt64},
		{name: "max plus max", now: math.MaxInt64, d: math.MaxInt64, want: math.MaxInt64},
		{name: "clamp low", now: math.MinInt64 + 10, d: -11, want: math.MinInt64},
		{name: "min plus min", now: math.MinInt64, d: math.MinInt64, want: math.MinInt64},
		{name: "opposite signs never overflow", now: math.MaxInt64, d: math.MinInt64, want: -1},
		{name: "negative now", now: -100, d: time.Second, want: int64(time.Second) - 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, AddDuration(tt.now, tt.d))
		})
	}
}

func TestNoAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts only")
	}
	var h Heap[int]
	es := make([]Entry[int], 1000)
	dst := make([]*Entry[int], 0, len(es))
	for i := range es { // grow the slice once
		require.NoError(t, h.Push(&es[i], int64(i)))
	}
	h.Clear()
	allocs := testing.AllocsPerRun(10, func() {
		for i := range es {
			_ = h.Push(&es[i], int64((i*7919)%1000))
		}
		for i := 0; i < len(es); i += 3 {
			h.Remove(&es[i])
		}
		for i := 0; i < len(es); i += 3 {
			_ = h.Reset(&es[i], int64(i))
		}
		dst = h.PopExpired(math.MaxInt64, dst[:0])
	})
	assert.Zero(t, allocs)
}

// modelEntry is one queued entry of the naive model.
type modelEntry struct {
	deadline int64
	seq      uint64
	id       int
}

// model is the reference implementation: a slice kept sorted by (deadline, seq).
type model struct {
	items []modelEntry
	seq   uint64
}

func (m *model) cmp(a, b modelEntry) int {
	if a.deadline != b.deadline {
		if a.deadline < b.deadline {
			return -1
		}
		return 1
	}
	if a.seq < b.seq {
		return -1
	}
	if a.seq > b.seq {
		return 1
	}
	return 0
}

func (m *model) find(id int) int {
	return slices.IndexFunc(m.items, func(x modelEntry) bool { return x.id == id })
}

func (m *model) push(id int, deadline int64) bool {
	if m.find(id) >= 0 {
		return false
	}
	me := modelEntry{deadline: deadline, seq: m.seq, id: id}
	m.seq++
	i, _ := slices.BinarySearchFunc(m.items, me, m.cmp)
	m.items = slices.Insert(m.items, i, me)
	return true
}

func (m *model) remove(id int) bool {
	i := m.find(id)
	if i < 0 {
		return false
	}
	m.items = slices.Delete(m.items, i, i+1)
	return true
}

func (m *model) popExpired(now int64) []int {
	var ids []int
	for len(m.items) > 0 && m.items[0].deadline <= now {
		ids = append(ids, m.items[0].id)
		m.items = m.items[1:]
	}
	return ids
}

// FuzzHeap drives random push, remove, reset, pop-expired and clear sequences against
// the sorted-slice model; the two must agree exactly after every step.
func FuzzHeap(f *testing.F) {
	f.Add([]byte{0, 1, 5, 0, 2, 5, 0, 3, 1, 3, 6})
	f.Add([]byte{0, 0, 9, 0, 1, 9, 0, 2, 9, 1, 1, 3, 9})
	f.Add([]byte{0, 0, 255, 0, 1, 128, 0, 2, 0, 2, 0, 200, 3, 255, 4})
	f.Add([]byte{0, 5, 3, 0, 6, 3, 0, 7, 3, 4, 0, 8, 3, 3, 3})
	// Take PopExpired's sorting path whenever everything is due, and its popping path
	// otherwise, so both meet the model.
	saved := bulkMin
	bulkMin = 0
	f.Cleanup(func() { bulkMin = saved })
	f.Fuzz(func(t *testing.T, ops []byte) {
		const nEntries = 24
		var (
			h   Heap[int]
			m   model
			es  [nEntries]Entry[int]
			dst []*Entry[int]
		)
		for i := range es {
			es[i].Value = i
		}
		// deadline maps a byte to a small range (many ties) with the extremes included.
		deadline := func(b byte) int64 {
			switch b {
			case 255:
				return math.MaxInt64
			case 254:
				return math.MinInt64
			}
			return int64(b%64) - 8
		}
		next := func() byte {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return b
		}
		for len(ops) > 0 {
			switch op := next() % 5; op {
			case 0: // push
				id, d := int(next())%nEntries, deadline(next())
				err := h.Push(&es[id], d)
				if m.push(id, d) {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, ErrQueued)
				}
			case 1: // remove
				id := int(next()) % nEntries
				require.Equal(t, m.remove(id), h.Remove(&es[id]), "remove %d", id)
			case 2: // reset
				id, d := int(next())%nEntries, deadline(next())
				m.remove(id)
				m.push(id, d)
				require.NoError(t, h.Reset(&es[id], d))
			case 3: // pop expired
				now := deadline(next())
				want := m.popExpired(now)
				dst = h.PopExpired(now, dst[:0])
				require.Equal(t, len(want), len(dst), "pop at %d", now)
				for i, e := range dst {
					require.Equal(t, want[i], e.Value, "pop at %d, position %d", now, i)
					require.False(t, e.Queued())
				}
			case 4: // clear, rarely: only when the next byte says so
				if next()%8 == 0 {
					h.Clear()
					m.items = m.items[:0]
				}
			}
			checkInvariants(t, &h)
			if len(m.items) != h.Len() || m.seq != h.seq {
				t.Fatalf("heap has %d entries, next seq %d; model %d, %d", h.Len(), h.seq, len(m.items), m.seq)
			}
			d, ok := h.NextDeadline()
			top, _ := h.Peek()
			if len(m.items) == 0 {
				if ok || top != nil {
					t.Fatalf("empty model, heap reports %d", d)
				}
			} else if !ok || d != m.items[0].deadline || top.Value != m.items[0].id {
				t.Fatalf("next is %d (ok %v); model says entry %d at %d", d, ok, m.items[0].id, m.items[0].deadline)
			}
			for i := range es {
				mi := m.find(i)
				if (mi >= 0) != es[i].Queued() {
					t.Fatalf("entry %d: queued %v, model %v", i, es[i].Queued(), mi >= 0)
				}
				d, ok := h.Deadline(&es[i])
				if ok != (mi >= 0) {
					t.Fatalf("entry %d: Deadline ok %v, model queued %v", i, ok, mi >= 0)
				}
				if ok && (m.items[mi].seq != h.at(int(es[i].pos)-1).seq || m.items[mi].deadline != d) {
					t.Fatalf("entry %d: (%d,%d), model (%d,%d)", i, d, h.at(int(es[i].pos)-1).seq,
						m.items[mi].deadline, m.items[mi].seq)
				}
			}
		}
		// Draining must yield the model's full order.
		want := m.popExpired(math.MaxInt64)
		dst = h.PopExpired(math.MaxInt64, dst[:0])
		require.Equal(t, len(want), len(dst))
		for i, e := range dst {
			require.Equal(t, want[i], e.Value, "drain position %d", i)
		}
		require.Zero(t, h.Len())
	})
}
