// Command loadgen is an echo ping-pong load generator: N connections to a
// loopback echo server, each keeping P messages of S bytes in flight for a
// duration D, checking every echoed byte. It prints one JSON line: requests,
// req/s, p50/p99/p99.9 latency (µs), errors, and its own CPU time.
//
//	loadgen -addr 127.0.0.1:10000 -c 64 -s 64 -p 16 -d 5s
//	loadgen -addr 127.0.0.1:10000 -c 10000 -idle -hold 3s   # idle connections
//	loadgen -addr 127.0.0.1:10000 -tls -c 4 -s 65536 -d 5s  # echo over TLS
//	loadgen -addr 127.0.0.1:10000 -tls -handshake -c 32     # a handshake per request
//
// The default engine (-mode epoll) is one OS thread driving nonblocking
// sockets with level-triggered epoll: one read and one write per ready
// connection per wake-up, one clock read per wake-up, a fixed-bucket
// histogram, no allocation per request. -mode goroutines is the blocking
// goroutine-per-connection alternative (P messages written, then read back,
// in lock step), kept to compare their cost.
//
// -tls speaks TLS 1.3 (crypto/tls, so the goroutines engine): the server's
// certificate is checked against the PEM file of -ca, or not at all
// without it. Connections complete their handshake before the load starts,
// so the figures are of the TLS echo alone. -handshake instead opens a new
// connection for every request and closes it after the echo: with -tls,
// a full handshake each (no session resumption), a request's latency
// counting the connect, the handshake and the echo.
//
// Each connection's byte stream is a window into one random pattern (offset
// by a per-connection seed), so checking a read is a memcmp against the
// pattern. The first mismatching connection is reported and closed.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/ringmachine/ringmachine/bench/internal/hist"
)

