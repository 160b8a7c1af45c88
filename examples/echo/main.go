// Command echo is EventMachine's echo server tutorial on RingMachine: every
// byte a client sends comes back to it.
//
//	go run ./examples/echo                      # listens on 127.0.0.1:10000
//	go run ./examples/echo -addr 127.0.0.1:0    # any free port
//	go run ./examples/echo -loops 0             # one reactor per core
//	telnet 127.0.0.1 10000
//
// -loops N runs N reactors (a loop.Group; 0 means one per core), each with
// its own SO_REUSEPORT listener on the address: the kernel spreads the
// connections and no two reactors ever share one.
//
// It prints one line once listening ("echo: listening on ADDR (BACKEND)")
// and stops gracefully on SIGINT or SIGTERM. The backend follows
// RINGMACHINE_BACKEND (uring or epoll; io_uring when available otherwise).
package main

import (
	"context"
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
	loops := fs.Int("loops", 1, "number of reactors, each with its own SO_REUSEPORT listener (0: one per core)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *loops < 0 {
		return fmt.Errorf("-loops %d: must be 0 (one per core) or more", *loops)
	}
	g, err := loop.NewGroup(*loops, loop.Options{})
	if err != nil {
		return err
	}
	srv, err := g.StartServer(*addr, func(*loop.Loop) conn.Handler { return echo{} })
	if err != nil {
		return err
	}
	return g.Run(func(l *loop.Loop) {
		if l.Index() != 0 {
			return
		}
		stop := context.AfterFunc(ctx, g.Stop)
		_ = l.AddShutdownHook(func() { stop() })
		fmt.Fprintf(stdout, "echo: listening on %s (%s, %d loops)\n", srv.Addr(), l.Backend(), g.Len())
	})
}
