package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// scenario is one load shape against the servers of one protocol.
type scenario struct {
	name      string
	proto     string // echo, http, redis, tls (the echo over TLS), proxy (forwarding to an echo backend)
	kind      string // loadgen, wrk, redis-benchmark, idle
	conns     int
	size      int
	pipe      int
	tls       bool // loadgen -tls
	handshake bool // loadgen -handshake: a new connection (a full TLS handshake) per request
	close     bool // wrk -H "Connection: close": a new connection per request, closed by the server
	// through is the bytes the server carries per request, when the table
	// should show them (MB/s and MB per server CPU second); 0: not shown.
	through int
}

var scenarios = []scenario{
	{name: "echo 64 conns x 64 B", proto: "echo", kind: "loadgen", conns: 64, size: 64, pipe: 1},
	{name: "echo 64 conns x 64 B, pipelined 16", proto: "echo", kind: "loadgen", conns: 64, size: 64, pipe: 16},
	{name: "echo 1000 conns x 512 B", proto: "echo", kind: "loadgen", conns: 1000, size: 512, pipe: 1},
	{name: "http wrk 64 conns", proto: "http", kind: "wrk", conns: 64},
	{name: "http wrk 256 conns", proto: "http", kind: "wrk", conns: 256},
	{name: "http wrk 64 conns, Connection: close", proto: "http", kind: "wrk", conns: 64, close: true},
	{name: "redis-benchmark ping,set,get -P 1", proto: "redis", kind: "redis-benchmark", conns: 50, pipe: 1},
	{name: "redis-benchmark ping,set,get -P 16", proto: "redis", kind: "redis-benchmark", conns: 50, pipe: 16},
	{name: "idle memory", proto: "echo", kind: "idle"},
	{name: "tls handshakes 32 clients", proto: "tls", kind: "loadgen", conns: 32, size: 64, pipe: 1, tls: true, handshake: true},
	{name: "tls bulk 4 conns x 64 KiB", proto: "tls", kind: "loadgen", conns: 4, size: 64 << 10, pipe: 1, tls: true},
	{name: "tls idle memory", proto: "tls", kind: "idle", tls: true},
	// Each message crosses the proxy twice: to the backend and back.
	{name: "proxy 16 conns x 64 KiB", proto: "proxy", kind: "loadgen", conns: 16, size: 64 << 10, pipe: 1, through: 2 * 64 << 10},
}

// sample is one measurement.
type sample struct {
	rps             float64
	p50, p99, p999  float64 // µs; NaN when the tool does not report it
	requests        float64
	serverCPU       float64 // seconds during the load
	loadCPU         float64 // fraction of one CPU the load tool used
	errors          float64
	rss0, rss1, kbc float64 // idle: KiB before, with the connections, per connection
	err             string
}

// result is every round of one server in one scenario.
type result struct {
	scenario scenario
	server   string
	ours     bool
	samples  []sample
}

func (c *config) measureAll(srvs []server, cg *cgroup) []*result {
	var out []*result
	index := map[string]*result{}
	total, done, start := c.planned(srvs), 0, time.Now()
	for round := range c.rounds {
		for _, sc := range scenarios {
			if !c.only.MatchString(sc.name) {
				continue
			}
			if sc.kind == "idle" && round > 0 && c.quick {
				continue
			}
			var list []server
			for _, s := range srvs {
				if s.proto == sc.proto {
					list = append(list, s)
				}
			}
			for i := range list { // rotate the order every round
				s := list[(i+round)%len(list)]
				key := sc.name + "\x00" + s.name
				r := index[key]
				if r == nil {
					r = &result{scenario: sc, server: s.name, ours: s.ours}
					index[key] = r
					out = append(out, r)
				}
				done++
				fmt.Fprintf(os.Stderr, "run: %d of %d, round %d: %s, %s (%s elapsed)\n",
					done, total, round+1, sc.name, s.name, time.Since(start).Round(time.Second))
				smp := c.measure(sc, s, cg)
				if c.verbose || smp.err != "" {
					fmt.Fprintf(os.Stderr, "round %d  %-36s %-18s rps=%-10.0f p99=%-8.0f cpu=%.2fs load=%.0f%% kb/conn=%.1f %s\n",
						round+1, sc.name, s.name, smp.rps, smp.p99, smp.serverCPU, 100*smp.loadCPU, smp.kbc, smp.err)
				}
				r.samples = append(r.samples, smp)
			}
		}
	}
	return out
}

// planned counts the measurements measureAll will make, for its progress
// lines.
func (c *config) planned(srvs []server) int {
	n := 0
	for round := range c.rounds {
		for _, sc := range scenarios {
			if !c.only.MatchString(sc.name) || (sc.kind == "idle" && round > 0 && c.quick) {
				continue
			}
			for _, s := range srvs {
				if s.proto == sc.proto {
					n++
				}
			}
		}
	}
	return n
}

