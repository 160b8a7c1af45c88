// Command pass is EventMachine's "init block" server on RingMachine: the
// block given to start_server sets up each new connection's state, here a
// prefix and a suffix, and the handler answers every line with
// "Goodbye <line> world".
//
//	class Pass < EventMachine::Connection
//	  attr_accessor :a, :b
//	  def receive_data(data) send_data("#{@a} #{data.chomp} #{b}") end
//	end
//	EventMachine.run do
//	  EventMachine.start_server("127.0.0.1", 10000, Pass) do |conn|
//	    conn.a = "Goodbye"
//	    conn.b = "world"
//	  end
//	end
//
// In RingMachine the server's factory plays the init block. Lines are
// framed with conn.LineReader, so a line split across packets (or several
// lines in one) is answered once per line.
//
//	go run ./examples/pass -addr 127.0.0.1:10000
//
// It prints one line once listening ("pass: listening on ADDR (BACKEND)")
// and stops gracefully on SIGINT or SIGTERM. The backend follows
// RINGMACHINE_BACKEND.
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
		fmt.Fprintln(os.Stderr, "pass:", err)
		os.Exit(1)
	}
}

// pass is the handler of one connection; a and b are set by the factory.
type pass struct {
	conn.Base
	a, b  string
	lines conn.LineReader
	out   []byte // reused answer buffer
}

func (p *pass) ReceiveData(c *conn.Conn, data []byte) {
	err := p.lines.Feed(data, func(line []byte) {
		p.out = append(p.out[:0], p.a...)
		p.out = append(p.out, ' ')
		p.out = append(p.out, line...)
		p.out = append(p.out, ' ')
		p.out = append(p.out, p.b...)
		p.out = append(p.out, '\n')
		_ = c.SendData(p.out) // copies
	})
	if err != nil { // a line longer than 64 KiB
		_ = c.SendData([]byte("line too long\n"))
		_ = c.CloseAfterWriting()
	}
}

// stderr receives the usage text and flag errors (a variable for the tests).
var stderr io.Writer = os.Stderr

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("pass", flag.ContinueOnError)
	fs.SetOutput(stderr) // usage and flag errors
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
		srv, err := l.StartServer(*addr, func() conn.Handler {
			// The init block: per-connection state.
			return &pass{a: "Goodbye", b: "world"}
		})
		if err != nil {
			startErr = err
			l.Stop()
			return
		}
		fmt.Fprintf(stdout, "pass: listening on %s (%s)\n", srv.Addr(), l.Backend())
	})
	return errors.Join(startErr, err)
}

// stopOnDone stops l when ctx is cancelled (SIGINT, SIGTERM).
func stopOnDone(ctx context.Context, l *loop.Loop) {
	stop := context.AfterFunc(ctx, l.Stop)
	_ = l.AddShutdownHook(func() { stop() })
}
