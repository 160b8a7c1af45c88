package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// median of the finite values (NaN if none).
func median(v []float64) float64 {
	var f []float64
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			f = append(f, x)
		}
	}
	if len(f) == 0 {
		return math.NaN()
	}
	slices.Sort(f)
	if len(f)%2 == 1 {
		return f[len(f)/2]
	}
	return (f[len(f)/2-1] + f[len(f)/2]) / 2
}

// summary is the medians of one result's successful rounds.
type summary struct {
	ok                  int
	rps, p50, p99, p999 float64
	cpuPerM, loadCPU    float64
	spread              float64 // (max-min)/median of req/s
	errors              float64
	rss0, rss1, kbc     float64
	firstErr            string
}

func summarize(r *result) summary {
	var s summary
	var rps, p50, p99, p999, cpm, lc, rss0, rss1, kbc []float64
	for _, m := range r.samples {
		s.errors += m.errors
		if m.err != "" {
			if s.firstErr == "" {
				s.firstErr = m.err
			}
			if m.rps == 0 && m.kbc == 0 {
				s.errors++
				continue
			}
		}
		s.ok++
		rps = append(rps, m.rps)
		p50, p99, p999 = append(p50, m.p50), append(p99, m.p99), append(p999, m.p999)
		if m.requests > 0 {
			cpm = append(cpm, m.serverCPU/(m.requests/1e6))
		}
		lc = append(lc, m.loadCPU)
		rss0, rss1, kbc = append(rss0, m.rss0), append(rss1, m.rss1), append(kbc, m.kbc)
	}
	s.rps, s.p50, s.p99, s.p999 = median(rps), median(p50), median(p99), median(p999)
	s.cpuPerM, s.loadCPU = median(cpm), median(lc)
	s.rss0, s.rss1, s.kbc = median(rss0), median(rss1), median(kbc)
	s.spread = math.NaN()
	if len(rps) > 1 && s.rps > 0 {
		s.spread = (slices.Max(rps) - slices.Min(rps)) / s.rps
	}
	return s
}

func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

// thousands formats an integer with thin separators: 1234567 -> 1,234,567.
func thousands(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f %%", 100*v)
}

