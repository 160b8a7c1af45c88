package loop_test

import (
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

func ExampleGroup() {
	g, err := loop.NewGroup(2, loop.Options{}) // 0: one loop per core
	if err != nil {
		panic(err)
	}
	// One SO_REUSEPORT listener per loop; each handler is made on, and
	// runs on, the loop that accepted its connection.
	srv, err := g.StartServer("127.0.0.1:0", func(l *loop.Loop) conn.Handler { return benchEcho{} })
	if err != nil {
		panic(err)
	}
	var ready atomic.Int32
	err = g.Run(func(l *loop.Loop) {
		// Runs on every loop, on its own thread.
		if ready.Add(1) < int32(g.Len()) {
			return
		}
		go func() {
			c, _ := net.Dial("tcp", srv.Addr().String())
			fmt.Fprint(c, "ping")
			buf := make([]byte, 4)
			_, _ = io.ReadFull(c, buf)
			c.Close()
			fmt.Println("echoed", string(buf))
			// Cross-loop work: loop 0 asks loop 1 to stop the group.
			_ = g.Loop(0).Post(g.Loop(1), g.Stop)
		}()
	})
	fmt.Println("stopped:", err)
	// Output:
	// echoed ping
	// stopped: <nil>
}
