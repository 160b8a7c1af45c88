// Command idle measures what idle connections cost a RingMachine server: it
// starts the echo example (by default on io_uring direct descriptors, with
// enough loops that their rings hold every connection under this machine's
// RLIMIT_NOFILE), opens N connections to it from child processes (each
// within the descriptor limit, each dialling from its own 127.x.y.1 source
// address so the ephemeral ports never run out), and reports:
//
//   - how fast the connections were established (all children dialling at
//     once, 32 dials in flight each);
//
//   - the server's resident memory per connection (VmRSS before and after);
//
//   - the kernel's memory per connection, both ends together since the
//     clients run on the same machine (/proc/meminfo Slab, and the TCP
//     memory pages of /proc/net/sockstat);
//
//   - one echo over every connection (every byte checked by its client).
//
//     cd bench && go run ./idle -n 100000            # direct descriptors
//     cd bench && go run ./idle -n 15000 -direct=false -loops 1
//
// It prints a Markdown table. The server is built from ../examples/echo
// unless -server names a binary.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		if err := child(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "idle child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
}

func run(stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	n := fs.Int("n", 100_000, "connections to open")
	loops := fs.Int("loops", 0, "server loops (0: enough rings for n under RLIMIT_NOFILE with direct descriptors, else 1)")
	direct := fs.Bool("direct", true, "serve on io_uring direct descriptors (false: echo -process-fds)")
	perChild := fs.Int("per-child", 18_000, "connections per client process (each within RLIMIT_NOFILE)")
	server := fs.String("server", "", "echo server binary (default: built from ../examples/echo)")
	hold := fs.Duration("hold", 2*time.Second, "how long to hold the connections idle before measuring")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n <= 0 || *perChild <= 0 {
		return fmt.Errorf("-n %d, -per-child %d: must be positive", *n, *perChild)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if *loops == 0 {
		*loops = 1
		if *direct {
			per := int(lim.Cur) - 1000
			*loops = (*n*5/4 + per - 1) / per
		}
	}
	if *server == "" {
		dir, err := os.MkdirTemp("", "rm-idle")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*server = filepath.Join(dir, "rm-echo")
		root, err := repoRoot()
		if err != nil {
			return err
		}
		build := exec.Command("go", "build", "-o", *server, "./examples/echo")
		build.Dir = root
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build the echo server: %w", err)
		}
	}
	argv := []string{"-addr", "127.0.0.1:0", "-loops", strconv.Itoa(*loops)}
	if !*direct {
		argv = append(argv, "-process-fds")
	}
	srv := exec.Command(*server, argv...)
	srv.Env = append(os.Environ(), "RINGMACHINE_BACKEND=uring")
	srvOut, err := srv.StdoutPipe()
	if err != nil {
		return err
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		_ = srv.Wait()
	}()
	sc := bufio.NewScanner(srvOut)
	if !sc.Scan() {
		return errors.New("the server printed nothing")
	}
	first := sc.Text() // "echo: listening on ADDR (uring, N loops)"
	go func() { _, _ = io.Copy(io.Discard, srvOut) }()
	f := strings.Fields(first)
	if len(f) < 4 {
		return fmt.Errorf("unexpected server line %q", first)
	}
	addr := f[3]

	time.Sleep(200 * time.Millisecond)
	rss0, slab0, tcp0 := vmRSS(srv.Process.Pid), slab(), tcpPages()
	start := time.Now()
	var kids []*kid
	defer func() {
		for _, k := range kids {
			k.stop()
		}
	}()
	for i, left := 0, *n; left > 0; i++ {
		k := min(left, *perChild)
		c, err := spawn(addr, k, i)
		if err != nil {
			return err
		}
		kids = append(kids, c)
		left -= k
	}
	for _, k := range kids {
		if l, err := k.line(120 * time.Second); err != nil || l != "ready" {
			return fmt.Errorf("client %d: %q %v", k.i, l, err)
		}
	}
	took := time.Since(start)
	time.Sleep(*hold)
	rss1, slab1, tcp1 := vmRSS(srv.Process.Pid), slab(), tcpPages()

	echoStart := time.Now()
	for _, k := range kids {
		k.send("echo")
	}
	for _, k := range kids {
		if l, err := k.line(300 * time.Second); err != nil || l != "echo-ok" {
			return fmt.Errorf("client %d echo: %q %v", k.i, l, err)
		}
	}
	echoTook := time.Since(echoStart)

	per := func(a, b int64) string { return fmt.Sprintf("%.0f B", float64(b-a)/float64(*n)) }
	fmt.Fprintf(stdout, "#### `go run ./idle %s`\n\n", strings.Join(args, " "))
	fmt.Fprintf(stdout, "RLIMIT_NOFILE %d; server: echo %s (%s)\n\n", lim.Cur, strings.Join(argv, " "), strings.TrimPrefix(first, "echo: "))
	fmt.Fprintln(stdout, "| connections | established in | conn/s | server RSS / conn | kernel slab / conn (both ends) | TCP memory / conn (both ends) | one echo over all |")
	fmt.Fprintln(stdout, "|--:|--:|--:|--:|--:|--:|--:|")
	fmt.Fprintf(stdout, "| %d | %v | %.0f | %s | %s | %s | %v |\n", *n, took.Round(time.Millisecond),
		float64(*n)/took.Seconds(), per(rss0, rss1), per(slab0, slab1), per(tcp0, tcp1), echoTook.Round(time.Millisecond))
	return nil
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h).
const ipBindAddressNoPort = 24

