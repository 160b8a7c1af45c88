// Command next_tick is EventMachine's next_tick tutorial: a periodic timer
// prints "Hai" every second; at five seconds a timer schedules the stop on
// the next tick, so "Hai" is printed four times.
//
//	go run ./examples/next_tick -scale 0.01
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
		fmt.Fprintln(os.Stderr, "next_tick:", err)
		os.Exit(1)
	}
}

// stderr receives the usage text and flag errors (a variable for the tests).
var stderr io.Writer = os.Stderr

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("next_tick", flag.ContinueOnError)
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
		stop := context.AfterFunc(ctx, l.Stop)
		_ = l.AddShutdownHook(func() { stop() })

		hai, err := l.AddPeriodicTimer(sec, func() { fmt.Fprintln(stdout, "Hai") })
		if err != nil {
			panic(err)
		}
		_, _ = l.AddTimer(5*sec, func() {
			// The fifth "Hai" is due a hair after this timer: on a busy
			// machine the loop can wake after both deadlines and run both
			// in this timer phase. Cancelling it keeps the output to the
			// four lines the tutorial shows; the stop still goes through
			// next_tick.
			hai.Cancel()
			_ = l.NextTick(l.Stop)
		})
	})
}
