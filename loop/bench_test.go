package loop_test

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// forEachBackendB runs fn as a sub-benchmark per backend.
func forEachBackendB(b *testing.B, fn func(b *testing.B, be loop.Backend)) {
	for _, be := range testutil.Backends {
		b.Run(be.String(), func(b *testing.B) {
			if be == loop.URing {
				testutil.RequireURing(b)
			}
			fn(b, be)
		})
	}
}

// runB runs fn on a fresh loop and fails b on error.
func runB(b *testing.B, be loop.Backend, fn func(l *loop.Loop)) {
	b.Helper()
	l, err := loop.New(loop.Options{Backend: be})
	if err == nil {
		err = l.Run(fn)
	}
	if err != nil {
		b.Fatal(err)
	}
}

const million = 1_000_000

// BenchmarkTimers1M arms 1M one-shot timers (spread over 1 ms) and runs the
// loop until all have fired; "afterfunc" does the same with time.AfterFunc.
// Reported per timer.
func BenchmarkTimers1M(b *testing.B) {
	n := million
	forEachBackendB(b, func(b *testing.B, be loop.Backend) {
		b.ReportAllocs()
		var bytesPerTimer float64
		for b.Loop() {
			fired := 0
			runB(b, be, func(l *loop.Loop) {
				b.StopTimer()
				before := liveHeap()
				b.StartTimer()
				fn := func() {
					if fired++; fired == n {
						l.Stop()
					}
				}
				for i := range n {
					if _, err := l.AddTimer(time.Duration(i%1000)*time.Microsecond, fn); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				bytesPerTimer = float64(liveHeap()-before) / float64(n)
				b.StartTimer()
			})
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/timer")
		b.ReportMetric(bytesPerTimer, "live-B/timer")
	})
	b.Run("afterfunc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var wg sync.WaitGroup
			wg.Add(n)
			fn := wg.Done
			for i := range n {
				time.AfterFunc(time.Duration(i%1000)*time.Microsecond, fn)
			}
			wg.Wait()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/timer")
	})
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkTimerAddCancel measures arming and cancelling one timer.
func BenchmarkTimerAddCancel(b *testing.B) {
	b.Run("loop", func(b *testing.B) {
		l, err := loop.New(loop.Options{})
		if err != nil {
			b.Fatal(err)
		}
		fn := func() {}
		b.ReportAllocs()
		for b.Loop() {
			t, _ := l.AddTimer(time.Hour, fn)
			t.Cancel()
		}
	})
	b.Run("afterfunc", func(b *testing.B) {
		fn := func() {}
		b.ReportAllocs()
		for b.Loop() {
			t := time.AfterFunc(time.Hour, fn)
			t.Stop()
		}
	})
}

// BenchmarkNextTickCrossGoroutine measures NextTick throughput from 4
// goroutines into a running loop ("ticks/s").
func BenchmarkNextTickCrossGoroutine(b *testing.B) {
	const producers = 4
	forEachBackendB(b, func(b *testing.B, be loop.Backend) {
		b.ReportAllocs()
		var elapsed time.Duration
		total := 0
		for b.Loop() {
			per := 250_000
			runB(b, be, func(l *loop.Loop) {
				got := 0
				fn := func() {
					if got++; got == producers*per {
						l.Stop()
					}
				}
				start := time.Now()
				var wg sync.WaitGroup
				for range producers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range per {
							_ = l.NextTick(fn)
						}
					}()
				}
				_ = l.AddShutdownHook(func() { wg.Wait(); elapsed += time.Since(start) })
			})
			total += producers * per
		}
		b.ReportMetric(float64(total)/elapsed.Seconds(), "ticks/s")
	})
}

// BenchmarkWakeLatency measures the time from NextTick on another goroutine
// to the tick running on a loop blocked in poll; reports p50 and p99.
func BenchmarkWakeLatency(b *testing.B) {
	forEachBackendB(b, func(b *testing.B, be loop.Backend) {
		var lat []time.Duration
		runB(b, be, func(l *loop.Loop) {
			ran := make(chan struct{}, 1)
			go func() {
				for b.Loop() {
					time.Sleep(50 * time.Microsecond) // let the loop block
					start := time.Now()
					_ = l.NextTick(func() {
						lat = append(lat, time.Since(start))
						ran <- struct{}{}
					})
					<-ran
				}
				l.Stop()
			}()
		})
		slices.Sort(lat)
		if len(lat) > 0 {
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		}
	})
}

// BenchmarkDeferRoundTrip measures Defer: op on a worker, callback back on
// the loop, one at a time.
func BenchmarkDeferRoundTrip(b *testing.B) {
	forEachBackendB(b, func(b *testing.B, be loop.Backend) {
		b.ReportAllocs()
		runB(b, be, func(l *loop.Loop) {
			var n atomic.Int64
			op := func() int64 { return n.Add(1) }
			var next func(int64)
			next = func(int64) {
				if !b.Loop() {
					l.Stop()
					return
				}
				_ = loop.Defer(l, op, next)
			}
			next(0)
		})
	})
}

// BenchmarkLockedGosched: what one yield of a busy loop costs
// (Options.YieldEvery): runtime.Gosched by a goroutine locked to its thread,
// as the loop's is, which hands the P to another thread and back. Pinned to
// one CPU (taskset -c 0) that is two context switches on that CPU; on two
// CPUs it is a wake-up of a thread on the other. GOMAXPROCS is raised from
// 1 to 2 as Run raises it.
func BenchmarkLockedGosched(b *testing.B) {
	if runtime.GOMAXPROCS(0) == 1 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for b.Loop() {
			runtime.Gosched()
		}
	}()
	<-done
}

// BenchmarkClockRead is the cost of the loop's clock reads on this machine:
// time.Since (one vDSO clock_gettime, what Loop.monotonic and the engines'
// deadlines use) and time.Now (two: wall and monotonic time). bench/README
// ("Clock reads per iteration") counts how many a loop iteration makes.
func BenchmarkClockRead(b *testing.B) {
	base := time.Now()
	b.Run("since", func(b *testing.B) {
		var d time.Duration
		for b.Loop() {
			d += time.Since(base)
		}
		clockSink = d
	})
	b.Run("now", func(b *testing.B) {
		var t time.Time
		for b.Loop() {
			t = time.Now()
		}
		clockSink = time.Duration(t.UnixNano())
	})
}

// clockSink keeps BenchmarkClockRead's reads from being optimised away.
var clockSink time.Duration
