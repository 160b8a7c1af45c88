// Command echo is EventMachine's echo server tutorial on RingMachine: every
// byte a client sends comes back to it.
//
//	go run ./examples/echo                      # listens on 127.0.0.1:10000
//	go run ./examples/echo -addr 127.0.0.1:0    # any free port
//	telnet 127.0.0.1 10000
//
// It prints one line once listening ("echo: listening on ADDR (BACKEND)")
// and stops gracefully on SIGINT or SIGTERM. The backend follows
// RINGMACHINE_BACKEND (uring or epoll; io_uring when available otherwise).
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

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

// echo is the handler of one connection: EventMachine's
//
//	module EchoServer
//	  def receive_data(data) send_data(data) end
//	end
type echo struct{ conn.Base }

func (echo) ReceiveData(c *conn.Conn, data []byte) {
	_ = c.SendData(data) // copies: data is only valid during the call
}

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:10000", "listen on `host:port` (or unix:/path)")
	loops := fs.Int("loops", 1, "number of reactors (only 1 is supported for now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *loops != 1 {
		return fmt.Errorf("-loops %d: only one loop is supported for now", *loops)
	}
	var startErr error
	err := loop.Run(func(l *loop.Loop) {
		stopOnDone(ctx, l)
		srv, err := l.StartServer(*addr, func() conn.Handler { return echo{} })
		if err != nil {
			startErr = err
			l.Stop()
			return
		}
		fmt.Fprintf(stdout, "echo: listening on %s (%s)\n", srv.Addr(), l.Backend())
	})
	return errors.Join(startErr, err)
}

// stopOnDone stops l when ctx is cancelled (SIGINT, SIGTERM).
func stopOnDone(ctx context.Context, l *loop.Loop) {
	stop := context.AfterFunc(ctx, l.Stop)
	_ = l.AddShutdownHook(func() { stop() })
}