func (c *config) measure(sc scenario, s server, cg *cgroup) (smp sample) {
	smp = sample{p50: math.NaN(), p99: math.NaN(), p999: math.NaN()}
	srv, err := c.start(s, cg)
	if err != nil {
		smp.err = err.Error()
		return smp
	}
	defer srv.stop()
	if sc.kind == "idle" {
		return c.idle(srv, sc)
	}
	if sc.kind == "loadgen" && c.warmup > 0 {
		_, _ = c.loadgen(srv.addr, sc, c.warmup)
	}
	cpu0, err0 := cpuSeconds(srv.pid)
	switch sc.kind {
	case "loadgen":
		if sc.proto == "proxy" && c.backend != nil {
			smp, err = c.withBackend(func() (sample, error) { return c.loadgen(srv.addr, sc, c.dur) })
			break
		}
		smp, err = c.loadgen(srv.addr, sc, c.dur)
	case "wrk":
		smp, err = c.wrk(srv.addr, sc)
	case "redis-benchmark":
		smp, err = c.redisBenchmark(srv.addr, sc)
	}
	cpu1, err1 := cpuSeconds(srv.pid)
	if err == nil && (err0 != nil || err1 != nil) {
		err = fmt.Errorf("server exited during the load")
	}
	if err != nil {
		smp.err = err.Error()
		return smp
	}
	smp.serverCPU = cpu1 - cpu0
	return smp
}

// withBackend runs the load of f and adds to its load CPU the share of a
// CPU the proxy's backend used meanwhile: both run on the load CPU, so
// together they tell whether that CPU, not the proxy, was the limit.
func (c *config) withBackend(f func() (sample, error)) (sample, error) {
	b0, err0 := cpuSeconds(c.backend.pid)
	t0 := time.Now()
	smp, err := f()
	wall := time.Since(t0).Seconds()
	b1, err1 := cpuSeconds(c.backend.pid)
	if err == nil && (err0 != nil || err1 != nil) {
		err = fmt.Errorf("the proxy backend exited during the load")
	}
	smp.loadCPU += (b1 - b0) / wall
	return smp, err
}

// load runs argv pinned to the load CPU, bounded by c.timeoutPer, and
// returns its stdout and the fraction of a CPU it used.
func (c *config) load(argv ...string) ([]byte, float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeoutPer)
	defer cancel()
	cmd := exec.CommandContext(ctx, "taskset", append([]string{"-c", c.loadCPU}, argv...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0).Seconds()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %v: %s", filepath.Base(argv[0]), err, strings.TrimSpace(stderr.String()))
	}
	ps := cmd.ProcessState
	return stdout.Bytes(), (ps.UserTime() + ps.SystemTime()).Seconds() / wall, nil
}

