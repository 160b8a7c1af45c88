package conn_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

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
