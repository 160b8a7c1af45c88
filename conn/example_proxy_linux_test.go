package conn_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

// relay reads one line, "CONNECT host:port", connects there and from then
// on splices both directions between its client and that backend.
type relay struct {
	conn.Base
	line []byte
}

func (r *relay) ReceiveData(c *conn.Conn, data []byte) {
	r.line = append(r.line, data...)
	i := bytes.IndexByte(r.line, '\n')
	if i < 0 {
		return // the line is not whole yet
	}
	addr, ok := bytes.CutPrefix(r.line[:i], []byte("CONNECT "))
	if !ok {
		_ = c.Close()
		return
	}
	backend, err := loop.Of(c).Connect(string(addr), conn.Base{})
	if err != nil {
		_ = c.Close()
		return
	}
	_ = c.SendData([]byte("OK\n"))
	// From now on neither handler sees a byte: the kernel moves them. What
	// came after the line in this chunk is ours to send on first; the
	// backend queues it until its connect completes.
	_ = backend.SendData(r.line[i+1:])
	_ = c.ProxyTo(backend, 0)
	_ = backend.ProxyTo(c, 0)
}

// ProxyTo hands a connection's bytes to the kernel once the handler has
// read what it needs: here a CONNECT line, then a splice in each direction
// between the client and an echo backend.
func ExampleConn_ProxyTo() {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = loop.RunContext(ctx, func(l *loop.Loop) error {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return &relay{} })
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
			fmt.Fprintf(c, "CONNECT %s\nhello through the relay\n", echo.Addr())
			r := bufio.NewReader(c)
			for range 2 {
				line, err := r.ReadString('\n')
				if err != nil {
					fmt.Println(err)
					return
				}
				fmt.Print(line)
			}
		}()
		return nil
	})
	fmt.Println("stopped:", err)
	// Output:
	// OK
	// hello through the relay
	// stopped: <nil>
}