func main() {
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// Config is one load run.
type Config struct {
	Addr      string
	Conns     int
	Size      int // payload bytes per message
	Pipeline  int // messages in flight per connection
	Duration  time.Duration
	Warmup    time.Duration // completions before this are not counted
	Drain     time.Duration // at most this long to collect in-flight replies
	Mode      string        // "epoll" or "goroutines"; "": epoll, or goroutines with TLS or Handshake
	Idle      bool          // connect, one round trip each, print READY, hold
	Hold      time.Duration
	TLS       bool   // TLS 1.3 over every connection
	CA        string // PEM file of the roots to check the server with ("": no check)
	Handshake bool   // a new connection (with TLS, a full handshake) per request

	tlsConf *tls.Config
}

// Result is what one run measured.
type Result struct {
	Requests  uint64  `json:"requests"`
	Seconds   float64 `json:"seconds"`
	RPS       float64 `json:"rps"`
	P50us     float64 `json:"p50_us"`
	P99us     float64 `json:"p99_us"`
	P999us    float64 `json:"p999_us"`
	MaxUs     float64 `json:"max_us"`
	Errors    uint64  `json:"errors"` // byte mismatches, resets, EOFs, short drains
	FirstErr  string  `json:"first_error,omitempty"`
	Checked   uint64  `json:"bytes_checked"`
	Conns     int     `json:"conns"`
	CPUs      float64 `json:"loadgen_cpu_s"`
	CPUperMrq float64 `json:"loadgen_cpu_s_per_mreq"`
}

func run(stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var c Config
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:10000", "echo server `host:port` (loopback only)")
	fs.IntVar(&c.Conns, "c", 64, "connections")
	fs.IntVar(&c.Size, "s", 64, "payload bytes per message")
	fs.IntVar(&c.Pipeline, "p", 1, "messages in flight per connection")
	fs.DurationVar(&c.Duration, "d", 5*time.Second, "measured duration (at most 10m)")
	fs.DurationVar(&c.Warmup, "warmup", 0, "load before measuring")
	fs.DurationVar(&c.Drain, "drain", 2*time.Second, "wait at most this long for in-flight replies")
	fs.StringVar(&c.Mode, "mode", "", "engine: epoll or goroutines (default epoll; goroutines with -tls or -handshake, which need it)")
	fs.BoolVar(&c.Idle, "idle", false, "open -c connections, one round trip each, print READY, hold -hold")
	fs.DurationVar(&c.Hold, "hold", 3*time.Second, "with -idle: keep connections open this long (at most 10m)")
	fs.BoolVar(&c.TLS, "tls", false, "speak TLS 1.3 (the server's certificate unchecked unless -ca)")
	fs.StringVar(&c.CA, "ca", "", "with -tls: check the server's certificate against the PEM `file` of roots")
	fs.BoolVar(&c.Handshake, "handshake", false, "a new connection per request, closed after its echo (with -tls: a full handshake each)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := Run(c, stdout)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(r)
}

// Run validates c and runs it. With c.Idle, "READY\n" goes to ready once
// every connection has made its round trip.
func Run(c Config, ready io.Writer) (*Result, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	var r *Result
	var err error
	switch c.Mode {
	case "epoll":
		r, err = runEpoll(&c, ready)
	case "goroutines":
		r, err = runGoroutines(&c, ready)
	}
	if err != nil {
		return nil, err
	}
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	r.CPUs = tvSec(ru1.Utime) + tvSec(ru1.Stime) - tvSec(ru0.Utime) - tvSec(ru0.Stime)
	if r.Requests > 0 {
		r.CPUperMrq = r.CPUs / (float64(r.Requests) / 1e6)
	}
	return r, nil
}

func tvSec(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func (c *Config) validate() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-addr %s: loopback addresses only", c.Addr)
	}
	switch {
	case c.Conns < 1 || c.Conns > 20000:
		return errors.New("-c: 1..20000 connections")
	case c.Size < 1 || c.Size > 1<<20:
		return errors.New("-s: 1 B..1 MiB")
	case c.Pipeline < 1 || c.Pipeline > 1024:
		return errors.New("-p: 1..1024")
	case c.Duration <= 0 || c.Duration > 10*time.Minute, c.Warmup < 0 || c.Warmup > time.Minute:
		return errors.New("-d: up to 10m, -warmup: up to 1m")
	case c.Hold < 0 || c.Hold > 10*time.Minute, c.Drain < 0 || c.Drain > time.Minute:
		return errors.New("-hold: up to 10m, -drain: up to 1m")
	case c.Mode != "" && c.Mode != "epoll" && c.Mode != "goroutines":
		return fmt.Errorf("-mode %q: epoll or goroutines", c.Mode)
	case (c.TLS || c.Handshake) && c.Mode == "epoll":
		return errors.New("-tls and -handshake need -mode goroutines")
	case c.Handshake && c.Idle:
		return errors.New("-handshake and -idle exclude each other")
	case c.CA != "" && !c.TLS:
		return errors.New("-ca goes with -tls")
	}
	if c.Mode == "" {
		c.Mode = "epoll"
		if c.TLS || c.Handshake {
			c.Mode = "goroutines"
		}
	}
	if c.TLS {
		// No ClientSessionCache: every connection makes a full handshake.
		c.tlsConf = &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: c.CA == ""}
		if c.CA != "" {
			b, err := os.ReadFile(c.CA)
			if err != nil {
				return fmt.Errorf("-ca: %w", err)
			}
			c.tlsConf.RootCAs = x509.NewCertPool()
			if !c.tlsConf.RootCAs.AppendCertsFromPEM(b) {
				return fmt.Errorf("-ca %s: no PEM certificate", c.CA)
			}
		}
	}
	return nil
}

// The pattern: patLen random bytes, then a copy of the first maxChunk of
// them, so pattern(off, n) for n <= maxChunk is one contiguous slice.
const (
	patLen   = 1 << 16
	maxChunk = 64 << 10
)

var pattern = func() []byte {
	p := make([]byte, patLen+maxChunk)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range patLen {
		p[i] = byte(rng.Uint32())
	}
	copy(p[patLen:], p[:maxChunk])
	return p
}()

// window is the expected bytes at stream offset off (n <= maxChunk) of the
// connection with seed seed.
func window(seed, off uint64, n int) []byte {
	s := (seed + off) & (patLen - 1)
	return pattern[s : s+uint64(n)]
}

// firstDiff is the index of the first differing byte of a and b.
func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

func mismatchErr(conn int, off uint64, got, want byte) string {
	return "conn " + strconv.Itoa(conn) + ": byte " + strconv.FormatUint(off, 10) +
		": got " + strconv.Itoa(int(got)) + ", want " + strconv.Itoa(int(want))
}

func result(h *hist.Hist, reqs uint64, d time.Duration, checked uint64, errs uint64, first string, conns int) *Result {
	us := func(ns uint64) float64 { return float64(ns) / 1e3 }
	return &Result{
		Requests: reqs, Seconds: d.Seconds(), RPS: float64(reqs) / d.Seconds(),
		P50us: us(h.Quantile(0.5)), P99us: us(h.Quantile(0.99)), P999us: us(h.Quantile(0.999)),
		MaxUs: us(h.Max()), Errors: errs, FirstErr: first, Checked: checked, Conns: conns,
	}
}
