package testutil

import (
	"bufio"
	"context"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// RunFunc is the run function of an example program: it serves until ctx
// ends, printing its listening line to stdout first.
type RunFunc func(ctx context.Context, stdout io.Writer, args []string) error

// StartProgram runs run in the background with "-addr 127.0.0.1:0" and
// args, and waits for its first line of output, which must match
// listening; the first group of the match is the address returned (t
// fails otherwise, or when run ends first). stop cancels run's context and
// returns run's error, failing t if run has not returned within 10 s; it
// may be called more than once, and the test's cleanup calls it (and
// ignores its error) if the test did not.
func StartProgram(t testing.TB, run RunFunc, listening *regexp.Regexp, args ...string) (addr string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, pw, append([]string{"-addr", "127.0.0.1:0"}, args...))
		pw.Close()
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no listening line: %v (run: %v)", err, <-done)
	}
	m := listening.FindStringSubmatch(strings.TrimSuffix(line, "\n"))
	if len(m) < 2 {
		cancel()
		<-done
		t.Fatalf("listening line %q does not match %v", line, listening)
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck // never block run
	var (
		once   sync.Once
		runErr error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				t.Error("run did not return within 10 s of its context's end")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return m[1], stop
}
