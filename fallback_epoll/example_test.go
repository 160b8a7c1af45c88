//go:build linux

package epoll_test

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	epoll "github.com/ringmachine/ringmachine/fallback_epoll"
)

// Example receives on one end of a socket pair with a multishot receive.
func Example() {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	p, err := epoll.New(epoll.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	const recvToken, sendToken = 1, 2
	if err := p.RecvMultishot(fds[1], recvToken); err != nil {
		fmt.Println(err)
		return
	}
	if err := p.Send(fds[0], [][]byte{[]byte("hello, "), []byte("epoll")}, sendToken); err != nil {
		fmt.Println(err)
		return
	}
	cqes := make([]epoll.Completion, 8)
	for received := 0; received < 12; {
		n, err := p.Wait(time.Second, cqes)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, c := range cqes[:n] {
			switch c.UserData {
			case sendToken:
				fmt.Println("sent", c.Res, "bytes")
			case recvToken:
				received += len(c.Buf)
				fmt.Printf("received %q more=%v\n", c.Buf, c.More()) // Buf is valid until the next Wait
			}
		}
	}
	_ = p.Cancel(recvToken)
	n, _ := p.Wait(time.Second, cqes)
	fmt.Println(cqes[n-1].Err())
	// Output:
	// sent 12 bytes
	// received "hello, epoll" more=true
	// operation canceled
}