// formatReport renders one Markdown table per scenario (in first-seen
// order) and the ratio table of RingMachine against each peer.
func formatReport(results []*result) string {
	var b strings.Builder
	var order []string
	by := map[string][]*result{}
	for _, r := range results {
		if _, ok := by[r.scenario.name]; !ok {
			order = append(order, r.scenario.name)
		}
		by[r.scenario.name] = append(by[r.scenario.name], r)
	}
	type ratioRow struct {
		scenario, server string
		vs               map[string]float64
	}
	var ratios []ratioRow
	var peers []string
	for _, name := range order {
		rs := by[name]
		sums := make([]summary, len(rs))
		for i, r := range rs {
			sums[i] = summarize(r)
		}
		idle := rs[0].scenario.kind == "idle"
		through := float64(rs[0].scenario.through) // bytes per request, for the MB columns
		// Best peer: the most req/s, or the fewest KB per connection.
		best := -1
		for i, r := range rs {
			v := sums[i].rps
			if idle {
				v = sums[i].kbc
			}
			if r.ours || sums[i].ok == 0 || math.IsNaN(v) {
				continue
			}
			if best < 0 || (!idle && v > sums[best].rps) || (idle && v < sums[best].kbc) {
				best = i
			}
		}
		fmt.Fprintf(&b, "### %s\n\n", name)
		if idle {
			b.WriteString("| server | RSS before (MiB) | RSS with conns (MiB) | KB per conn | vs best peer |\n|---|--:|--:|--:|--:|\n")
		} else if through > 0 {
			b.WriteString("| server | req/s | MB/s | p50 µs | p99 µs | p99.9 µs | server CPU s / M req | MB / server CPU s | spread | vs best peer | load CPU | errors |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		} else {
			b.WriteString("| server | req/s | p50 µs | p99 µs | p99.9 µs | server CPU s / M req | spread | vs best peer | load CPU | errors |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		}
		for i, r := range rs {
			s := sums[i]
			label := r.server
			if r.ours {
				label = "**" + label + "**"
			}
			if s.ok == 0 {
				fmt.Fprintf(&b, "| %s | failed: %s |\n", label, strings.ReplaceAll(s.firstErr, "|", "/"))
				continue
			}
			vs := "–"
			if best >= 0 {
				if idle {
					vs = fmt.Sprintf("%.2f× %s", s.kbc/sums[best].kbc, rs[best].server)
				} else {
					vs = fmt.Sprintf("%.2f× %s", s.rps/sums[best].rps, rs[best].server)
				}
			}
			if idle {
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", label, num(s.rss0/1024, 1), num(s.rss1/1024, 1), num(s.kbc, 1), vs)
				continue
			}
			load := pct(s.loadCPU)
			if s.loadCPU > 0.9 {
				load += " ⚠"
			}
			if through > 0 {
				// MB (10^6 bytes) per second of wall clock and per second
				// of server CPU: cpuPerM s carry through × 10^6 bytes.
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label,
					thousands(s.rps), thousands(s.rps*through/1e6), num(s.p50, 0), num(s.p99, 0), num(s.p999, 0),
					num(s.cpuPerM, 2), thousands(perCPU(through, s.cpuPerM)), pct(s.spread), vs, load, thousands(s.errors))
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label,
				thousands(s.rps), num(s.p50, 0), num(s.p99, 0), num(s.p999, 0), num(s.cpuPerM, 2),
				pct(s.spread), vs, load, thousands(s.errors))
		}
		b.WriteString("\n")
		if through > 0 {
			b.WriteString(spliceVsCopy(rs, sums, through))
		}
		if idle {
			continue
		}
		for i, r := range rs {
			if !r.ours || sums[i].ok == 0 {
				continue
			}
			row := ratioRow{scenario: name, server: r.server, vs: map[string]float64{}}
			for j, p := range rs {
				if p.ours || sums[j].ok == 0 {
					continue
				}
				row.vs[p.server] = sums[i].rps / sums[j].rps
				if !slices.Contains(peers, p.server) {
					peers = append(peers, p.server)
				}
			}
			ratios = append(ratios, row)
		}
	}
	if len(ratios) > 0 {
		b.WriteString("### RingMachine req/s ÷ peer req/s (medians)\n\n| scenario | server |")
		for _, p := range peers {
			fmt.Fprintf(&b, " vs %s |", p)
		}
		b.WriteString("\n|---|---|" + strings.Repeat("--:|", len(peers)) + "\n")
		for _, r := range ratios {
			fmt.Fprintf(&b, "| %s | %s |", r.scenario, r.server)
			for _, p := range peers {
				if v, ok := r.vs[p]; ok {
					fmt.Fprintf(&b, " %.2f |", v)
				} else {
					b.WriteString(" |")
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("\nLoad CPU is the share of its CPU the load tool used: near 100 % (⚠) the load tool, not the server, is the bottleneck — use -capped.\n")
		b.WriteString(pairedReport(order, by, peers))
	}
	return b.String()
}

// pairedRatios are the per-round req/s ratios of ours to peer: rounds are
// interleaved, so round i of one server ran within seconds of round i of
// the other, and the ratio of the pair cancels what the machine did to
// both. Rounds where either failed are left out (as in the chart).
func pairedRatios(ours, peer *result) []float64 {
	var per []float64
	for i := range min(len(ours.samples), len(peer.samples)) {
		a, b := ours.samples[i], peer.samples[i]
		if a.err == "" && b.err == "" && a.rps > 0 && b.rps > 0 {
			per = append(per, a.rps/b.rps)
		}
	}
	return per
}

// medianCI returns the median of v and a distribution-free confidence
// interval for it: the k-th smallest and the k-th largest value, with k the
// largest for which the interval's confidence, 1 − 2·P(B < k) for B
// binomial(n, ½), is at least 95 %, and never below 1. Five values give
// [min, max] at 93.75 %, the most five can give; six reach 96.9 %. lo, hi
// and conf are NaN without values.
func medianCI(v []float64) (med, lo, hi, conf float64) {
	f := slices.Clone(v)
	slices.Sort(f)
	n := len(f)
	if n == 0 {
		return math.NaN(), math.NaN(), math.NaN(), math.NaN()
	}
	// below[j] = P(B ≤ j)
	below := make([]float64, n+1)
	c, sum := 1.0, 0.0 // C(n, j)
	for j := 0; j <= n; j++ {
		sum += c
		below[j] = sum / math.Exp2(float64(n))
		c = c * float64(n-j) / float64(j+1)
	}
	k := 1
	for k+1 <= (n+1)/2 && 1-2*below[k] >= 0.95 {
		k++
	}
	return median(f), f[k-1], f[n-k], 1 - 2*below[k-1]
}

// pairedReport is a table of the paired per-round ratios (pairedRatios) of
// each server of ours to each peer: their median and the confidence
// interval of that median (medianCI). A ratio whose whole interval is above
// 1 is bold, below 1 in italics: there the order holds beyond the noise of
// the run; elsewhere the run cannot tell the two apart. The C liburing
// server gets a row too, against the other peers: what a hand-written
// io_uring server reaches on the same machine in the same rounds, the
// ceiling for a target stated as a ratio to a peer.
func pairedReport(order []string, by map[string][]*result, peers []string) string {
	var b strings.Builder
	confs := map[int]float64{}
	rows, refRows := 0, 0
	for _, name := range order {
		rs := by[name]
		if rs[0].scenario.kind == "idle" {
			continue
		}
		for _, r := range rs {
			if !r.ours && r.server != cPeer {
				continue
			}
			cells := make([]string, len(peers))
			some := false
			for i, p := range peers {
				j := slices.IndexFunc(rs, func(q *result) bool { return !q.ours && q.server == p })
				if j < 0 || rs[j] == r {
					continue
				}
				per := pairedRatios(r, rs[j])
				if len(per) == 0 {
					continue
				}
				med, lo, hi, conf := medianCI(per)
				confs[len(per)] = conf
				v := fmt.Sprintf("%.2f", med)
				switch {
				case lo > 1:
					v = "**" + v + "**"
				case hi < 1:
					v = "_" + v + "_"
				}
				cells[i] = fmt.Sprintf("%s [%.2f, %.2f] n=%d", v, lo, hi, len(per))
				some = true
			}
			if !some {
				continue
			}
			if rows == 0 {
				b.WriteString("\n### RingMachine req/s ÷ peer req/s, round by round\n\n| scenario | server |")
				for _, p := range peers {
					fmt.Fprintf(&b, " vs %s |", p)
				}
				b.WriteString("\n|---|---|" + strings.Repeat("--:|", len(peers)) + "\n")
			}
			rows++
			server := r.server
			if !r.ours {
				server += " (reference)"
				refRows++
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", name, server, strings.Join(cells, " | "))
		}
	}
	if rows == 0 {
		return ""
	}
	ns := slices.Sorted(maps.Keys(confs))
	var levels []string
	for _, n := range ns {
		levels = append(levels, fmt.Sprintf("%.1f %% for n = %d", 100*confs[n], n))
	}
	fmt.Fprintf(&b, "\nEach cell: the median of the n per-round ratios (round i of ours ÷ round i of the peer, "+
		"rounds where either failed left out) and a distribution-free confidence interval for that median "+
		"(order statistics; confidence %s). **Bold**: the whole interval is above 1; _italics_: below 1; "+
		"otherwise this run cannot tell the two apart.", strings.Join(levels, ", "))
	if refRows > 0 {
		fmt.Fprintf(&b, " The %s (reference) rows are the C liburing server's ratios to the other peers: "+
			"what hand-written io_uring reaches here, in the same rounds.", cPeer)
	}
	b.WriteString("\n")
	return b.String()
}

// perCPU is MB (10^6 bytes) per second of server CPU, through bytes per
// request at cpuPerM seconds per million requests (NaN without CPU).
func perCPU(through, cpuPerM float64) float64 {
	if !(cpuPerM > 0) {
		return math.NaN()
	}
	return through / cpuPerM
}

// spliceVsCopy is a line comparing, for each of ours named X-splice with an
// X-copy beside it, their MB per server CPU second (the proxy scenario's
// key figure); "" when there is no such pair.
func spliceVsCopy(rs []*result, sums []summary, through float64) string {
	var parts []string
	for i, r := range rs {
		base, ok := strings.CutSuffix(r.server, "-splice")
		if !ok || !r.ours || sums[i].ok == 0 {
			continue
		}
		for j, q := range rs {
			if q.server == base+"-copy" && q.ours && sums[j].ok > 0 {
				sp, cp := perCPU(through, sums[i].cpuPerM), perCPU(through, sums[j].cpuPerM)
				parts = append(parts, fmt.Sprintf("%s %s×", base, num(sp/cp, 2)))
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Splice ÷ copy, MB per server CPU s: " + strings.Join(parts, ", ") + ".\n\n"
}
