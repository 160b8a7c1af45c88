// Command run is the side-by-side benchmark: every scenario against every
// server, one after another on this machine, the server pinned to one CPU
// and the load tool to another (taskset), several interleaved rounds, and a
// Markdown table of the medians.
//
//	cd bench && go run ./run -quick            # about 3 minutes
//	cd bench && go run ./run                   # 5 rounds of 3 s
//	cd bench && go run ./run -quick -capped    # server alone in a cgroup at 30 % of a CPU
//	cd bench && go run ./run -quick -only tls  # the TLS scenarios alone, under a minute
//	cd bench && go run ./run -quick -only proxy  # the proxy scenario alone, about 20 s
//
// Servers: RingMachine's examples/echo, httpd and redis with
// RINGMACHINE_BACKEND=uring and =epoll, the bench module's peer (Go net,
// gnet v2), Ruby EventMachine's echo and the real redis-server when
// installed. Scenarios: echo ping-pong with loadgen (64 conns x 64 B,
// the same pipelined 16 deep, 1000 conns x 512 B), wrk on the HTTP
// servers (64 and 256 connections, and 64 with "Connection: close": a new
// connection per request), redis-benchmark -t ping,set,get with
// -P 1 and -P 16, idle memory with 10k connections, the echo over
// TLS against Go net + crypto/tls (full TLS 1.3 handshakes per second,
// 64 KiB messages, memory per idle TLS connection; "-only tls"), and
// 64 KiB echoes through a forwarding proxy: examples/proxy splicing and
// copying, on both engines, against Go net + io.Copy, to an echo backend
// that runs next to the load tool ("-only proxy").
//
// Server CPU is utime+stime from /proc/PID/stat around the measured load;
// memory is VmRSS from /proc/PID/status. Everything is bounded: each load
// run has a duration or request count and a timeout, servers are killed
// if they do not stop.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ringmachine/ringmachine/bench/internal/selfsigned"
)

type config struct {
	quick        bool
	capped       bool
	quota        int // percent of one CPU in capped mode
	rounds       int
	dur          time.Duration
	warmup       time.Duration
	idleConns    int
	tlsIdleConns int    // connections for the TLS idle-memory scenario
	tlsCert      string // the servers' certificate and key for the tls scenarios
	tlsKey       string
	proxyTo      string   // the address of the proxy scenario's echo backend
	backend      *running // that backend, on the load CPU
	only         *regexp.Regexp
	servers      *regexp.Regexp
	serverCPU    string
	loadCPU      string
	binDir       string
	rootDir      string
	benchDir     string
	verbose      bool
	noBuild      bool
	cEcho        string // source of a C liburing echo server to measure against
	chart        string // where to write the SVG chart of the standings
	redisN1      int    // redis-benchmark -n with -P 1, per test
	redisN16     int
	timeoutPer   time.Duration
}

func main() {
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(1)
	}
}