type loadgenResult struct {
	Requests float64 `json:"requests"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
	P999     float64 `json:"p999_us"`
	Errors   float64 `json:"errors"`
	FirstErr string  `json:"first_error"`
	CPUs     float64 `json:"loadgen_cpu_s"`
	Seconds  float64 `json:"seconds"`
}

// loadgenArgs is the command line of loadgen for sc against addr for d.
func loadgenArgs(sc scenario, addr string, d time.Duration) []string {
	args := []string{"-addr", addr, "-c", strconv.Itoa(sc.conns), "-s", strconv.Itoa(sc.size),
		"-p", strconv.Itoa(sc.pipe), "-d", d.String()}
	if sc.tls {
		args = append(args, "-tls")
	}
	if sc.handshake {
		args = append(args, "-handshake")
	}
	return args
}

func (c *config) loadgen(addr string, sc scenario, d time.Duration) (sample, error) {
	out, _, err := c.load(append([]string{filepath.Join(c.binDir, "loadgen")}, loadgenArgs(sc, addr, d)...)...)
	if err != nil {
		return sample{}, err
	}
	var r loadgenResult
	if err := json.Unmarshal(out, &r); err != nil {
		return sample{}, fmt.Errorf("loadgen output %q: %v", out, err)
	}
	smp := sample{rps: r.RPS, p50: r.P50, p99: r.P99, p999: r.P999, requests: r.Requests, errors: r.Errors,
		loadCPU: r.CPUs / max(r.Seconds, 1e-9)}
	if r.FirstErr != "" {
		smp.err = "loadgen: " + r.FirstErr
	}
	return smp, nil
}

// wrkScript prints the summary wrk's --latency lacks (p99.9).
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.status + e.timeout))
end
`

func (c *config) wrk(addr string, sc scenario) (sample, error) {
	script := filepath.Join(c.binDir, "summary.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return sample{}, err
	}
	secs := max(1, int(math.Round(c.dur.Seconds())))
	argv := []string{"wrk", "-t1", "-c" + strconv.Itoa(sc.conns), "-d" + strconv.Itoa(secs) + "s", "-s", script}
	if sc.close {
		argv = append(argv, "-H", "Connection: close")
	}
	out, loadCPU, err := c.load(append(argv, "http://"+addr+"/")...)
	if err != nil {
		return sample{}, err
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f, ok := strings.CutPrefix(l, "RESULT "); ok {
			var reqs, durUs, p50, p99, p999, errs float64
			if _, err := fmt.Sscan(f, &reqs, &durUs, &p50, &p99, &p999, &errs); err != nil {
				return sample{}, err
			}
			smp := sample{rps: reqs / (durUs / 1e6), requests: reqs, p50: p50, p99: p99, p999: p999, errors: errs, loadCPU: loadCPU}
			if errs > 0 {
				smp.err = fmt.Sprintf("wrk: %.0f errors", errs)
			}
			return smp, nil
		}
	}
	return sample{}, fmt.Errorf("wrk: no summary in %q", out)
}

// redisBenchmark runs -t ping,set,get: four tests (PING_INLINE, PING_MBULK,
// SET, GET). req/s is the total over the total time; latencies are the
// worst test's.
func (c *config) redisBenchmark(addr string, sc scenario) (sample, error) {
	host, port, _ := strings.Cut(addr, ":")
	n := c.redisN1
	if sc.pipe > 1 {
		n = c.redisN16
	}
	out, loadCPU, err := c.load("redis-benchmark", "-h", host, "-p", port, "-t", "ping,set,get",
		"-P", strconv.Itoa(sc.pipe), "-c", strconv.Itoa(sc.conns), "-n", strconv.Itoa(n), "--csv")
	if err != nil {
		return sample{}, err
	}
	recs, err := csv.NewReader(bufio.NewReader(bytes.NewReader(out))).ReadAll()
	if err != nil || len(recs) < 2 {
		return sample{}, fmt.Errorf("redis-benchmark output %q: %v", out, err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	smp := sample{loadCPU: loadCPU}
	var secs float64
	for _, rec := range recs[1:] {
		rps, _ := strconv.ParseFloat(rec[col["rps"]], 64)
		p50, _ := strconv.ParseFloat(rec[col["p50_latency_ms"]], 64)
		p99, _ := strconv.ParseFloat(rec[col["p99_latency_ms"]], 64)
		if rps <= 0 {
			return sample{}, fmt.Errorf("redis-benchmark: %v", rec)
		}
		secs += float64(n) / rps
		smp.requests += float64(n)
		if math.IsNaN(smp.p50) || p50*1e3 > smp.p50 {
			smp.p50 = p50 * 1e3
		}
		if math.IsNaN(smp.p99) || p99*1e3 > smp.p99 {
			smp.p99 = p99 * 1e3
		}
	}
	smp.rps = smp.requests / secs
	smp.p999 = math.NaN()
	return smp, nil
}

// idle opens c.idleConns connections (c.tlsIdleConns over TLS), each with
// one echo round trip, and measures the server's RSS growth.
func (c *config) idle(srv *running, sc scenario) sample {
	n := c.idleConns
	if sc.tls {
		n = c.tlsIdleConns
	}
	smp := sample{p50: math.NaN(), p99: math.NaN(), p999: math.NaN()}
	time.Sleep(200 * time.Millisecond)
	rss0, err := rssKB(srv.pid)
	if err != nil {
		smp.err = err.Error()
		return smp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"-c", c.loadCPU, filepath.Join(c.binDir, "loadgen"),
		"-addr", srv.addr, "-idle", "-c", strconv.Itoa(n), "-s", "16", "-hold", "2s"}
	if sc.tls {
		args = append(args, "-tls")
	}
	cmd := exec.CommandContext(ctx, "taskset", args...)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		smp.err = err.Error()
		return smp
	}
	lines := bufio.NewScanner(stdout)
	ready := false
	for lines.Scan() {
		if lines.Text() == "READY" {
			ready = true
			break
		}
	}
	if ready {
		time.Sleep(500 * time.Millisecond)
		smp.rss1, err = rssKB(srv.pid)
	}
	for lines.Scan() {
	}
	werr := cmd.Wait()
	switch {
	case !ready:
		smp.err = fmt.Sprintf("loadgen -idle: %v: %s", werr, strings.TrimSpace(stderr.String()))
	case err != nil:
		smp.err = err.Error()
	default:
		smp.rss0 = rss0
		smp.kbc = (smp.rss1 - rss0) / float64(n)
	}
	return smp
}
