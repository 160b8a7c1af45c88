// Command defer_callback is EventMachine's defer-with-callback tutorial: the
// operation 2 + 2 runs on a pool worker and the callback prints the result
// on the loop, then stops it: "2 + 2 == 4".
//
//	go run ./examples/defer_callback
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ringmachine/ringmachine/loop"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "defer_callback:", err)
		os.Exit(1)
	}
}

// stderr receives the usage text and flag errors (a variable for the tests).
var stderr io.Writer = os.Stderr

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("defer_callback", flag.ContinueOnError)
	fs.SetOutput(stderr) // usage and flag errors
	if err := fs.Parse(args); err != nil {
		return err
	}
	var deferErr error
	err := loop.Run(func(l *loop.Loop) {
		stop := context.AfterFunc(ctx, l.Stop)
		_ = l.AddShutdownHook(func() { stop() })

		op := func() int { return 2 + 2 }
		callback := func(count int) {
			fmt.Fprintf(stdout, "2 + 2 == %d\n", count)
			l.Stop()
		}
		if deferErr = loop.Defer(l, op, callback); deferErr != nil {
			l.Stop()
		}
	})
	if err == nil {
		err = deferErr
	}
	return err
}