func run(stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c config
	var only, servers string
	fs.BoolVar(&c.quick, "quick", false, "3 rounds of 0.8 s, 1 idle round (about 3 minutes)")
	fs.BoolVar(&c.capped, "capped", false, "put the server alone in a cgroup with -quota % of one CPU")
	fs.IntVar(&c.quota, "quota", 30, "CPU quota in `percent` of one CPU with -capped")
	fs.IntVar(&c.rounds, "rounds", 0, "interleaved rounds (default 5, 3 with -quick)")
	fs.DurationVar(&c.dur, "d", 0, "duration of each load run (default 3s, 800ms with -quick)")
	fs.IntVar(&c.idleConns, "idle-conns", 10000, "connections for the idle-memory scenario")
	fs.IntVar(&c.tlsIdleConns, "tls-idle-conns", 2000, "connections for the TLS idle-memory scenario")
	fs.StringVar(&only, "only", "", "run only scenarios matching this `regexp`")
	fs.StringVar(&servers, "servers", "", "run only servers matching this `regexp`")
	fs.StringVar(&c.serverCPU, "server-cpu", "0", "taskset CPU list for servers")
	fs.StringVar(&c.loadCPU, "load-cpu", "1", "taskset CPU list for the load tools")
	fs.StringVar(&c.binDir, "bin", "", "where to build the binaries (default bench/bin)")
	fs.BoolVar(&c.noBuild, "no-build", false, "use the binaries already in -bin")
	fs.BoolVar(&c.verbose, "v", false, "log every measurement to stderr")
	fs.StringVar(&c.chart, "chart", "", "write the SVG chart of the standings to this `file` (default bench/standings.svg; \"-\" for none)")
	fs.StringVar(&c.cEcho, "c-echo", os.Getenv("LIBURING_ECHO"),
		"C `source` of a liburing echo server taking -addr host:port, built with cc -O2 and -luring "+
			"and measured as the peer \"c-liburing\" (default $LIBURING_ECHO; skipped when empty)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.rounds == 0 {
		c.rounds = map[bool]int{true: 3, false: 5}[c.quick]
	}
	if c.dur == 0 {
		c.dur = map[bool]time.Duration{true: 800 * time.Millisecond, false: 3 * time.Second}[c.quick]
	}
	if c.rounds < 1 || c.rounds > 20 || c.dur <= 0 || c.dur > time.Minute {
		return errors.New("-rounds 1..20, -d up to 1m")
	}
	if c.quota < 1 || c.quota > 100 {
		return errors.New("-quota: 1..100 percent")
	}
	if c.idleConns < 1 || c.idleConns > 20000 || c.tlsIdleConns < 1 || c.tlsIdleConns > 20000 {
		return errors.New("-idle-conns, -tls-idle-conns: 1..20000 (loadgen's limit)")
	}
	c.warmup = c.dur / 4
	// redis-benchmark runs a request count, not a duration: size it so a
	// test takes about -d/4 (4 tests: PING_INLINE, PING_MBULK, SET, GET).
	scale := c.dur.Seconds() / 4
	if c.capped {
		scale *= float64(c.quota) / 100
	}
	c.redisN1 = max(2000, int(150e3*scale))
	c.redisN16 = max(10000, int(1200e3*scale))
	c.timeoutPer = 4*c.dur + 30*time.Second
	var err error
	if c.only, err = regexp.Compile(only); err != nil {
		return err
	}
	if c.servers, err = regexp.Compile(servers); err != nil {
		return err
	}
	if err := c.findDirs(); err != nil {
		return err
	}
	if err := raiseNoFile(); err != nil {
		return err
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return errors.New("taskset not found (util-linux)")
	}
	var cg *cgroup
	if c.capped {
		if cg, err = newCgroup(c.quota); err != nil {
			return fmt.Errorf("-capped: %w", err)
		}
		defer cg.remove()
	}
	if c.selected("tls") {
		dir, err := os.MkdirTemp("", "ringbench-tls")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if c.tlsCert, c.tlsKey, err = selfsigned.Write(dir); err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
	}
	srvs, notes := c.servers2()
	if !c.noBuild {
		if err := c.build(); err != nil {
			return err
		}
	}
	if c.selected("proxy") && slices.ContainsFunc(srvs, func(s server) bool { return s.proto == "proxy" }) {
		// One echo backend for the whole run, next to the load tool and
		// outside any cap: the measured process is the proxy alone.
		be, err := c.startOn(c.loadCPU, c.proxyBackend(), nil)
		if err != nil {
			return fmt.Errorf("proxy backend: %w", err)
		}
		defer be.stop()
		c.backend, c.proxyTo = be, be.addr
		notes = append(notes, fmt.Sprintf("proxy backend: RingMachine's examples/echo (RINGMACHINE_BACKEND=uring, -loops 1) "+
			"pinned to CPU %s with the load tool, not capped, one for the whole run; the load CPU column of the proxy "+
			"scenario counts its CPU with the load tool's.", c.loadCPU))
	}
	start := time.Now()
	res := c.measureAll(srvs, cg)
	mode := fmt.Sprintf("server pinned to CPU %s, load on CPU %s, no CPU cap", c.serverCPU, c.loadCPU)
	if c.capped {
		mode = fmt.Sprintf("server pinned to CPU %s and capped at %d %% of it (cgroup %s), load on CPU %s",
			c.serverCPU, c.quota, cg.version, c.loadCPU)
	}
	host, _ := os.Hostname()
	fmt.Fprintf(stdout, "## RingMachine benchmark %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(stdout, "Command: `go run ./run %s` on %s (%s, %d CPUs, %s); %s; %d rounds of %s, medians; took %s.\n\n",
		strings.Join(args, " "), host, cpuModel(), numCPU(), kernel(), mode, c.rounds, c.dur, time.Since(start).Round(time.Second))
	for _, n := range notes {
		fmt.Fprintf(stdout, "Note: %s\n\n", n)
	}
	fmt.Fprint(stdout, formatReport(res))
	if c.chart != "-" {
		if c.chart == "" {
			c.chart = filepath.Join(c.benchDir, "standings.svg")
		}
		short := "uncapped"
		if c.capped {
			short = fmt.Sprintf("server capped at %d %% of one CPU", c.quota)
		}
		title := fmt.Sprintf("RingMachine vs the best peer, %s, %s, %d rounds", time.Now().UTC().Format("2006-01-02"), short, c.rounds)
		if err := os.WriteFile(c.chart, []byte(chartSVG(title, standings(res))), 0o644); err != nil {
			return fmt.Errorf("-chart: %w", err)
		}
		fmt.Fprintf(os.Stderr, "run: chart written to %s\n", c.chart)
		fmt.Fprintf(stdout, "\nChart: %s\n", c.chart)
	}
	return nil
}

// selected reports whether -only selects a scenario of proto.
func (c *config) selected(proto string) bool {
	for _, sc := range scenarios {
		if sc.proto == proto && c.only.MatchString(sc.name) {
			return true
		}
	}
	return false
}

func (c *config) findDirs() error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if filepath.Base(filepath.Dir(gomod)) != "bench" {
		return fmt.Errorf("run from the bench module (cd bench), not %s", gomod)
	}
	c.benchDir = filepath.Dir(gomod)
	c.rootDir = filepath.Dir(c.benchDir)
	if c.binDir == "" {
		c.binDir = filepath.Join(c.benchDir, "bin")
	}
	return nil
}

func raiseNoFile() error {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return err
	}
	r.Cur = r.Max
	// Setting it explicitly makes the children inherit it (os/exec would
	// otherwise restore the original soft limit).
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
}

func (c *config) build() error {
	type target struct{ dir, pkg, out string }
	targets := []target{
		{c.rootDir, "./examples/echo", "rm-echo"},
		{c.rootDir, "./examples/httpd", "rm-httpd"},
		{c.rootDir, "./examples/redis", "rm-redis"},
		{c.rootDir, "./examples/proxy", "rm-proxy"},
		{c.benchDir, "./peer", "peer"},
		{c.benchDir, "./loadgen", "loadgen"},
	}
	for _, t := range targets {
		cmd := exec.Command("go", "build", "-o", filepath.Join(c.binDir, t.out), t.pkg)
		cmd.Dir = t.dir
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", t.pkg, err)
		}
	}
	return nil
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "\nprocessor") + map[bool]int{true: 1}[strings.HasPrefix(string(b), "processor")]
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(b))
}
