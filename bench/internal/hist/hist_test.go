package hist

import "testing"

func TestBuckets(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 15, 16, 17, 31, 32, 33, 1000, 1 << 20, 1<<40 + 5, 1<<63 + 1} {
		i := index(v)
		if i < prev {
			t.Fatalf("index(%d) = %d decreasing", v, i)
		}
		lo, w := bounds(i)
		if v < lo || v >= lo+w {
			t.Fatalf("v=%d in bucket %d [%d,%d)", v, i, lo, lo+w)
		}
		prev = i
	}
}

func TestQuantile(t *testing.T) {
	var h Hist
	for v := uint64(1); v <= 100000; v++ {
		h.Record(v * 1000)
	}
	for _, c := range []struct {
		q    float64
		want float64
	}{{0.5, 50e6}, {0.99, 99e6}, {0.999, 99.9e6}} {
		got := float64(h.Quantile(c.q))
		if got < c.want*0.94 || got > c.want*1.06 {
			t.Errorf("q%.3f = %.0f, want ~%.0f", c.q, got, c.want)
		}
	}
	if testing.AllocsPerRun(100, func() { h.Record(12345) }) != 0 {
		t.Error("Record allocates")
	}
}
