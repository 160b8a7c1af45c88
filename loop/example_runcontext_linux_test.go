package loop_test

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

// upper is a handler that echoes what it receives in capitals.
type upper struct{ conn.Base }

func (upper) ReceiveData(c *conn.Conn, data []byte) {
	out := make([]byte, len(data))
	for i, b := range data {
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		out[i] = b
	}
	_ = c.SendData(out)
}

// A server is a context (in a program: signal.NotifyContext(ctx,
// os.Interrupt)) and one call; a setup error, such as an address in use,
// stops the loop and comes back from RunContext instead of a panic.
func ExampleRunContext() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := loop.RunContext(ctx, func(l *loop.Loop) error {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return upper{} })
		if err != nil {
			return err
		}
		go func() {
			defer cancel() // as SIGINT would: the loop stops gracefully
			c, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				fmt.Println(err)
				return
			}
			defer c.Close()
			fmt.Fprint(c, "hello")
			buf := make([]byte, 5)
			if _, err := io.ReadFull(c, buf); err != nil {
				fmt.Println(err)
				return
			}
			fmt.Println(string(buf))
		}()
		return nil
	})
	fmt.Println("stopped:", err)
	// Output:
	// HELLO
	// stopped: <nil>
}
