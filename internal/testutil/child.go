package testutil

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ChildMain is for the TestMain of an example's tests. When the environment
// variable env is set, this test binary was started by AcceptErrors to be the
// server: ChildMain lowers RLIMIT_NOFILE to files, runs run with the flags env
// holds until SIGINT, and returns the exit code with child true. Otherwise it
// returns child false and the tests run as usual.
func ChildMain(env string, files uint64, run func(ctx context.Context, stdout io.Writer, args []string) error) (code int, child bool) {
	args, ok := os.LookupEnv(env)
	if !ok {
		return 0, false
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1, true
	}
	lim.Cur = files
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1, true
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	if err := run(ctx, os.Stdout, strings.Fields(args)); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1, true
	}
	return 0, true
}

// AcceptErrors checks that an example server reports accept failures and
// keeps serving. It runs this test binary as the server in a child process
// (its TestMain must call ChildMain with the same env and files), on
// 127.0.0.1:0, and reads the address from the first line it prints, which
// listening must match with the address as its first group. It then opens
// 2×files connections — more than the server has descriptors, so accepting
// fails with EMFILE — and waits for "too many open files" on the server's
// stderr, in a line that contains prefix (the program's name, "httpd: ").
// It closes them and returns the address, for the caller to check that a new
// client is served. When the test ends the server gets SIGINT and must exit
// cleanly.
func AcceptErrors(t *testing.T, env string, files int, listening *regexp.Regexp, prefix string) (addr string) {
	t.Helper()
	srv := exec.Command(os.Args[0], "-test.run=^$")
	srv.Env = append(os.Environ(), env+"=-addr 127.0.0.1:0")
	var errs LockedBuffer
	srv.Stderr = &errs
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the server did not exit cleanly: %v; stderr: %s", err, errs.String())
			}
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-exited
			t.Error("the server did not stop on SIGINT")
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, out); exited <- srv.Wait() }()
	if err != nil {
		t.Fatalf("no listening line: %v; stderr: %s", err, errs.String())
	}
	m := listening.FindStringSubmatch(strings.TrimSuffix(line, "\n"))
	if m == nil {
		t.Fatalf("listening line %q", line)
	}
	addr = m[1]

	// More connections than the server has descriptors: the kernel
	// completes them all, the server can accept only some.
	conns := make([]net.Conn, 0, 2*files)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 2 * files {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(errs.String(), "too many open files") {
		if time.Now().After(deadline) {
			t.Fatalf("no EMFILE report on stderr: %q", errs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range strings.Split(errs.String(), "\n") {
		if strings.Contains(l, "too many open files") && !strings.Contains(l, prefix) {
			t.Errorf("report %q does not name %q", l, prefix)
		}
	}
	return addr
}
