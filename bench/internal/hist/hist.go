// Package hist is a fixed-bucket latency histogram: log-linear buckets
// (16 per power of two, so about 6 % resolution) over the whole uint64
// range, no allocation per sample.
package hist

import "math/bits"

const (
	subBits = 4
	sub     = 1 << subBits
	buckets = 64 * sub
)

// Hist counts samples (nanoseconds) in fixed buckets. The zero value is ready.
type Hist struct {
	counts [buckets]uint64
	n      uint64
	max    uint64
}

func index(v uint64) int {
	if v < sub {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1
	return (e+1)<<subBits + int((v>>uint(e))&(sub-1))
}

// lower is the smallest value of bucket i; width its width.
func bounds(i int) (lower, width uint64) {
	if i < sub {
		return uint64(i), 1
	}
	e := uint(i>>subBits - 1)
	return uint64(sub+i&(sub-1)) << e, 1 << e
}

// Record adds one sample.
func (h *Hist) Record(v uint64) {
	h.counts[index(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

// Count is the number of samples.
func (h *Hist) Count() uint64 { return h.n }

// Max is the largest sample.
func (h *Hist) Max() uint64 { return h.max }

// Merge adds o's samples to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Quantile returns the q-quantile (0 < q <= 1): the middle of the bucket
// holding the ceil(q*n)-th sample, never above Max; 0 without samples.
func (h *Hist) Quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	target := uint64(q * float64(h.n))
	if float64(target) < q*float64(h.n) || target == 0 {
		target++
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= target {
			lo, w := bounds(i)
			return min(lo+w/2, h.max)
		}
	}
	return h.max
}