// repoRoot returns the closest directory above the working directory that
// holds examples/echo (the repository, from bench/ or any folder below it).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "examples", "echo", "main.go")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("examples/echo not found above the working directory: run from the repository, or pass -server")
		}
		dir = parent
	}
}

// kid is a client process.
type kid struct {
	i     int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	once  sync.Once
}

func spawn(addr string, n, i int) (*kid, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// Source addresses per child (127.a.b.x, x changing every 5,000
	// connections: connect(2) uses half the ephemeral range per address),
	// varied by this run's pid: connections a previous run closed linger in
	// TIME_WAIT on theirs.
	src := fmt.Sprintf("127.%d.%d", 1+os.Getpid()%250, 1+i%250)
	cmd := exec.Command(self, "-child", addr, strconv.Itoa(n), src)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	k := &kid{i: i, cmd: cmd, stdin: stdin, lines: make(chan string, 4)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			k.lines <- sc.Text()
		}
		close(k.lines)
	}()
	return k, nil
}

func (k *kid) send(s string) { _, _ = io.WriteString(k.stdin, s+"\n") }

func (k *kid) line(d time.Duration) (string, error) {
	select {
	case l, ok := <-k.lines:
		if !ok {
			return "", errors.New("exited")
		}
		return l, nil
	case <-time.After(d):
		return "", fmt.Errorf("silent for %v", d)
	}
}

func (k *kid) stop() {
	k.once.Do(func() {
		k.stdin.Close()
		_ = k.cmd.Wait()
	})
}

// child dials n connections to addr from the source addresses src.x (32
// dials in flight), prints "ready", and on each "echo" line sends a message unique
// to each connection and checks its echo byte for byte ("echo-ok", or
// "echo-fail ..."); it exits when stdin closes.
func child(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: -child addr n src")
	}
	addr, src := args[0], args[2]
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	cs := make([]net.Conn, n)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 30 * time.Second,
				// The port is chosen at connect(2), not bind(2): binding
				// port 0 first scans every bound port of the address,
				// which makes dialling thousands quadratic.
				Control: func(_, _ string, rc syscall.RawConn) error {
					var serr error
					err := rc.Control(func(fd uintptr) {
						serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
					})
					return errors.Join(err, serr)
				}}
			for i := range next {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("%s.%d", src, 1+i/5000))}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					select {
					case errs <- fmt.Errorf("dial %d: %w", i, err):
					default:
					}
					continue
				}
				cs[i] = c
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	buf := make([]byte, 32)
	for sc.Scan() {
		if sc.Text() != "echo" {
			continue
		}
		status := "echo-ok"
		for i, c := range cs {
			msg := fmt.Sprintf("%s/%07d", src, i)
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(c, msg); err != nil {
				status = fmt.Sprintf("echo-fail write %d: %v", i, err)
				break
			}
			if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil || string(buf[:len(msg)]) != msg {
				status = fmt.Sprintf("echo-fail conn %d: %q %v", i, buf[:len(msg)], err)
				break
			}
		}
		fmt.Println(status)
	}
	return sc.Err()
}

// vmRSS returns the resident memory of process pid in bytes.
func vmRSS(pid int) int64 {
	return statusKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") * 1024
}

// slab returns the kernel's slab memory in bytes.
func slab() int64 { return statusKB("/proc/meminfo", "Slab:") * 1024 }

// statusKB returns the "kB" value of the line starting with key in path.
func statusKB(path, key string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, key) {
			f := strings.Fields(l)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return 0
}

// tcpPages returns the TCP memory of /proc/net/sockstat ("TCP: ... mem N",
// in pages) in bytes.
func tcpPages() int64 {
	data, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(l, "TCP:") {
			continue
		}
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "mem" {
				v, _ := strconv.ParseInt(f[i+1], 10, 64)
				return v * int64(os.Getpagesize())
			}
		}
	}
	return 0
}
