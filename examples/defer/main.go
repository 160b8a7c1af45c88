// Command defer is EventMachine's defer tutorial: an operation runs on a
// pool worker and prints its thread, and a timer on the loop prints the
// loop's thread two seconds later and stops. The two thread IDs differ: the
// operation never blocks the loop.
//
//	go run ./examples/defer -scale 0.01
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/ringmachine/ringmachine/loop"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "defer:", err)
		os.Exit(1)
	}
}

// stderr receives the usage text and flag errors (a variable for the tests).
var stderr io.Writer = os.Stderr

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("defer", flag.ContinueOnError)
	fs.SetOutput(stderr) // usage and flag errors
	scale := fs.Float64("scale", 1, "multiply every delay by this factor")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *scale <= 0 {
		return fmt.Errorf("-scale must be positive, got %v", *scale)
	}
	sec := time.Duration(float64(time.Second) * *scale)
	// The op writes from a worker goroutine and the timer from the loop's:
	// serialise the writes.
	stdout = &syncWriter{w: stdout}
	var runErr error
	err := loop.Run(func(l *loop.Loop) {
		stop := context.AfterFunc(ctx, l.Stop)
		_ = l.AddShutdownHook(func() { stop() })

		_, _ = l.AddTimer(2*sec, func() {
			fmt.Fprintf(stdout, "Main thread %d\n", threadID())
			l.Stop()
		})
		runErr = loop.Defer(l, func() struct{} {
			fmt.Fprintf(stdout, "Defer thread %d\n", threadID())
			return struct{}{}
		}, nil)
		if runErr != nil {
			l.Stop()
		}
	})
	if err == nil {
		err = runErr
	}
	return err
}

// syncWriter serialises writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
