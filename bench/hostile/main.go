// Command hostile measures how the example servers (examples/httpd,
// examples/redis, examples/echo) behave under hostile clients, each server
// run as a child process so its memory and CPU can be read from /proc:
//
//	cd bench && go run ./hostile flood -server httpd     # pipelines 200 MB without reading
//	cd bench && go run ./hostile flood -server redis
//	cd bench && go run ./hostile flood -server echo
//	cd bench && go run ./hostile bigset                  # SET of 63 MiB: CPU, ours vs redis-server
//	cd bench && go run ./hostile slowloris -server httpd # normal client's p99, with and without 2,000 slowloris
//	cd bench && go run ./hostile slowloris -server redis
//
// flood: one client writes requests (GETs, RESP GETs, or raw bytes for echo)
// as fast as the server lets it and reads nothing until its writes stall
// for -stall or -bytes are written; then it reads every reply (checking
// each byte) while writing the rest. It prints the server's resident memory
// before, at the peak (VmHWM), and -settle after the client left, and
// repeats the flood -rounds times (memory should be reused).
//
// bigset: one client sends SET (or MSET of -keys keys) with a -size value in
// 1 MiB writes while another client PINGs once a millisecond; it prints the
// server's CPU time (utime+stime from /proc) for the command and the PING
// latencies, for examples/redis and redis-server when installed.
//
// slowloris: a normal client sends one request at a time for -duration and
// records its latencies, first alone, then beside -conns connections that
// each trickle one byte of an incomplete request every -trickle (and
// reconnect when the server closes them). It prints p50/p99/max of both
// phases and how many slowloris connections the server closed.
//
// The servers are built from the working tree (go build into a temporary
// directory). RINGMACHINE_BACKEND is passed through (-backend). Every
// loop is bounded in bytes, count and time.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hostile flood|bigset|slowloris [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "flood":
		err = flood(os.Args[2:])
	case "bigset":
		err = bigset(os.Args[2:])
	case "slowloris":
		err = slowloris(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

// child is a server process.
type child struct {
	cmd  *exec.Cmd
	addr string
}

var listening = regexp.MustCompile(`listening on (\S+)`)

// binFlag, when set, names a server binary to run instead of building one.
var binFlag string

// build compiles examples/name into dir (or returns -bin).
func build(dir, name string) (string, error) {
	if binFlag != "" {
		return binFlag, nil
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "github.com/ringmachine/ringmachine/examples/"+name)
	cmd.Stderr = os.Stderr
	return out, cmd.Run()
}

// startOurs runs an example binary and waits for its listening line.
func startOurs(bin, backend string, args ...string) (*child, error) {
	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "RINGMACHINE_BACKEND="+backend)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	m := listening.FindStringSubmatch(line)
	if err != nil || m == nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s: no listening line (%q, %v)", bin, line, err)
	}
	go io.Copy(io.Discard, out)
	return &child{cmd: cmd, addr: m[1]}, nil
}

// startRedisServer runs redis-server on a free port, without persistence.
func startRedisServer() (*child, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return &child{cmd: cmd, addr: addr}, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, errors.New("redis-server did not start")
}

func (c *child) stop() {
	c.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// status reads a "VmRSS:"-style field of /proc/PID/status in bytes.
func (c *child) status(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			f := strings.Fields(l)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v << 10
		}
	}
	return -1
}

// cpu reads the process's user+system CPU time.
func (c *child) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// proto is what flood sends and expects back.
type proto struct {
	setup      []byte // sent and answered first (answer: setupReply)
	setupReply []byte
	req        []byte                        // one request; the flood repeats it
	reply      func(buf []byte) (int, error) // length of the reply at buf's start (0: incomplete)
	echo       bool                          // the reply stream is the request stream
}

var httpReply = regexp.MustCompile(`^HTTP/1\.1 200 OK\r\nServer: RingMachine\r\nDate: [A-Za-z0-9 ,:]{29}\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!`)

const httpReplyLen = len("HTTP/1.1 200 OK\r\nServer: RingMachine\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!")

func protoFor(name string) proto {
	switch name {
	case "httpd":
		return proto{
			req: []byte("GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: flood\r\nAccept: */*\r\n\r\n"),
			reply: func(b []byte) (int, error) {
				if len(b) < httpReplyLen {
					return 0, nil
				}
				if !httpReply.Match(b[:httpReplyLen]) {
					return 0, fmt.Errorf("bad reply %q", b[:httpReplyLen])
				}
				return httpReplyLen, nil
			},
		}
	case "redis":
		val := bytes.Repeat([]byte("v"), 100)
		want := []byte("$100\r\n" + string(val) + "\r\n")
		return proto{
			setup:      []byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\n" + string(val) + "\r\n"),
			setupReply: []byte("+OK\r\n"),
			req:        []byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
			reply: func(b []byte) (int, error) {
				if len(b) < len(want) {
					return 0, nil
				}
				if !bytes.Equal(b[:len(want)], want) {
					return 0, fmt.Errorf("bad reply %q", b[:len(want)])
				}
				return len(want), nil
			},
		}
	}
	return proto{echo: true}
}

