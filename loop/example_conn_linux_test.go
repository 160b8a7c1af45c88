package loop_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

// greeter is a line-based server handler: it greets each new connection,
// answers every line with "hi, <line>", and on "quit" says bye and closes.
// The server makes one greeter per connection, so a greeter can keep
// per-connection state: here the partial line its LineReader holds.
type greeter struct {
	conn.Base // no-op callbacks for the ones not written here
	lines     conn.LineReader
}

func (g *greeter) PostInit(c *conn.Conn) {
	_ = c.SendData([]byte("hello\n"))
}

func (g *greeter) ReceiveData(c *conn.Conn, data []byte) {
	// Bytes arrive split anywhere; the LineReader hands back whole lines.
	err := g.lines.Feed(data, func(line []byte) {
		if string(line) == "quit" {
			_ = c.SendData([]byte("bye\n"))
			_ = c.CloseAfterWriting() // close once "bye" is sent
			return
		}
		_ = c.SendData([]byte("hi, " + string(line) + "\n"))
	})
	if err != nil {
		_ = c.Close() // a line longer than the LineReader accepts
	}
}

// A server is StartServer with a factory that makes one handler per
// connection. Here the client is Go's net package, in a goroutine of its own
// as another program would be; when it is done it stops the loop through
// NextTick, the way other goroutines reach the loop.
func ExampleLoop_StartServer() {
	err := loop.Run(func(l *loop.Loop) {
		// Port 0 picks a free port; srv.Addr tells which.
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return &greeter{} })
		if err != nil {
			fmt.Println(err)
			l.Stop()
			return
		}
		addr := srv.Addr().String() // read it here: Server methods belong to the loop goroutine
		go func() {
			defer func() { _ = l.NextTick(l.Stop) }()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fmt.Println(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second)) // never wait forever
			if _, err := io.WriteString(c, "alice\nbob\nquit\n"); err != nil {
				fmt.Println(err)
				return
			}
			// The server closes after "bye": read lines until EOF.
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				fmt.Println(sc.Text())
			}
			if err := sc.Err(); err != nil {
				fmt.Println(err)
			}
		}()
	})
	fmt.Println("stopped:", err)
	// Output:
	// hello
	// hi, alice
	// hi, bob
	// bye
	// stopped: <nil>
}

// talker is a client handler: it sends its lines as soon as it exists,
// prints every line it receives and, once the connection is gone, calls done.
type talker struct {
	conn.Base
	send  string
	lines conn.LineReader
	done  func()
}

func (t *talker) PostInit(c *conn.Conn) {
	fmt.Println("post init")
	// Not connected yet: what is sent now waits until the connection is.
	_ = c.SendData([]byte(t.send))
	// Bound the wait: after 5 s without traffic the loop closes the
	// connection and Unbind gets conn.ErrInactivityTimeout.
	_ = c.SetInactivityTimeout(5 * time.Second)
}

func (t *talker) ConnectionCompleted(c *conn.Conn) {
	fmt.Println("connected")
}

func (t *talker) ReceiveData(c *conn.Conn, data []byte) {
	_ = t.lines.Feed(data, func(line []byte) {
		fmt.Printf("received %q\n", line)
	})
}

func (t *talker) Unbind(c *conn.Conn, reason error) {
	fmt.Println("unbind:", reason) // io.EOF: the server closed
	t.done()
}

// A client is Connect with a handler; its callbacks come in a fixed order:
// PostInit inside Connect, then ConnectionCompleted, ReceiveData, and
// Unbind once. Client and server share one loop here, so every line below
// is printed on the loop goroutine, in order.
func ExampleLoop_Connect() {
	err := loop.Run(func(l *loop.Loop) {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return &greeter{} })
		if err != nil {
			fmt.Println(err)
			l.Stop()
			return
		}
		t := &talker{send: "carol\nquit\n", done: l.Stop}
		if _, err := l.Connect(srv.Addr().String(), t); err != nil {
			fmt.Println(err) // no callback runs after an error
			l.Stop()
			return
		}
		fmt.Println("Connect returned")
	})
	fmt.Println("stopped:", err)
	// Output:
	// post init
	// Connect returned
	// connected
	// received "hello"
	// received "hi, carol"
	// received "bye"
	// unbind: EOF
	// stopped: <nil>
}

// lastWords answers every new connection with a few lines and closes it.
type lastWords struct{ conn.Base }

func (lastWords) PostInit(c *conn.Conn) {
	for i := 1; i <= 3; i++ {
		_ = c.SendData(fmt.Appendf(nil, "line %d\n", i))
	}
	// Nothing has been written yet: the loop sends in its next I/O phase.
	// Close here could drop the three lines; CloseAfterWriting sends them
	// all, then closes.
	_ = c.CloseAfterWriting()
	fmt.Println("send after CloseAfterWriting:", c.SendData([]byte("too late\n")))
}

