package main

import (
	"math"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{math.NaN(), 5}, 5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) is not NaN")
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", 100000: "100,000"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func smp(rps, cpu float64) sample {
	return sample{rps: rps, requests: rps, p50: 100, p99: 900, p999: math.NaN(), serverCPU: cpu, loadCPU: 0.5}
}

func TestFormatReport(t *testing.T) {
	echo := scenario{name: "echo x", proto: "echo", kind: "loadgen"}
	idle := scenario{name: "idle memory", proto: "echo", kind: "idle"}
	res := []*result{
		{scenario: echo, server: "ringmachine-uring", ours: true, samples: []sample{smp(300, 1.5), smp(330, 1.5), smp(270, 1.5)}},
		{scenario: echo, server: "gnet", samples: []sample{smp(200, 1), smp(250, 1), smp(240, 1)}},
		{scenario: echo, server: "net", samples: []sample{smp(100, 1), smp(100, 1), {err: "boom"}}},
		{scenario: echo, server: "eventmachine", samples: []sample{{err: "exited | early"}}},
		{scenario: idle, server: "ringmachine-uring", ours: true, samples: []sample{{rss0: 2048, rss1: 4096, kbc: 2}}},
		{scenario: idle, server: "gnet", samples: []sample{{rss0: 1024, rss1: 2048, kbc: 1}}},
	}
	out := formatReport(res)
	reportHas(t, out,
		"### echo x\n\n| server | req/s | p50 µs | p99 µs | p99.9 µs | server CPU s / M req | spread | vs best peer | load CPU | errors |\n",
		// median 300, spread (330-270)/300, 1.5 s per 300 req = 5000 s/M req, best peer gnet median 240
		"| **ringmachine-uring** | 300 | 100 | 900 | – | 5000.00 | 20 % | 1.25× gnet | 50 % | 0 |\n",
		"| gnet | 240 | 100 | 900 | – | 4166.67 | 21 % | 1.00× gnet | 50 % | 0 |\n",
		"| net | 100 | 100 | 900 | – | 10000.00 | 0 % | 0.42× gnet | 50 % | 1 |\n", // the failed round counts as an error
		"| eventmachine | failed: exited / early |\n",
		"| **ringmachine-uring** | 2.0 | 4.0 | 2.0 | 2.00× gnet |\n",
		"| scenario | server | vs gnet | vs net |\n",
		"| echo x | ringmachine-uring | 1.25 | 3.00 |\n",
	)
	if strings.Index(out, "### echo x") > strings.Index(out, "### idle memory") {
		t.Error("scenarios out of order")
	}
}

func TestLoadBoundMark(t *testing.T) {
	s := smp(100, 1)
	s.loadCPU = 0.97
	out := formatReport([]*result{{scenario: scenario{name: "e", kind: "loadgen"}, server: "gnet", samples: []sample{s}}})
	if !strings.Contains(out, "| 97 % ⚠ |") {
		t.Errorf("no load-bound mark:\n%s", out)
	}
}

func TestMedianCI(t *testing.T) {
	for _, c := range []struct {
		in                []float64
		med, lo, hi, conf float64
	}{
		// Five values: [min, max], the most five can give (1 − 2/32).
		{[]float64{1.3, 0.9, 1.1, 1.0, 1.2}, 1.1, 0.9, 1.3, 0.9375},
		// Twenty: the 6th smallest and 6th largest, 95.86 %.
		{[]float64{20, 1, 19, 2, 18, 3, 17, 4, 16, 5, 15, 6, 14, 7, 13, 8, 12, 9, 11, 10}, 10.5, 6, 15, 1 - 2*21700.0/(1<<20)},
		{[]float64{2}, 2, 2, 2, 0},
	} {
		med, lo, hi, conf := medianCI(c.in)
		if med != c.med || lo != c.lo || hi != c.hi || math.Abs(conf-c.conf) > 1e-12 {
			t.Errorf("medianCI(%v) = %v, %v, %v, %v; want %v, %v, %v, %v", c.in, med, lo, hi, conf, c.med, c.lo, c.hi, c.conf)
		}
	}
	if med, lo, hi, conf := medianCI(nil); !math.IsNaN(med) || !math.IsNaN(lo) || !math.IsNaN(hi) || !math.IsNaN(conf) {
		t.Errorf("medianCI(nil) = %v, %v, %v, %v; want NaNs", med, lo, hi, conf)
	}
}

// TestPairedReport: ratios are taken round by round, a failed round of
// either side drops the pair, and the verdict marks follow the interval.
func TestPairedReport(t *testing.T) {
	echo := scenario{name: "echo x", proto: "echo", kind: "loadgen"}
	rounds := func(rps ...float64) []sample {
		var s []sample
		for _, v := range rps {
			s = append(s, smp(v, 1))
		}
		return s
	}
	failed := rounds(100, 100, 100, 100, 100, 100)
	failed[5] = sample{err: "boom"}
	res := []*result{
		// ours ÷ c: 1.1, 1.2, 1.05, 1.3, 1.15 (the sixth round of c failed)
		{scenario: echo, server: "ringmachine-uring", ours: true, samples: rounds(110, 120, 105, 130, 115, 500)},
		{scenario: echo, server: "c", samples: failed},
		// ours ÷ gnet: 0.5 in five rounds, 0.52 in one
		{scenario: echo, server: "gnet", samples: rounds(220, 240, 210, 250, 230, 1000)},
		// ours ÷ net: 1 in five rounds, 0.92 in one: an interval that
		// reaches 1 is a tie
		{scenario: echo, server: "net", samples: rounds(110, 130, 105, 130, 115, 500)},
		// the C server ÷ net: 2 in every round; ÷ gnet: 1 in four rounds,
		// 1.04 and 1.08 in two; ÷ c: 2.1 to 2.6
		{scenario: echo, server: cPeer, samples: rounds(220, 260, 210, 260, 230, 1000)},
	}
	out := formatReport(res)
	reportHas(t, out,
		"### RingMachine req/s ÷ peer req/s, round by round\n\n| scenario | server | vs c | vs gnet | vs net | vs c-liburing |\n",
		"| echo x | ringmachine-uring | **1.15** [1.05, 1.30] n=5 | _0.50_ [0.50, 0.52] n=6 | 1.00 [0.92, 1.00] n=6 | _0.50_ [0.46, 0.50] n=6 |\n",
		// its own column is empty
		"| echo x | c-liburing (reference) | **2.30** [2.10, 2.60] n=5 | 1.00 [1.00, 1.08] n=6 | **2.00** [2.00, 2.00] n=6 |  |\n",
		"confidence 93.8 % for n = 5, 96.9 % for n = 6). **Bold**",
		"The c-liburing (reference) rows are the C liburing server's ratios",
	)
	// Without the C server, no reference row and no sentence about it.
	out = formatReport(res[:4])
	if strings.Contains(out, "(reference)") {
		t.Errorf("a reference row without the C server:\n%s", out)
	}
}

// reportHas fails t for each of want that out does not contain.
func reportHas(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
}
