package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

func rounds(rps ...float64) []sample {
	var s []sample
	for _, v := range rps {
		smp := sample{rps: v}
		if v == 0 {
			smp.err = "failed"
		}
		s = append(s, smp)
	}
	return s
}

// TestStandings: each of ours is divided by the best peer of its scenario
// (by median), round by round for the spread, skipping failed rounds and
// the idle scenario.
func TestStandings(t *testing.T) {
	echo := scenario{name: "echo", kind: "loadgen"}
	idle := scenario{name: "idle", kind: "idle"}
	res := []*result{
		{scenario: echo, server: "ringmachine-uring", ours: true, samples: rounds(110, 90, 100)},
		{scenario: echo, server: "ringmachine-epoll", ours: true, samples: rounds(80, 0, 85)},
		{scenario: echo, server: "gnet", samples: rounds(100, 100, 100)},
		{scenario: echo, server: "net", samples: rounds(50, 60, 55)},
		{scenario: idle, server: "ringmachine-uring", ours: true, samples: rounds(0)},
	}
	st := standings(res)
	if len(st) != 2 {
		t.Fatalf("%d standings, want 2: %+v", len(st), st)
	}
	u, e := st[0], st[1]
	if u.server != "ringmachine-uring" || u.peer != "gnet" || u.ratio != 1.0 || u.lo != 0.9 || u.hi != 1.1 {
		t.Errorf("uring: %+v", u)
	}
	if math.Abs(e.ratio-0.825) > 1e-9 || e.lo != 0.8 || e.hi != 0.85 {
		t.Errorf("epoll (its failed round left out): %+v", e)
	}
}

// TestChartSVG: the chart is well-formed XML naming every server and
// scenario, escapes what it prints, and draws the 1.0 line.
func TestChartSVG(t *testing.T) {
	st := []standing{
		{scenario: "echo <64>", server: "ringmachine-uring", peer: "gnet", ratio: 1.2, lo: 1.1, hi: 1.3},
		{scenario: "echo <64>", server: "ringmachine-epoll", peer: "gnet", ratio: 0.9, lo: math.NaN(), hi: math.NaN()},
		{scenario: "redis", server: "ringmachine-uring", peer: "redis-server", ratio: 1.05, lo: 1, hi: 1.1},
	}
	svg := chartSVG("standings & more", st)
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
	}
	for _, want := range []string{"ringmachine-uring", "ringmachine-epoll", "echo &lt;64&gt; (vs gnet)", "redis (vs redis-server)",
		"standings &amp; more", ">1.00<", ">1.20<", ">0.90<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if strings.Count(svg, "<path") != 2 {
		t.Errorf("%d whiskers, want 2 (none without a spread)", strings.Count(svg, "<path"))
	}
}

// TestChartLegendWraps: with more servers than one line holds, the legend
// wraps within the width, the bars start below it, and each server keeps
// a colour of its own.
func TestChartLegendWraps(t *testing.T) {
	var st []standing
	for _, s := range []string{"ringmachine-uring", "ringmachine-epoll", "ringmachine-uring-processfds", "ringmachine-uring-minwait",
		"ringmachine-uring-splice", "ringmachine-epoll-splice", "ringmachine-uring-copy", "ringmachine-epoll-copy"} {
		st = append(st, standing{scenario: "s", server: s, peer: "net", ratio: 1, lo: math.NaN(), hi: math.NaN()})
	}
	svg := chartSVG("t", st)
	var ys, fills []string
	for _, l := range strings.Split(svg, "\n") {
		if strings.Contains(l, `width="12" height="12"`) {
			var x, y float64
			var fill string
			if _, err := fmt.Sscanf(l, `<rect x="%f" y="%f" width="12" height="12" fill=%q`, &x, &y, &fill); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			name := strings.TrimSuffix(l[strings.LastIndex(l[:len(l)-len("</text>")], ">")+1:], "</text>")
			if x+24+7*float64(len(name)) > 1000 {
				t.Errorf("legend entry %q at x %v runs past the width", name, x)
			}
			ys, fills = append(ys, fmt.Sprint(y)), append(fills, fill)
		}
	}
	if len(ys) != 8 || ys[0] == ys[7] {
		t.Errorf("legend rows %v, want 8 entries on more than one line", ys)
	}
	slices.Sort(fills)
	if len(slices.Compact(fills)) != 8 {
		t.Errorf("colours %v, want 8 distinct", fills)
	}
	if !strings.Contains(svg, `<rect x="380.0" y="99.0"`) {
		t.Errorf("the first bar is not one legend line lower (y 99):\n%s", svg)
	}
}
