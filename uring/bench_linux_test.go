package uring

import (
	"runtime"
	"testing"
)

func benchmarkNOP(b *testing.B, batch int) {
	r := newRing(b, 64, nil)
	cqes := make([]CQE, batch)
	b.ReportAllocs()
	ops := 0
	for b.Loop() {
		for i := range batch {
			s, _ := r.GetSQE()
			s.PrepNop()
			s.SetUserData(uint64(i))
		}
		if _, err := r.Submit(); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < batch; {
			got += r.PeekCQEs(cqes[got:])
			if got < batch {
				if _, err := r.SubmitAndWait(uint32(batch-got), -1); err != nil {
					b.Fatal(err)
				}
			}
		}
		ops += batch
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops), "ns/nop")
}

func BenchmarkNOP(b *testing.B) {
	b.Run("batch=1", func(b *testing.B) { benchmarkNOP(b, 1) })
	b.Run("batch=32", func(b *testing.B) { benchmarkNOP(b, 32) })
}

// BenchmarkPinner measures pinning and unpinning one send buffer per operation, the cost
// STYLE §5 asks the loop to pay for Go-heap memory handed to the kernel.
func BenchmarkPinner(b *testing.B) {
	buf := make([]byte, 4096)
	var p runtime.Pinner
	b.ReportAllocs()
	for b.Loop() {
		p.Pin(&buf[0])
		p.Unpin()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/pin+unpin")
}
