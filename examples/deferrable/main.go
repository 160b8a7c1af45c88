// Command deferrable is EventMachine's Deferrable tutorial on RingMachine: a
// struct embeds loop.Deferrable; its callback prints "Go SpeedRacer go" when
// a timer makes it succeed after one second, and stops the loop.
//
//	go run ./examples/deferrable             # 1 s
//	go run ./examples/deferrable -scale 0.01 # 10 ms
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
		fmt.Fprintln(os.Stderr, "deferrable:", err)
		os.Exit(1)
	}
}

// myDeferrable is the tutorial's MyDeferrable: "include EM::Deferrable"
// becomes an embedded loop.Deferrable.
type myDeferrable struct {
	loop.Deferrable[string]
	out io.Writer
}

func (d *myDeferrable) Go(str string) { fmt.Fprintf(d.out, "Go %s go\n", str) }

// stderr receives the usage text and flag errors (a variable for the tests).
var stderr io.Writer = os.Stderr

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("deferrable", flag.ContinueOnError)
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
		df := &myDeferrable{out: stdout}
		df.Init(l)
		df.Callback(func(x string) {
			df.Go(x)
			l.Stop()
		})
		_, _ = l.AddTimer(sec, func() { df.Succeed("SpeedRacer") })
	})
}

// stopOnDone stops l when ctx is cancelled (SIGINT, SIGTERM).
func stopOnDone(ctx context.Context, l *loop.Loop) {
	stop := context.AfterFunc(ctx, l.Stop)
	_ = l.AddShutdownHook(func() { stop() })
}
