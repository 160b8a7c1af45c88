package loop_test

import (
	"bufio"
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
