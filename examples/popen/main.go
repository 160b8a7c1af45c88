// Command popen runs a program with its standard input and output as a
// RingMachine connection (EventMachine's EM.popen): it streams the
// program's output as it arrives, feeds it a file (-in), then closes its
// input, and prints how it ended.
//
//	go run ./examples/popen -- ls -l
//	go run ./examples/popen -in go.mod -- sort
//	go run ./examples/popen -timeout 2s -- sleep 10   # SIGTERM after 2 s
//
// The last line is the exit status ("exit status 0", "signal: terminated");
// popen itself exits 0 when the program did, 1 otherwise. The backend
// follows RINGMACHINE_BACKEND (uring or epoll; io_uring when available
// otherwise).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "popen:", err)
		os.Exit(1)
	}
}

// stderr receives the usage text and flag errors (a variable for the tests).
var stderr io.Writer = os.Stderr

// errFailed is run's error when the program did not exit with 0.
var errFailed = errors.New("the program failed")

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("popen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: popen [-in file] [-merge] [-timeout d] -- program [args...]")
		fs.PrintDefaults()
	}
	in := fs.String("in", "", "feed this file to the program's input, then close it (default: close it at once)")
	merge := fs.Bool("merge", false, "send the program's standard error into the connection too (2>&1)")
	timeout := fs.Duration("timeout", 0, "end the program (SIGTERM, then SIGKILL 1 s later) after this long (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fs.Usage()
		return errors.New("no program given")
	}
	if *timeout < 0 {
		return fmt.Errorf("-timeout must not be negative, got %v", *timeout)
	}
	if *in != "" {
		if _, err := os.Stat(*in); err != nil {
			return err
		}
	}
	var status conn.ExitStatus
	var runErr error
	err := loop.Run(func(l *loop.Loop) {
		stop := context.AfterFunc(ctx, l.Stop)
		_ = l.AddShutdownHook(func() { stop() })
		h := &printer{out: stdout, in: *in, done: func(st conn.ExitStatus, reason error) {
			status = st
			var oe *conn.OpError
			if errors.As(reason, &oe) && !errors.Is(oe, syscall.EPIPE) {
				runErr = reason
			}
			l.Stop()
		}}
		c, err := l.Popen(argv, h, loop.PopenOptions{MergeStderr: *merge, TermAfter: time.Nanosecond})
		if err != nil {
			runErr = err
			l.Stop()
			return
		}
		if *timeout > 0 {
			// Closing our side ends the program: SIGTERM at once
			// (TermAfter), SIGKILL a second later if it ignores that.
			_, _ = l.AddTimer(*timeout, func() { _ = c.Close() })
		}
	})
	if runErr != nil {
		return runErr
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, status)
	if !status.Success() {
		return errFailed
	}
	return nil
}

// printer streams a program's output to out, feeds it the file in, and
// calls done with its status at Unbind.
type printer struct {
	conn.Base
	out  io.Writer
	in   string
	done func(conn.ExitStatus, error)
}

func (p *printer) PostInit(c *conn.Conn) {
	if p.in != "" {
		// Sent from the file by the kernel (sendfile), as the program
		// reads it: its memory cost does not grow with the file.
		if err := c.SendFile(p.in); err != nil {
			fmt.Fprintln(stderr, "popen:", err)
		}
	}
	_ = c.CloseWrite() // after what is queued: the program sees EOF then
}

func (p *printer) ReceiveData(_ *conn.Conn, data []byte) { _, _ = p.out.Write(data) }

func (p *printer) Unbind(c *conn.Conn, reason error) {
	st, _ := c.ExitStatus()
	p.done(st, reason)
}