// pattern fills b with the bytes of the stream at offset off (echo's payload).
func pattern(b []byte, off int64) {
	for i := range b {
		x := uint64(off + int64(i))
		b[i] = byte(x ^ x>>8 ^ x>>16)
	}
}

func flood(args []string) error {
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	name := fs.String("server", "httpd", "httpd, redis or echo")
	backend := fs.String("backend", os.Getenv("RINGMACHINE_BACKEND"), "uring or epoll (default: the server's choice)")
	total := fs.Int64("bytes", 200e6, "request bytes to send")
	stall := fs.Duration("stall", 2*time.Second, "a write blocked this long means the server pushes back")
	limit := fs.Duration("timeout", 120*time.Second, "bound on one round")
	settle := fs.Duration("settle", 5*time.Second, "wait after the client left before reading RSS")
	rounds := fs.Int("rounds", 2, "floods, one after the other")
	extra := fs.String("args", "", "extra server flags (space-separated)")
	fs.StringVar(&binFlag, "bin", "", "server binary to run (default: build it from this tree)")
	fs.Parse(args)
	dir, err := os.MkdirTemp("", "hostile")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := build(dir, *name)
	if err != nil {
		return err
	}
	srv, err := startOurs(bin, *backend, strings.Fields(*extra)...)
	if err != nil {
		return err
	}
	defer srv.stop()
	p := protoFor(*name)
	time.Sleep(300 * time.Millisecond)
	base := srv.status("VmRSS")
	fmt.Printf("flood %s (%s): %s of requests per round; RSS at start %s\n", *name, *backend, mb(*total), mb(base))
	for r := 1; r <= *rounds; r++ {
		res, err := floodOnce(srv, p, *total, *stall, *limit)
		if err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		hwm := srv.status("VmHWM")
		time.Sleep(*settle)
		after := srv.status("VmRSS")
		pushed := "never stalled: the server read everything"
		if res.stalled {
			pushed = fmt.Sprintf("stalled after %s: the server pushed back", mb(res.beforeStall))
		}
		fmt.Printf("round %d: %s; all %d replies checked in %v; peak RSS %s (growth %s), RSS %v after leaving %s\n",
			r, pushed, res.replies, res.took.Round(time.Millisecond), mb(hwm), mb(hwm-base), *settle, mb(after))
	}
	return nil
}

type floodResult struct {
	beforeStall int64
	stalled     bool
	replies     int64
	took        time.Duration
}

