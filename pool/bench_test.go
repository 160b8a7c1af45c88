package pool

import (
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkRoundTrip measures one Submit → job on a worker → Post → done on the
// submitting goroutine, with nothing else in flight: the latency a lone Defer adds.
func BenchmarkRoundTrip(b *testing.B) {
	completions := make(chan func(), 1)
	p, err := New(Options{Post: func(done func()) { completions <- done }})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	var n int
	done := func() { n++ }
	job := func() func() { return done }
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Submit(job); err != nil {
			b.Fatal(err)
		}
		(<-completions)()
	}
	if n != b.N {
		b.Fatalf("ran %d completions, want %d", n, b.N)
	}
}

// BenchmarkThroughput submits batches of jobs from 8 goroutines to the default
// 20-worker pool and waits until every completion has been posted.
func BenchmarkThroughput(b *testing.B) {
	const (
		submitters = 8
		perSub     = 2048
		batch      = submitters * perSub
	)
	var posted atomic.Int64
	var all sync.WaitGroup
	p, err := New(Options{Post: func(done func()) { done() }})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	done := func() { posted.Add(1); all.Done() }
	job := func() func() { return done }
	start := make([]chan struct{}, submitters)
	var subs sync.WaitGroup
	for i := range start {
		start[i] = make(chan struct{})
		subs.Add(1)
		go func() {
			defer subs.Done()
			for range start[i] {
				for range perSub {
					if err := p.Submit(job); err != nil {
						panic(err)
					}
				}
			}
		}()
	}
	b.ReportAllocs()
	for b.Loop() {
		all.Add(batch)
		for _, c := range start {
			c <- struct{}{}
		}
		all.Wait()
	}
	for _, c := range start {
		close(c)
	}
	subs.Wait()
	jobs := float64(b.N) * batch
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/jobs, "ns/job")
	b.ReportMetric(jobs/b.Elapsed().Seconds(), "jobs/s")
}
