// Command spawn is EventMachine's spawn tutorial on RingMachine: a spawned
// process prints "Received <msg>" for each message it is notified of; a
// timer notifies it "hello" after 1.5 s, a periodic timer prints "Periodic"
// every second, and the loop stops at 3 s. It prints:
//
//	Periodic
//	Received hello
//	Periodic
//
//	go run ./examples/spawn             # 3 s
//	go run ./examples/spawn -scale 0.01 # 30 ms
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
		fmt.Fprintln(os.Stderr, "spawn:", err)
		os.Exit(1)
	}
}

// stderr receives the usage text and flag errors (a variable for the tests).
var stderr io.Writer = os.Stderr

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("spawn", flag.ContinueOnError)
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
		s := loop.Spawn(l, func(val string) {
			fmt.Fprintf(stdout, "Received %s\n", val)
		})
		// Armed first, so it wins a tie with the periodic timer's third
		// firing (ties go in insertion order, and the periodic timer is
		// re-armed later); it cancels that timer so nothing prints after.
		var periodic *loop.PeriodicTimer
		_, _ = l.AddTimer(3*sec, func() {
			periodic.Cancel()
			l.Stop()
		})
		_, _ = l.AddTimer(sec*3/2, func() { s.Notify("hello") })
		periodic, _ = l.AddPeriodicTimer(sec, func() {
			fmt.Fprintln(stdout, "Periodic")
		})
	})
}

// stopOnDone stops l when ctx is cancelled (SIGINT, SIGTERM).
func stopOnDone(ctx context.Context, l *loop.Loop) {
	stop := context.AfterFunc(ctx, l.Stop)
	_ = l.AddShutdownHook(func() { stop() })
}
