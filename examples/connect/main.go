// Command connect is EventMachine's client tutorial on RingMachine: it
// connects to an HTTP server, sends a GET request as soon as the connection
// object exists (data sent before the connection is established is queued),
// prints the size of every chunk it receives, and stops when the server
// closes the connection.
//
//	class Connector < EventMachine::Connection
//	  def post_init
//	    send_data "GET / HTTP/1.1\r\nHost: MagicBob\r\n\r\n"
//	  end
//	  def receive_data(data) puts "Received #{data.length} bytes" end
//	  def unbind() EventMachine.stop end
//	end
//	EventMachine.run { EventMachine.connect("example.com", 80, Connector) }
//
//	go run ./examples/connect -addr example.com:80
//
// A host name is resolved before the loop starts (the loop takes IP
// addresses). It exits with an error if the connection fails. The backend
// follows RINGMACHINE_BACKEND.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
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
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
}

// connector is the handler of the client connection.
type connector struct {
	conn.Base
	l       *loop.Loop
	host    string
	stdout  io.Writer
	failure error // why the connection ended, if not a clean close
}

func (h *connector) PostInit(c *conn.Conn) {
	// Queued until the connection is established.
	req := "GET / HTTP/1.1\r\nHost: " + h.host + "\r\nConnection: close\r\n\r\n"
	if err := c.SendData([]byte(req)); err != nil {
		h.failure = err
		_ = c.Close()
	}
}

func (h *connector) ReceiveData(_ *conn.Conn, data []byte) {
	fmt.Fprintf(h.stdout, "Received %d bytes\n", len(data))
}

func (h *connector) Unbind(_ *conn.Conn, reason error) {
	if reason != nil && !errors.Is(reason, io.EOF) && h.failure == nil {
		h.failure = reason
	}
	h.l.Stop()
}

// stderr receives the usage text and flag errors (a variable for the tests).
var stderr io.Writer = os.Stderr

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(stderr) // usage and flag errors
	addr := fs.String("addr", "example.com:80", "HTTP server to GET / from, `host:port`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	target := *addr
	if net.ParseIP(host) == nil {
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return err
		}
		target = net.JoinHostPort(ips[0].IP.String(), port)
	}

	h := &connector{host: host, stdout: stdout}
	err = loop.Run(func(l *loop.Loop) {
		h.l = l
		stopOnDone(ctx, l)
		if _, err := l.Connect(target, h); err != nil {
			h.failure = err
			l.Stop()
		}
	})
	return errors.Join(h.failure, err)
}

// stopOnDone stops l when ctx is cancelled (SIGINT, SIGTERM).
func stopOnDone(ctx context.Context, l *loop.Loop) {
	stop := context.AfterFunc(ctx, l.Stop)
	_ = l.AddShutdownHook(func() { stop() })
}