func floodOnce(srv *child, p proto, total int64, stall, limit time.Duration) (floodResult, error) {
	var res floodResult
	start := time.Now()
	deadline := start.Add(limit)
	c, err := net.Dial("tcp", srv.addr)
	if err != nil {
		return res, err
	}
	defer c.Close()
	c.SetReadDeadline(deadline)
	if p.setup != nil {
		c.Write(p.setup)
		got := make([]byte, len(p.setupReply))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, p.setupReply) {
			return res, fmt.Errorf("setup: %q %v", got, err)
		}
	}
	// The requests, in 64 KiB writes of whole requests (echo: the pattern).
	chunk := make([]byte, 0, 64<<10)
	if !p.echo {
		for len(chunk)+len(p.req) <= cap(chunk) {
			chunk = append(chunk, p.req...)
		}
	} else {
		chunk = chunk[:cap(chunk)]
	}
	nreq := int64(0)
	if !p.echo {
		nreq = (total / int64(len(chunk))) * int64(len(chunk)/len(p.req))
		total = (total / int64(len(chunk))) * int64(len(chunk))
	}
	var written atomic.Int64
	write := func(first bool) error {
		for written.Load() < total {
			if time.Now().After(deadline) {
				return errors.New("time bound hit while writing")
			}
			w := chunk[:min(int64(len(chunk)), total-written.Load())]
			if p.echo {
				pattern(w, written.Load())
			}
			if first {
				c.SetWriteDeadline(time.Now().Add(stall))
			} else {
				c.SetWriteDeadline(deadline)
			}
			n, err := c.Write(w)
			written.Add(int64(n))
			if err != nil {
				if first && errors.Is(err, os.ErrDeadlineExceeded) {
					// The server pushes back. A request cut in the middle
					// is finished by the second phase, which resumes at
					// the offset written.
					res.stalled = true
					return nil
				}
				return err
			}
		}
		return nil
	}
	if err := write(true); err != nil {
		return res, err
	}
	res.beforeStall = written.Load()
	// Second phase: read everything, write the rest.
	werr := make(chan error, 1)
	go func() {
		// After a timeout, part of the chunk may have been written: the
		// next write resumes at the offset, so the stream stays whole.
		for written.Load() < total {
			off := written.Load() % int64(len(chunk))
			w := chunk[off:min(int64(len(chunk)), off+total-written.Load())]
			if p.echo {
				pattern(w, written.Load())
			}
			c.SetWriteDeadline(deadline)
			n, err := c.Write(w)
			written.Add(int64(n))
			if err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	buf := make([]byte, 0, 1<<20)
	var got int64
	want := total
	if !p.echo {
		want = nreq
	}
	cmp := make([]byte, 1<<20)
	for got < want {
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if p.echo {
			pattern(cmp[:n], got)
			if !bytes.Equal(cmp[:n], buf) {
				return res, fmt.Errorf("echo differs at offset %d", got)
			}
			got += int64(n)
			buf = buf[:0]
		} else {
			i := 0
			for {
				k, perr := p.reply(buf[i:])
				if perr != nil {
					return res, fmt.Errorf("reply %d: %w", got, perr)
				}
				if k == 0 {
					break
				}
				i += k
				got++
			}
			buf = buf[:copy(buf, buf[i:])]
		}
		if err != nil {
			return res, fmt.Errorf("after %d of %d replies: %w", got, want, err)
		}
	}
	if err := <-werr; err != nil {
		return res, err
	}
	res.replies = got
	res.took = time.Since(start)
	return res, nil
}

func bigset(args []string) error {
	fs := flag.NewFlagSet("bigset", flag.ExitOnError)
	backend := fs.String("backend", os.Getenv("RINGMACHINE_BACKEND"), "uring or epoll (default: the server's choice)")
	size := fs.Int("size", 63<<20, "value size in bytes")
	keys := fs.Int("keys", 1, "1: SET; more: MSET of that many keys")
	peer := fs.Bool("peer", true, "also measure redis-server when installed")
	extra := fs.String("args", "", "extra server flags (space-separated)")
	fs.StringVar(&binFlag, "bin", "", "server binary to run (default: build it from this tree)")
	fs.Parse(args)
	dir, err := os.MkdirTemp("", "hostile")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := build(dir, "redis")
	if err != nil {
		return err
	}
	run := func(label string, srv *child) error {
		defer srv.stop()
		time.Sleep(200 * time.Millisecond)
		cpu, lat, err := bigsetOnce(srv, *size, *keys)
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		fmt.Printf("%-13s %d × %d B: server CPU %v; PING during it: n=%d p50 %v p99 %v max %v\n",
			label, *keys, *size, cpu, len(lat), pct(lat, 50), pct(lat, 99), pct(lat, 100))
		return nil
	}
	srv, err := startOurs(bin, *backend, strings.Fields(*extra)...)
	if err != nil {
		return err
	}
	if err := run("examples/redis", srv); err != nil {
		return err
	}
	if _, err := exec.LookPath("redis-server"); *peer && err == nil {
		srv, err := startRedisServer()
		if err != nil {
			return err
		}
		return run("redis-server", srv)
	}
	return nil
}

func pct(l []time.Duration, p int) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))].Round(time.Microsecond)
}

// pinger PINGs addr once a millisecond until stop, recording latencies.
func pinger(addr string, stop <-chan struct{}, out chan<- []time.Duration) {
	var lat []time.Duration
	defer func() { out <- lat }()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	buf := make([]byte, 7)
	for i := 0; i < 1e6; i++ {
		select {
		case <-stop:
			return
		default:
		}
		t := time.Now()
		c.SetDeadline(t.Add(60 * time.Second))
		if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
			return
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "+PONG\r\n" {
			return
		}
		lat = append(lat, time.Since(t))
		time.Sleep(time.Millisecond)
	}
}

