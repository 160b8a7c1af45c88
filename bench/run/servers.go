package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one server program for one protocol.
type server struct {
	name  string // column label, e.g. "ringmachine-uring", "gnet"
	proto string // echo, http, redis
	ours  bool
	argv  func(addr string) []string
	env   []string
}

var ourBins = map[string]string{"echo": "rm-echo", "http": "rm-httpd", "redis": "rm-redis", "proxy": "rm-proxy"}

// servers2 lists the servers of every protocol and notes what is missing.
func (c *config) servers2() ([]server, []string) {
	var out []server
	var notes []string
	add := func(s server) {
		if c.servers.MatchString(s.name) {
			out = append(out, s)
		}
	}
	for _, proto := range []string{"echo", "http", "redis"} {
		for _, be := range []string{"uring", "epoll"} {
			bin := filepath.Join(c.binDir, ourBins[proto])
			add(server{name: "ringmachine-" + be, proto: proto, ours: true,
				argv: func(a string) []string { return []string{bin, "-addr", a, "-loops", "1"} },
				env:  []string{"RINGMACHINE_BACKEND=" + be}})
		}
		if proto == "echo" {
			// The A/B of io_uring direct descriptors: the same on process
			// fds (URingOptions.ProcessFDs).
			bin := filepath.Join(c.binDir, ourBins[proto])
			add(server{name: "ringmachine-uring-processfds", proto: proto, ours: true,
				argv: func(a string) []string { return []string{bin, "-addr", a, "-loops", "1", "-process-fds"} },
				env:  []string{"RINGMACHINE_BACKEND=uring"}})
			// The A/B of a minimum wait per io_uring_enter (URingOptions.MinWait).
			add(server{name: "ringmachine-uring-minwait", proto: proto, ours: true,
				argv: func(a string) []string { return []string{bin, "-addr", a, "-loops", "1", "-min-wait", "50us"} },
				env:  []string{"RINGMACHINE_BACKEND=uring"}})
		}
		peer := filepath.Join(c.binDir, "peer")
		for _, impl := range []string{"gnet", "net"} {
			add(server{name: impl, proto: proto,
				argv: func(a string) []string { return []string{peer, "-impl", impl, "-proto", proto, "-addr", a} }})
		}
	}
	// The proxy: examples/proxy splicing (its default) and copying through
	// the handlers (-copy) on both engines, and Go net + io.Copy, each
	// forwarding to the backend of c.proxyTo (started by run, outside the
	// measured server).
	proxyBin := filepath.Join(c.binDir, ourBins["proxy"])
	for _, mode := range []string{"splice", "copy"} {
		for _, be := range []string{"uring", "epoll"} {
			add(server{name: "ringmachine-" + be + "-" + mode, proto: "proxy", ours: true,
				argv: func(a string) []string {
					argv := []string{proxyBin, "-addr", a, "-to", c.proxyTo}
					if mode == "copy" {
						argv = append(argv, "-copy")
					}
					return argv
				},
				env: []string{"RINGMACHINE_BACKEND=" + be}})
		}
	}
	// The A/B of splicing on io_uring's kernel workers (IORING_OP_SPLICE,
	// URingOptions.SpliceWorker) rather than on the loop's thread.
	add(server{name: "ringmachine-uring-splice-worker", proto: "proxy", ours: true,
		argv: func(a string) []string {
			return []string{proxyBin, "-addr", a, "-to", c.proxyTo, "-splice-worker"}
		},
		env: []string{"RINGMACHINE_BACKEND=uring"}})
	add(server{name: "net", proto: "proxy",
		argv: func(a string) []string {
			return []string{filepath.Join(c.binDir, "peer"), "-impl", "net", "-proto", "proxy", "-addr", a, "-to", c.proxyTo}
		}})
	// The echo over TLS: RingMachine's examples/echo and Go net with the
	// certificate of c.tlsCert; gnet has no TLS.
	if c.tlsCert != "" {
		bin := filepath.Join(c.binDir, ourBins["echo"])
		for _, be := range []string{"uring", "epoll"} {
			add(server{name: "ringmachine-" + be, proto: "tls", ours: true,
				argv: func(a string) []string {
					return []string{bin, "-addr", a, "-loops", "1", "-tls-cert", c.tlsCert, "-tls-key", c.tlsKey}
				},
				env: []string{"RINGMACHINE_BACKEND=" + be}})
		}
		peer := filepath.Join(c.binDir, "peer")
		add(server{name: "net", proto: "tls",
			argv: func(a string) []string {
				return []string{peer, "-impl", "net", "-proto", "echo", "-addr", a, "-tls-cert", c.tlsCert, "-tls-key", c.tlsKey}
			}})
		if c.servers.MatchString("gnet") {
			notes = append(notes, "gnet has no TLS: not in the tls scenarios.")
		}
	}
	if err := exec.Command("ruby", "-reventmachine", "-e", "1").Run(); err == nil {
		script := filepath.Join(c.benchDir, "peer", "em_echo.rb")
		add(server{name: "eventmachine", proto: "echo",
			argv: func(a string) []string { _, p, _ := net.SplitHostPort(a); return []string{"ruby", script, p} }})
	} else {
		notes = append(notes, "Ruby EventMachine not installed (apt-get install ruby-eventmachine): skipped.")
	}
	if s, note := c.cLiburing(); note != "" {
		notes = append(notes, note)
	} else if s != nil {
		add(*s)
	}
	if path, err := exec.LookPath("redis-server"); err == nil {
		add(server{name: "redis-server", proto: "redis",
			argv: func(a string) []string {
				h, p, _ := net.SplitHostPort(a)
				return []string{path, "--bind", h, "--port", p, "--save", "", "--appendonly", "no",
					"--protected-mode", "no", "--daemonize", "no", "--io-threads", "1", "--loglevel", "warning",
					"--maxclients", "15000"}
			}})
	} else {
		notes = append(notes, "redis-server not installed (apt-get install redis-server): skipped.")
	}
	return out, notes
}

