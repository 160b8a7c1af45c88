package loop_test

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

// groupEcho sends back whatever it receives.
type groupEcho struct{ conn.Base }

func (groupEcho) ReceiveData(c *conn.Conn, data []byte) {
	_ = c.SendData(data) // SendData copies: data is only valid during the call
}

func ExampleGroup() {
	g, err := loop.NewGroup(2, loop.Options{}) // 0: one loop per core
	if err != nil {
		fmt.Println(err)
		return
	}
	// One SO_REUSEPORT listener per loop; each handler is made on, and
	// runs on, the loop that accepted its connection. The listeners are
	// open when StartServer returns: clients may connect at once.
	srv, err := g.StartServer("127.0.0.1:0", func(l *loop.Loop) conn.Handler { return groupEcho{} })
	if err != nil {
		fmt.Println(err)
		return
	}
	err = g.Run(func(l *loop.Loop) {
		// Runs on every loop, on its own thread; one client is enough.
		if l.Index() != 0 {
			return
		}
		go func() {
			// Cross-loop work: loop 0 asks loop 1 to stop the group.
			defer func() { _ = g.Loop(0).Post(g.Loop(1), g.Stop) }()
			c, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				fmt.Println(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second)) // never wait forever
			if _, err := io.WriteString(c, "ping"); err != nil {
				fmt.Println(err)
				return
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil {
				fmt.Println(err)
				return
			}
			fmt.Println("echoed", string(buf))
		}()
	})
	fmt.Println("stopped:", err)
	// Output:
	// echoed ping
	// stopped: <nil>
}