// CloseAfterWriting is how a server says its last words: every byte queued
// before it reaches the client, which then reads EOF.
func ExampleConn_CloseAfterWriting() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := loop.RunContext(ctx, func(l *loop.Loop) error {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return lastWords{} })
		if err != nil {
			return err
		}
		addr := srv.Addr().String()
		go func() {
			defer cancel() // stops the loop
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fmt.Println(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			all, err := io.ReadAll(c) // until the server closes
			if err != nil {
				fmt.Println(err)
			}
			fmt.Print(string(all))
		}()
		return nil
	})
	fmt.Println("stopped:", err)
	// Output:
	// send after CloseAfterWriting: conn: use of closed connection
	// line 1
	// line 2
	// line 3
	// stopped: <nil>
}

// bulkSize is well above the high watermark bulk sets.
const bulkSize = 1 << 20

// bulk queues a large answer on a connection whose outbound queue is
// bounded, and closes the connection once the client has taken most of it.
type bulk struct{ conn.Base }

func (bulk) PostInit(c *conn.Conn) {
	// Above 64 KiB queued, stop reading from this client: a client that
	// does not read its answers cannot make the server queue more of them.
	// At 16 KiB or less, reading resumes and Drained runs.
	if err := c.SetOutboundLimits(16<<10, 64<<10, 0); err != nil {
		fmt.Println(err)
		_ = c.Close()
		return
	}
	_ = c.SendData(make([]byte, bulkSize)) // queued whole, sent as the client reads
	fmt.Println("queued:", c.OutboundSize())
	fmt.Println("paused:", c.Paused())
}

// Drained makes bulk a conn.Drainer.
func (bulk) Drained(c *conn.Conn) {
	fmt.Println("drained")
	// A producer would queue its next part here. This one is done.
	_ = c.CloseAfterWriting()
}

// SetOutboundLimits gives a connection backpressure: queuing past the high
// watermark pauses reading from the peer, and a handler that implements
// conn.Drainer hears when the queue is back down to the low one.
func ExampleConn_SetOutboundLimits() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := loop.RunContext(ctx, func(l *loop.Loop) error {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return bulk{} })
		if err != nil {
			return err
		}
		addr := srv.Addr().String()
		go func() {
			defer cancel()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fmt.Println(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			all, err := io.ReadAll(c) // this is what drains the server's queue
			if err != nil {
				fmt.Println(err)
			}
			fmt.Println("client read", len(all), "bytes, all of them:", len(all) == bulkSize)
		}()
		return nil
	})
	fmt.Println("stopped:", err)
	// Output:
	// queued: 1048576
	// paused: true
	// drained
	// client read 1048576 bytes, all of them: true
	// stopped: <nil>
}

// request is a client connection that is also a Deferrable, as
// EventMachine's protocol clients are: it succeeds with the first line the
// server answers, or fails if the connection ends before one arrives.
type request struct {
	loop.Deferrable[string]
	conn.Base
	send  string
	lines conn.LineReader
}

func (r *request) PostInit(c *conn.Conn) {
	_ = c.SendData([]byte(r.send))
}

func (r *request) ReceiveData(c *conn.Conn, data []byte) {
	_ = r.lines.Feed(data, func(line []byte) {
		if r.Status() == loop.DeferredPending {
			r.Succeed(string(line)) // runs the callbacks now
			_ = c.Close()
		}
	})
}

func (r *request) Unbind(c *conn.Conn, reason error) {
	if r.Status() != loop.DeferredPending {
		return // answered, or timed out
	}
	if reason == nil {
		reason = io.ErrUnexpectedEOF
	}
	r.Fail(reason)
}

// A Deferrable lets the code that starts a request say what to do with its
// answer, while a connection handler produces it. The server is upper (see
// ExampleRunContext), which answers in capitals.
func ExampleDeferrable_connection() {
	err := loop.Run(func(l *loop.Loop) {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return upper{} })
		if err != nil {
			fmt.Println(err)
			l.Stop()
			return
		}
		r := &request{send: "hello\n"}
		r.Init(l)
		_ = r.Timeout(5*time.Second, nil) // fail rather than wait forever
		r.Callback(func(answer string) { fmt.Println("answer:", answer); l.Stop() }).
			Errback(func(err error) { fmt.Println("failed:", err); l.Stop() })
		if _, err := l.Connect(srv.Addr().String(), r); err != nil {
			r.Fail(err)
		}
	})
	fmt.Println("stopped:", err)
	// Output:
	// answer: HELLO
	// stopped: <nil>
}
