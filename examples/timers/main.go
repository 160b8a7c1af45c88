// Command timers is EventMachine's timer tutorial on RingMachine: a periodic
// timer prints "Tick ..." every second and a one-shot timer prints "BOOM"
// after five seconds and stops the loop.
//
//	go run ./examples/timers            # 5 s
//	go run ./examples/timers -scale 0.01 # 50 ms
//
// The backend follows RINGMACHINE_BACKEND (uring or epoll; io_uring when
// available otherwise).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringmachine/ringmachine/loop"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "timers:", err)
		os.Exit(1)
	}
}

// stderr receives the usage text and flag errors (a variable for the tests).
var stderr io.Writer = os.Stderr

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("timers", flag.ContinueOnError)
	fs.SetOutput(stderr) // usage and flag errors
	scale := fs.Float64("scale", 1, "multiply every delay by this factor")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *scale <= 0 {
		return fmt.Errorf("-scale must be positive, got %v", *scale)
	}
	sec := time.Duration(float64(time.Second) * *scale)
	return loop.Run(func(l *loop.Loop) {
		stopOnDone(ctx, l)
		_, _ = l.AddTimer(5*sec, func() {
			fmt.Fprintln(stdout, "BOOM")
			l.Stop()
		})
		_, _ = l.AddPeriodicTimer(sec, func() {
			fmt.Fprintln(stdout, "Tick ...")
		})
	})
}

// stopOnDone stops l when ctx is cancelled (SIGINT, SIGTERM).
func stopOnDone(ctx context.Context, l *loop.Loop) {
	stop := context.AfterFunc(ctx, l.Stop)
	_ = l.AddShutdownHook(func() { stop() })
}
