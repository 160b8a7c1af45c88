package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// standing is one bar of the chart: one of our servers in one scenario,
// its req/s over the best peer's (the peer with the highest median), as a
// median and the lowest and highest of the per-round ratios.
type standing struct {
	scenario, server, peer string
	ratio, lo, hi          float64
}

// standings computes the chart's bars from the results: for every scenario
// with req/s figures, each of our servers against the best peer there.
// Rounds are interleaved, so round i of ours is divided by round i of the
// peer; rounds where either failed are left out of the spread.
func standings(results []*result) []standing {
	var order []string
	by := map[string][]*result{}
	for _, r := range results {
		if r.scenario.kind == "idle" {
			continue
		}
		if _, ok := by[r.scenario.name]; !ok {
			order = append(order, r.scenario.name)
		}
		by[r.scenario.name] = append(by[r.scenario.name], r)
	}
	var out []standing
	for _, name := range order {
		var best *result
		bestRPS := 0.0
		for _, r := range by[name] {
			if r.ours {
				continue
			}
			if m := summarize(r).rps; m > bestRPS {
				best, bestRPS = r, m
			}
		}
		if best == nil {
			continue
		}
		for _, r := range by[name] {
			if !r.ours {
				continue
			}
			m := summarize(r).rps
			if math.IsNaN(m) || m == 0 {
				continue
			}
			s := standing{scenario: name, server: r.server, peer: best.server, ratio: m / bestRPS, lo: math.NaN(), hi: math.NaN()}
			var per []float64
			for i := range min(len(r.samples), len(best.samples)) {
				a, b := r.samples[i], best.samples[i]
				if a.err == "" && b.err == "" && a.rps > 0 && b.rps > 0 {
					per = append(per, a.rps/b.rps)
				}
			}
			if len(per) > 0 {
				s.lo, s.hi = slices.Min(per), slices.Max(per)
			}
			out = append(out, s)
		}
	}
	return out
}

// chartSVG draws the standings as horizontal bars, one group per scenario,
// one bar per server of ours, with the per-round spread as error bars and a
// line at 1.0 (as fast as the best peer). title heads the chart. It is
// plain SVG 1.1 text: no fonts, scripts or external references.
func chartSVG(title string, st []standing) string {
	const (
		left, right = 380.0, 50.0
		width       = 1000.0
		barH, gap   = 16.0, 12.0
	)
	top := 80.0
	servers := []string{}
	for _, s := range st {
		if !slices.Contains(servers, s.server) {
			servers = append(servers, s.server)
		}
	}
	palette := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
		"#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728"}
	color := func(server string) string { return palette[slices.Index(servers, server)%len(palette)] }
	// The legend, wrapped onto as many lines as it needs; the bars start
	// below it.
	type entry struct{ x, y float64 }
	legend := make([]entry, len(servers))
	lx, ly := 10.0, 48.0
	for i, s := range servers {
		w := 24 + 7*float64(len(s))
		if lx > 10 && lx+w > width-10 {
			lx, ly = 10, ly+18
		}
		legend[i] = entry{lx, ly}
		lx += w
	}
	top += ly - 48

	maxX := 1.25
	for _, s := range st {
		maxX = max(maxX, s.ratio, nz(s.hi))
	}
	maxX = math.Ceil(maxX*4) / 4
	plotW := width - left - right
	x := func(v float64) float64 { return left + plotW*v/maxX }

	var groups [][]standing
	for _, s := range st {
		if n := len(groups); n > 0 && groups[n-1][0].scenario == s.scenario {
			groups[n-1] = append(groups[n-1], s)
		} else {
			groups = append(groups, []standing{s})
		}
	}
	height := top + 40
	for _, g := range groups {
		height += float64(len(g))*barH + gap
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="10" y="38" fill="#555">bars: req/s ÷ the best peer's in the scenario (medians); whiskers: lowest and highest round; line: as fast</text>`+"\n")
	// Legend.
	for i, s := range servers {
		e := legend[i]
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			e.x, e.y, color(s), e.x+16, e.y+10, html.EscapeString(s))
	}
	// Grid and axis.
	bottom := height - 30
	for v := 0.0; v <= maxX+1e-9; v += 0.25 {
		stroke, w := "#ddd", 1.0
		if math.Abs(v-1) < 1e-9 {
			stroke, w = "#000", 1.5
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="%s" stroke-width="%.1f"/>`+"\n", x(v), top-4, x(v), bottom, stroke, w)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%.2f</text>`+"\n", x(v), bottom+16, v)
	}
	y := top
	for _, g := range groups {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n",
			left-8, y+float64(len(g))*barH/2+4, html.EscapeString(g[0].scenario+" (vs "+g[0].peer+")"))
		for _, s := range g {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %.2f× %s</title></rect>`+"\n",
				left, y+1, x(s.ratio)-left, barH-2, color(s.server), html.EscapeString(s.server), s.ratio, html.EscapeString(s.peer))
			if !math.IsNaN(s.lo) {
				cy := y + barH/2
				fmt.Fprintf(&b, `<path d="M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f" stroke="#222" fill="none"/>`+"\n",
					x(s.lo), cy, x(s.hi), x(s.lo), cy-4, cy+4, x(s.hi), cy-4, cy+4)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#222">%.2f</text>`+"\n", max(x(s.ratio), x(nz(s.hi)))+6, y+barH-4, s.ratio)
			y += barH
		}
		y += gap
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// nz is v, or 0 for NaN.
func nz(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}
