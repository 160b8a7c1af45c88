package loop_test

import (
	"fmt"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

// shout prints what tr sends back, and its exit status at Unbind.
type shout struct{ conn.Base }

func (shout) PostInit(c *conn.Conn) {
	_ = c.SendData([]byte("hello, child\n"))
	_ = c.CloseWrite() // tr sees the end of its input, and exits after its output
}

func (shout) ReceiveData(_ *conn.Conn, data []byte) { fmt.Printf("%s", data) }

func (shout) Unbind(c *conn.Conn, reason error) {
	st, _ := c.ExitStatus()
	fmt.Println(st, reason)
	loop.Of(c).Stop()
}

// A child process as a connection: its input is what the handler sends,
// its output what it receives.
func ExampleLoop_Popen() {
	err := loop.Run(func(l *loop.Loop) {
		if _, err := l.Popen([]string{"tr", "a-z", "A-Z"}, shout{}, loop.PopenOptions{}); err != nil {
			fmt.Println(err)
			l.Stop()
		}
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// HELLO, CHILD
	// exit status 0 EOF
}

// EventMachine's EM.system: the output and exit status, whatever the code.
func ExampleLoop_System() {
	err := loop.Run(func(l *loop.Loop) {
		d, err := l.System(loop.ShellCommand("echo out; exit 3"), loop.PopenOptions{})
		if err != nil {
			fmt.Println(err)
			l.Stop()
			return
		}
		d.Callback(func(r loop.SystemResult) {
			fmt.Printf("%q %v\n", r.Output, r.Status)
			l.Stop()
		})
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// "out\n" exit status 3
}
