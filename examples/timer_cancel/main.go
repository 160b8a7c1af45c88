// Command timer_cancel is EventMachine's timer-cancel tutorial: a periodic
// timer ticks every second, a timer at five seconds prints "BOOM" and cancels
// it, and a timer at eight seconds prints "The googles, they do nothing" and
// stops the loop.
//
//	go run ./examples/timer_cancel -scale 0.01
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
		fmt.Fprintln(os.Stderr, "timer_cancel:", err)
		os.Exit(1)
	}
}

// stderr receives the usage text and flag errors (a variable for the tests).
var stderr io.Writer = os.Stderr

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("timer_cancel", flag.ContinueOnError)
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

		p, err := l.AddPeriodicTimer(sec, func() { fmt.Fprintln(stdout, "Tick ...") })
		if err != nil {
			panic(err)
		}
		_, _ = l.AddTimer(5*sec, func() {
			fmt.Fprintln(stdout, "BOOM")
			p.Cancel()
		})
		_, _ = l.AddTimer(8*sec, func() {
			fmt.Fprintln(stdout, "The googles, they do nothing")
			l.Stop()
		})
	})
}
