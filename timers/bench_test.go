package timers

import (
	"math/rand/v2"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchN is the number of timers per benchmark iteration (DESIGN: "benchmarked at 1M").
const benchN = 1_000_000

// benchTimer stands in for the loop's Timer, which embeds its entry.
type benchTimer struct {
	entry Entry[*benchTimer]
}

// benchDeadlines returns benchN deadlines spread at random over one second, the same
// sequence on every run.
func benchDeadlines() []int64 {
	r := rand.New(rand.NewPCG(1, 2))
	ds := make([]int64, benchN)
	for i := range ds {
		ds[i] = r.Int64N(int64(time.Second))
	}
	return ds
}

// reportPerTimer reports time and heap bytes allocated per timer since start/before.
func reportPerTimer(b *testing.B, before *runtime.MemStats, timers int) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(timers)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/timer")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/timer")
}

// BenchmarkPushPopExpired arms 1M timers with random deadlines within one second and
// fires them all. "heap" allocates every timer and the heap afresh, like the loop
// does; "heap-reuse" measures the data structure alone; "AfterFunc" is the same
// shape with time.AfterFunc (~1ms delay), waiting until every callback has run.
func BenchmarkPushPopExpired(b *testing.B) {
	ds := benchDeadlines()
	b.Run("heap", func(b *testing.B) {
		b.ReportAllocs()
		var dst []*Entry[*benchTimer]
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for b.Loop() {
			h := New[*benchTimer]()
			for _, d := range ds {
				t := new(benchTimer)
				t.entry.Value = t
				_ = h.Push(&t.entry, d)
			}
			dst = h.PopExpired(int64(time.Second), dst[:0])
			if len(dst) != benchN {
				b.Fatalf("popped %d timers, want %d", len(dst), benchN)
			}
			clear(dst) // keep the timers collectable, as the loop would
		}
		reportPerTimer(b, &ms, benchN)
		b.ReportMetric(float64(reflect.TypeFor[benchTimer]().Size()+reflect.TypeFor[slot[*benchTimer]]().Size()), "sizeof-B/timer")
	})
	b.Run("heap-reuse", func(b *testing.B) {
		b.ReportAllocs()
		ts := make([]benchTimer, benchN)
		dst := make([]*Entry[*benchTimer], 0, benchN)
		var h Heap[*benchTimer]
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for b.Loop() {
			for i, d := range ds {
				_ = h.Push(&ts[i].entry, d)
			}
			dst = h.PopExpired(int64(time.Second), dst[:0])
		}
		reportPerTimer(b, &ms, benchN)
	})
	b.Run("AfterFunc", func(b *testing.B) {
		b.ReportAllocs()
		var wg sync.WaitGroup
		fire := wg.Done
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for b.Loop() {
			wg.Add(benchN)
			for _, d := range ds {
				// ~1ms, with the same relative spread as the heap's deadlines.
				time.AfterFunc(time.Millisecond+time.Duration(d/1000), fire)
			}
			wg.Wait()
		}
		reportPerTimer(b, &ms, benchN)
	})
}

// BenchmarkPushRemove arms 1M timers and cancels them all before they fire.
func BenchmarkPushRemove(b *testing.B) {
	ds := benchDeadlines()
	b.Run("heap", func(b *testing.B) {
		b.ReportAllocs()
		ts := make([]*benchTimer, benchN)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for b.Loop() {
			h := New[*benchTimer]()
			for i, d := range ds {
				t := new(benchTimer)
				t.entry.Value = t
				ts[i] = t
				_ = h.Push(&t.entry, d)
			}
			for _, t := range ts {
				h.Remove(&t.entry)
			}
		}
		reportPerTimer(b, &ms, benchN)
	})
	b.Run("heap-reuse", func(b *testing.B) {
		b.ReportAllocs()
		ts := make([]benchTimer, benchN)
		var h Heap[*benchTimer]
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for b.Loop() {
			for i, d := range ds {
				_ = h.Push(&ts[i].entry, d)
			}
			for i := range ts {
				h.Remove(&ts[i].entry)
			}
		}
		reportPerTimer(b, &ms, benchN)
	})
	b.Run("AfterFunc", func(b *testing.B) {
		b.ReportAllocs()
		ts := make([]*time.Timer, benchN)
		fire := func() { panic("timer fired after Stop") }
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for b.Loop() {
			for i, d := range ds {
				ts[i] = time.AfterFunc(time.Hour+time.Duration(d), fire)
			}
			for _, t := range ts {
				t.Stop()
			}
		}
		clear(ts)
		reportPerTimer(b, &ms, benchN)
	})
}

// BenchmarkReset re-arms one timer among 1M queued ones, as an inactivity timeout
// pushed back on every read does.
func BenchmarkReset(b *testing.B) {
	ds := benchDeadlines()
	ts := make([]benchTimer, benchN)
	var h Heap[*benchTimer]
	for i, d := range ds {
		_ = h.Push(&ts[i].entry, d)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t := &ts[i%benchN]
		d, _ := h.Deadline(&t.entry)
		_ = h.Reset(&t.entry, d+int64(time.Second))
		i += 7919
	}
}
