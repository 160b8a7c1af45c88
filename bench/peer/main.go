// Command peer is the benchmark's reference servers: the same echo, HTTP
// plaintext and RESP behaviour as RingMachine's examples/echo, httpd and
// redis, on Go's net package (a goroutine per connection) or on gnet v2
// (one event loop, like RingMachine's -loops 1), and a TCP forwarding proxy
// like examples/proxy on Go's net package.
//
//	peer -impl net  -proto echo  -addr 127.0.0.1:10000
//	peer -impl gnet -proto redis -addr 127.0.0.1:6379
//	peer -impl net  -proto echo  -addr 127.0.0.1:10000 -tls-cert cert.pem -tls-key key.pem
//	peer -impl net  -proto proxy -addr 127.0.0.1:10001 -to 127.0.0.1:10000
//
// -proto proxy (-impl net only) forwards every accepted connection to a
// connection of its own to -to: a goroutine per direction, each an io.Copy
// from one *net.TCPConn to the other (which Go's net package carries out
// with splice(2) through a pipe on Linux, as TCPConn.ReadFrom does), a
// half-close forwarded with CloseWrite, the pair closed when both
// directions are done or either fails.
//
// With -tls-cert and -tls-key (PEM files) the net servers speak TLS
// (crypto/tls.NewListener: the handshake runs on the connection's
// goroutine, on its first read), like RingMachine's examples/echo and
// httpd with the same flags. gnet has no TLS: -impl gnet refuses them.
//
// It prints "<impl>-<proto>: listening on ADDR (<impl>)" once listening and
// stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"

	"github.com/ringmachine/ringmachine/bench/internal/proto"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
}

// feeder is the protocol state of one connection.
type feeder interface {
	Feed(data, out []byte) ([]byte, bool)
}

type echo struct{}

func (echo) Feed(data, out []byte) ([]byte, bool) { return append(out, data...), false }

func newFeeder(p string, db *proto.DB) func() feeder {
	switch p {
	case "echo":
		return func() feeder { return echo{} }
	case "http":
		return func() feeder { return &proto.HTTP{} }
	case "redis":
		return func() feeder { return &proto.RESP{DB: db} }
	}
	return nil
}

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	impl := fs.String("impl", "net", "net or gnet")
	p := fs.String("proto", "echo", "echo, http, redis, or proxy (-impl net)")
	addr := fs.String("addr", "127.0.0.1:10000", "listen on `host:port`")
	to := fs.String("to", "", "-proto proxy: forward to `host:port`")
	tlsCert := fs.String("tls-cert", "", "-impl net: serve TLS with this PEM certificate `file` (with -tls-key)")
	tlsKey := fs.String("tls-key", "", "the PEM private key `file` of -tls-cert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *p == "proxy" {
		switch {
		case *impl != "net":
			return fmt.Errorf("-proto proxy: -impl net only, not %q", *impl)
		case *to == "":
			return errors.New("-proto proxy needs -to host:port")
		case *tlsCert != "" || *tlsKey != "":
			return errors.New("-proto proxy has no TLS")
		}
		return runNetProxy(ctx, stdout, *addr, *to)
	}
	if *to != "" {
		return errors.New("-to goes with -proto proxy")
	}
	if newFeeder(*p, nil) == nil {
		return fmt.Errorf("-proto %q: echo, http, redis or proxy", *p)
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	var tlsConf *tls.Config
	if *tlsCert != "" {
		if *impl != "net" {
			return fmt.Errorf("-impl %s has no TLS: -tls-cert/-tls-key with -impl net only", *impl)
		}
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	name := *impl + "-" + *p
	switch *impl {
	case "net":
		return runNet(ctx, stdout, name, *addr, tlsConf, newFeeder(*p, proto.NewDB(&sync.Mutex{})))
	case "gnet":
		return runGnet(ctx, stdout, name, *addr, newFeeder(*p, proto.NewDB(nil)))
	}
	return fmt.Errorf("-impl %q: net or gnet", *impl)
}

func runNet(ctx context.Context, stdout io.Writer, name, addr string, tlsConf *tls.Config, nf func() feeder) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	kind := "net"
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
		kind = "net, TLS"
	}
	fmt.Fprintf(stdout, "%s: listening on %s (%s)\n", name, ln.Addr(), kind)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go serveNet(c, nf())
	}
}

func serveNet(c net.Conn, f feeder) {
	defer c.Close()
	buf := make([]byte, 16<<10)
	var out []byte
	for {
		n, err := c.Read(buf)
		if n > 0 {
			var closing bool
			out, closing = f.Feed(buf[:n], out[:0])
			if len(out) > 0 {
				if _, err := c.Write(out); err != nil {
					return
				}
			}
			if cap(out) > 1<<20 {
				out = nil
			}
			if closing {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// runNetProxy accepts connections on addr and forwards each to a
// connection of its own to to.
func runNetProxy(ctx context.Context, stdout io.Writer, addr, to string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "net-proxy: listening on %s, forwarding to %s (net)\n", ln.Addr(), to)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go proxyNet(c.(*net.TCPConn), to)
	}
}

// proxyNet connects to to and copies both ways between it and c until
// both directions are done.
func proxyNet(c *net.TCPConn, to string) {
	defer c.Close()
	nc, err := net.DialTimeout("tcp", to, 5*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "peer: %s: backend %s: %v\n", c.RemoteAddr(), to, err)
		return
	}
	b := nc.(*net.TCPConn)
	defer b.Close()
	done := make(chan struct{})
	go func() {
		forward(c, b)
		close(done)
	}()
	forward(b, c)
	<-done
}

// forward copies src to dst (io.Copy: splice(2) between two TCP
// connections on Linux). At src's end of stream it shuts down dst's
// sending side, so the half-close reaches the other end; on an error both
// connections are closed, which ends the other direction too.
func forward(dst, src *net.TCPConn) {
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	_ = dst.CloseWrite()
}

type gnetServer struct {
	gnet.BuiltinEventEngine
	name, addr string
	stdout     io.Writer
	nf         func() feeder
	ctx        context.Context
	out        []byte // shared by the connections of the one loop
}

type gnetConn struct{ f feeder }

func (s *gnetServer) OnBoot(eng gnet.Engine) gnet.Action {
	fmt.Fprintf(s.stdout, "%s: listening on %s (gnet)\n", s.name, s.addr)
	context.AfterFunc(s.ctx, func() { _ = eng.Stop(context.Background()) })
	return gnet.None
}

func (s *gnetServer) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(&gnetConn{f: s.nf()})
	return nil, gnet.None
}

func (s *gnetServer) OnTraffic(c gnet.Conn) gnet.Action {
	gc := c.Context().(*gnetConn)
	data, _ := c.Next(-1)
	out, closing := gc.f.Feed(data, s.out[:0])
	if len(out) > 0 {
		_, _ = c.Write(out) // copies what the socket does not take
	}
	if cap(out) <= 1<<20 {
		s.out = out
	}
	if closing {
		return gnet.Close
	}
	return gnet.None
}

func runGnet(ctx context.Context, stdout io.Writer, name, addr string, nf func() feeder) error {
	s := &gnetServer{name: name, addr: addr, stdout: stdout, nf: nf, ctx: ctx}
	err := gnet.Run(s, "tcp://"+addr,
		gnet.WithMulticore(false), gnet.WithNumEventLoop(1), gnet.WithLockOSThread(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithLogLevel(logging.ErrorLevel))
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}
