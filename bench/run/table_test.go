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
	for _, want := range []string{
		"### echo x\n\n| server | req/s | p50 µs | p99 µs | p99.9 µs | server CPU s / M req | spread | vs best peer | load CPU | errors |\n",
		// median 300, spread (330-270)/300, 1.5 s per 300 req = 5000 s/M req, best peer gnet median 240
		"| **ringmachine-uring** | 300 | 100 | 900 | – | 5000.00 | 20 % | 1.25× gnet | 50 % | 0 |\n",
		"| gnet | 240 | 100 | 900 | – | 4166.67 | 21 % | 1.00× gnet | 50 % | 0 |\n",
		"| net | 100 | 100 | 900 | – | 10000.00 | 0 % | 0.42× gnet | 50 % | 1 |\n", // the failed round counts as an error
		"| eventmachine | failed: exited / early |\n",
		"| **ringmachine-uring** | 2.0 | 4.0 | 2.0 | 2.00× gnet |\n",
		"| scenario | server | vs gnet | vs net |\n",
		"| echo x | ringmachine-uring | 1.25 | 3.00 |\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
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