// cPeer is the name of the C liburing echo server among the peers.
const cPeer = "c-liburing"

// cLiburing builds the C liburing echo server of -c-echo (unless -no-build)
// and returns it as the echo peer "c-liburing"; without -c-echo, or when it
// does not build (no C compiler, no liburing), it returns a note instead.
func (c *config) cLiburing() (*server, string) {
	if c.cEcho == "" {
		return nil, "C liburing echo server: none given (-c-echo FILE.c or LIBURING_ECHO=FILE.c): skipped."
	}
	if !c.servers.MatchString(cPeer) {
		return nil, ""
	}
	bin := filepath.Join(c.binDir, "c-liburing-echo")
	if !c.noBuild {
		if err := os.MkdirAll(c.binDir, 0o755); err != nil {
			return nil, fmt.Sprintf("C liburing echo server: %v: skipped.", err)
		}
		out, err := exec.Command("cc", "-O2", "-o", bin, c.cEcho, "-luring").CombinedOutput()
		if err != nil {
			return nil, fmt.Sprintf("C liburing echo server: cc -O2 %s -luring: %v (%s; apt-get install gcc liburing-dev): skipped.",
				c.cEcho, err, strings.TrimSpace(string(out)))
		}
	}
	return &server{name: cPeer, proto: "echo",
		argv: func(a string) []string { return []string{bin, "-addr", a} }}, ""
}

// running is a started server.
type running struct {
	cmd  *exec.Cmd
	pid  int
	addr string
	done chan error
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs s pinned to c.serverCPU, moves it into cg (if any), and waits
// until its port accepts connections.
func (c *config) start(s server, cg *cgroup) (*running, error) {
	return c.startOn(c.serverCPU, s, cg)
}

// proxyBackend is the echo server the proxy scenario's servers forward to:
// RingMachine's examples/echo on io_uring with one loop.
func (c *config) proxyBackend() server {
	return server{name: "proxy backend", proto: "echo",
		argv: func(a string) []string {
			return []string{filepath.Join(c.binDir, ourBins["echo"]), "-addr", a, "-loops", "1"}
		},
		env: []string{"RINGMACHINE_BACKEND=uring"}}
}

// startOn is start pinned to the CPU list cpu.
func (c *config) startOn(cpu string, s server, cg *cgroup) (*running, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	argv := append([]string{"taskset", "-c", cpu}, s.argv(addr)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &running{cmd: cmd, pid: cmd.Process.Pid, addr: addr, done: make(chan error, 1)}
	go func() { // drain stdout
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if c.verbose {
				fmt.Fprintln(os.Stderr, "  |", sc.Text())
			}
		}
		r.done <- cmd.Wait()
	}()
	if cg != nil {
		if err := cg.add(r.pid); err != nil {
			r.stop()
			return nil, err
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			nc.Close()
			break
		}
		select {
		case err := <-r.done:
			return nil, fmt.Errorf("%s exited before listening: %v", s.name, err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("%s: not listening on %s after 10s", s.name, addr)
		}
	}
	// The dial above made one connection: let the server settle.
	time.Sleep(20 * time.Millisecond)
	return r, nil
}

// stop sends SIGTERM, then SIGKILL to the process group after 3 s.
func (r *running) stop() {
	_ = syscall.Kill(r.pid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-r.pid, syscall.SIGKILL)
		<-r.done
	}
}

// cpuSeconds is utime+stime of pid (all its threads), from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command may contain spaces
	if i < 0 {
		return 0, errors.New("bad /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:])
	// Fields after the command: state(3) ... utime(14) stime(15).
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clkTck, nil
}

const clkTck = 100 // sysconf(_SC_CLK_TCK) on Linux

// rssKB is VmRSS of pid in KiB.
func rssKB(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.ParseFloat(f[0], 64)
			}
		}
	}
	return 0, errors.New("no VmRSS")
}

// cgroup is a CPU-capped cgroup (v1 cpu controller or v2 cpu.max).
type cgroup struct {
	dir     string
	version string
}

func newCgroup(quotaPct int) (*cgroup, error) {
	name := "ringbench-" + strconv.Itoa(os.Getpid())
	period := 100000
	quota := period * quotaPct / 100
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err == nil {
		dir := filepath.Join("/sys/fs/cgroup/cpu", name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, err
		}
		cg := &cgroup{dir: dir, version: "v1 cpu.cfs_quota_us"}
		err := errors.Join(
			os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte(strconv.Itoa(period)), 0),
			os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(strconv.Itoa(quota)), 0))
		if err != nil {
			cg.remove()
			return nil, err
		}
		return cg, nil
	}
	ctrl, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil || !strings.Contains(string(ctrl), "cpu") {
		return nil, errors.New("no cgroup v1 cpu controller nor cgroup v2 cpu controller in /sys/fs/cgroup")
	}
	_ = os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+cpu"), 0)
	dir := filepath.Join("/sys/fs/cgroup", name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	cg := &cgroup{dir: dir, version: "v2 cpu.max"}
	if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(fmt.Sprintf("%d %d", quota, period)), 0); err != nil {
		cg.remove()
		return nil, err
	}
	return cg, nil
}

// add moves the whole process (all threads) into the group.
func (g *cgroup) add(pid int) error {
	return os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
}

func (g *cgroup) remove() {
	for range 50 { // the last process may take a moment to leave
		if err := os.Remove(g.dir); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