func bigsetOnce(srv *child, size, keys int) (time.Duration, []time.Duration, error) {
	c, err := net.Dial("tcp", srv.addr)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(300 * time.Second))
	stop := make(chan struct{})
	lats := make(chan []time.Duration, 1)
	go pinger(srv.addr, stop, lats)
	time.Sleep(100 * time.Millisecond)
	before := srv.cpu()
	var hdr []byte
	if keys == 1 {
		hdr = []byte("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n")
	} else {
		hdr = fmt.Appendf(nil, "*%d\r\n$4\r\nMSET\r\n", 1+2*keys)
	}
	val := bytes.Repeat([]byte("x"), 1<<20)
	w := bufio.NewWriterSize(c, 1<<20)
	w.Write(hdr)
	for k := 0; k < keys; k++ {
		if keys > 1 {
			fmt.Fprintf(w, "$4\r\nbig%d\r\n", k)
		}
		fmt.Fprintf(w, "$%d\r\n", size)
		for left := size; left > 0; left -= len(val) {
			if _, err := w.Write(val[:min(left, len(val))]); err != nil {
				return 0, nil, err
			}
		}
		w.WriteString("\r\n")
	}
	if err := w.Flush(); err != nil {
		return 0, nil, err
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "+OK\r\n" {
		return 0, nil, fmt.Errorf("reply %q %v", got, err)
	}
	cpu := srv.cpu() - before
	close(stop)
	return cpu, <-lats, nil
}

func slowloris(args []string) error {
	fs := flag.NewFlagSet("slowloris", flag.ExitOnError)
	name := fs.String("server", "httpd", "httpd or redis")
	backend := fs.String("backend", os.Getenv("RINGMACHINE_BACKEND"), "uring or epoll (default: the server's choice)")
	conns := fs.Int("conns", 2000, "slowloris connections")
	trickle := fs.Duration("trickle", time.Second, "one byte per connection this often")
	dur := fs.Duration("duration", 10*time.Second, "length of each phase")
	extra := fs.String("args", "", "extra server flags (space-separated)")
	fs.StringVar(&binFlag, "bin", "", "server binary to run (default: build it from this tree)")
	fs.Parse(args)
	dir, err := os.MkdirTemp("", "hostile")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := build(dir, *name)
	if err != nil {
		return err
	}
	srv, err := startOurs(bin, *backend, strings.Fields(*extra)...)
	if err != nil {
		return err
	}
	defer srv.stop()
	var req, partial []byte
	var replyLen int
	if *name == "httpd" {
		req = []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		partial = []byte("GET / HTTP/1.1\r\nHost: localhost\r\n")
		replyLen = httpReplyLen
	} else {
		req = []byte("*1\r\n$4\r\nPING\r\n")
		partial = []byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n")
		replyLen = 7
	}
	normal := func() ([]time.Duration, error) {
		c, err := net.Dial("tcp", srv.addr)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		buf := make([]byte, replyLen)
		var lat []time.Duration
		end := time.Now().Add(*dur)
		for i := 0; i < 1e7 && time.Now().Before(end); i++ {
			t := time.Now()
			c.SetDeadline(t.Add(30 * time.Second))
			if _, err := c.Write(req); err != nil {
				return lat, err
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				return lat, err
			}
			lat = append(lat, time.Since(t))
		}
		return lat, nil
	}
	time.Sleep(200 * time.Millisecond)
	alone, err := normal()
	if err != nil {
		return fmt.Errorf("alone: %w", err)
	}
	fmt.Printf("slowloris %s (%s): normal client alone:       n=%d p50 %v p99 %v max %v\n",
		*name, *backend, len(alone), pct(alone, 50), pct(alone, 99), pct(alone, 100))

	var closed, opened atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	ready := make(chan struct{}, *conns)
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for k := 0; k < 1000; k++ { // reconnects, bounded
				c, err := net.Dial("tcp", srv.addr)
				if err != nil {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				opened.Add(1)
				if first {
					first = false
					ready <- struct{}{}
				}
				dead := make(chan struct{})
				go func() { io.Copy(io.Discard, c); close(dead) }()
				c.Write(partial)
				t := time.NewTicker(*trickle)
				alive := true
				for alive {
					select {
					case <-stop:
						t.Stop()
						c.Close()
						<-dead
						return
					case <-dead:
						closed.Add(1)
						alive = false
					case <-t.C:
						c.SetWriteDeadline(time.Now().Add(time.Second))
						c.Write([]byte("a"))
					}
				}
				t.Stop()
				c.Close()
			}
		}()
	}
	for i := 0; i < *conns; i++ {
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			close(stop)
			wg.Wait()
			return fmt.Errorf("only %d slowloris connections up", i)
		}
	}
	time.Sleep(*trickle)
	beside, err := normal()
	close(stop)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("beside slowloris: %w", err)
	}
	fmt.Printf("slowloris %s (%s): beside %d slowloris conns: n=%d p50 %v p99 %v max %v (server closed %d of %d slowloris connections)\n",
		*name, *backend, *conns, len(beside), pct(beside, 50), pct(beside, 99), pct(beside, 100), closed.Load(), opened.Load())
	return nil
}
