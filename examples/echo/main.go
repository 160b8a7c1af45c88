// Command echo is EventMachine's echo server tutorial on RingMachine: every
// byte a client sends comes back to it.
//
//	go run ./examples/echo                      # listens on 127.0.0.1:10000
//	go run ./examples/echo -addr 127.0.0.1:0    # any free port
//	go run ./examples/echo -loops 0             # one reactor per core
//	go run ./examples/echo -loops 6             # 6 × RLIMIT_NOFILE connections
//	go run ./examples/echo -tls-cert cert.pem -tls-key key.pem   # echo over TLS
//	telnet 127.0.0.1 10000
//	openssl s_client -connect 127.0.0.1:10000   # with -tls-cert/-tls-key
//
// With -tls-cert and -tls-key (PEM files, as crypto/tls.LoadX509KeyPair
// reads them) every connection starts TLS at once (conn.Conn.StartTLS):
// the echo is of the plaintext, over TLS. The handshake is bounded by the
// loop's TLS handshake timeout.
//
// -loops N runs N reactors (a loop.Group; 0 means one per core), each with
// its own SO_REUSEPORT listener on the address: the kernel spreads the
// connections and no two reactors ever share one. On io_uring the
// connections are direct descriptors: each reactor's ring holds up to
// RLIMIT_NOFILE of them and none takes a descriptor of the process;
// -process-fds makes them ordinary descriptors (loop.URingOptions.ProcessFDs);
// -fixed-gomaxprocs leaves GOMAXPROCS at 1 on one CPU
// (loop.Options.FixedGOMAXPROCS), -yield-every D sets how often a busy
// reactor yields to the Go scheduler (loop.Options.YieldEvery; -1ns: never)
// -min-wait D gathers completions for up to D per wait
// (loop.URingOptions.MinWait) and -recv-bundle receives bundles of buffers
// (loop.RecvMultishotBundle), each for its A/B.
//
// A client that sends without reading what comes back holds at most about
// 256 KiB of echoed bytes: above that (the high watermark of
// conn.Conn.SetOutboundLimits) the server stops reading from it until the
// queue drains to 64 KiB, so the client's writes block instead of the
// server's memory growing. Errors no connection can take, such as accept
// failing with EMFILE, are printed to stderr ("echo: ...") and the server
// goes on.
//
// It prints one line once listening ("echo: listening on ADDR (BACKEND, N
// loops)")
// and stops gracefully on SIGINT or SIGTERM. The backend follows
// RINGMACHINE_BACKEND (uring or epoll; io_uring when available otherwise).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
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
//
// With tls set, the connection starts TLS first (EventMachine's start_tls
// in post_init).
type echo struct {
	conn.Base
	tls *tls.Config
}

// Outbound watermarks of every connection (conn.Conn.SetOutboundLimits):
// reading from a client pauses while more than outHigh bytes wait to be
// echoed to it, and resumes at outLow, so a client that sends without
// reading holds about outHigh bytes of the server's memory (plus what the
// loop had already received when reading paused), not all it sent.
const (
	outLow  = 64 << 10
	outHigh = 256 << 10
)

func (e echo) PostInit(c *conn.Conn) {
	if e.tls != nil {
		if err := c.StartTLS(e.tls); err != nil {
			fmt.Fprintln(stderr, "echo:", err)
			_ = c.Close()
			return
		}
	}
	_ = c.SetOutboundLimits(outLow, outHigh, 0)
}

func (echo) ReceiveData(c *conn.Conn, data []byte) {
	// SendData copies: data is only valid during the call. A large
	// delivery (bytes held while reading was paused come at once) goes in
	// pieces of the loop's chunk size, so they are copied into its
	// recycled chunks rather than into chunks allocated for them.
	for len(data) > 0 {
		n := min(len(data), conn.OutboundChunkSize)
		if c.SendData(data[:n]) != nil {
			break
		}
		data = data[n:]
	}
	if observe != nil {
		observe(c.OutboundSize())
	}
}

// observe, when set (by tests, before the server starts), sees after each
// read the bytes queued for the client.
var observe func(queued int)

// stderr receives the errors the server reports and survives (a variable
// for the tests).
var stderr io.Writer = os.Stderr

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	fs.SetOutput(stderr) // usage and flag errors
	addr := fs.String("addr", "127.0.0.1:10000", "listen on `host:port` (or unix:/path)")
	loops := fs.Int("loops", 1, "number of reactors, each with its own SO_REUSEPORT listener (0: one per core)")
	processFDs := fs.Bool("process-fds", false, "io_uring: hold connections as process descriptors instead of direct descriptors in the rings (URingOptions.ProcessFDs)")
	fixedProcs := fs.Bool("fixed-gomaxprocs", false, "leave GOMAXPROCS at 1 on one CPU (Options.FixedGOMAXPROCS)")
	yieldEvery := fs.Duration("yield-every", 0, "how often a busy reactor yields to the Go scheduler (Options.YieldEvery; 0: the default, negative: never)")
	minWait := fs.Duration("min-wait", 0, "io_uring: gather completions for up to this long per wait (URingOptions.MinWait; 0: off)")
	bundle := fs.Bool("recv-bundle", false, "io_uring: receive bundles of buffers (loop.RecvMultishotBundle)")
	tlsCert := fs.String("tls-cert", "", "echo over TLS with this PEM certificate `file` (with -tls-key)")
	tlsKey := fs.String("tls-key", "", "the PEM private key `file` of -tls-cert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *loops < 0 {
		return fmt.Errorf("-loops %d: must be 0 (one per core) or more", *loops)
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	var tlsConf *tls.Config
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	var (
		mu       sync.Mutex
		panicErr error
		g        *loop.Group
	)
	// Accept failures (EMFILE, ...) are printed and the server goes on (the
	// loop retries the accept); a panic in a handler stops the server and
	// run returns it. Each loop calls it on its own goroutine.
	onError := func(err error) {
		if pe := (*loop.PanicError)(nil); errors.As(err, &pe) {
			mu.Lock()
			if panicErr == nil {
				panicErr = err
			}
			mu.Unlock()
			g.Stop()
			return
		}
		fmt.Fprintln(stderr, "echo:", err)
	}
	opts := loop.Options{ErrorHandler: onError, FixedGOMAXPROCS: *fixedProcs, YieldEvery: *yieldEvery, URing: loop.URingOptions{ProcessFDs: *processFDs, MinWait: *minWait}}
	if *bundle {
		opts.URing.Recv = loop.RecvMultishotBundle
	}
	g, err := loop.NewGroup(*loops, opts)
	if err != nil {
		return err
	}
	srv, err := g.StartServer(*addr, func(*loop.Loop) conn.Handler { return echo{tls: tlsConf} })
	if err != nil {
		return err
	}
	err = g.Run(func(l *loop.Loop) {
		if l.Index() != 0 {
			return
		}
		stop := context.AfterFunc(ctx, g.Stop)
		_ = l.AddShutdownHook(func() { stop() })
		fmt.Fprintf(stdout, "echo: listening on %s (%s, %d loops)\n", srv.Addr(), l.Backend(), g.Len())
	})
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(panicErr, err)
}
