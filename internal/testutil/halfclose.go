package testutil

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// HalfCloseClients runs n clients against the stream server at addr, at most
// 16 at once: client i writes request(i), shuts down its write side at once
// (shutdown(SHUT_WR), as `nc -N` and scripted clients do) and reads until EOF;
// check(i, reply) says whether reply is the whole answer. It returns how many
// replies were lost or wrong, with up to five descriptions. Each client has
// limit to finish.
func HalfCloseClients(addr string, n int, limit time.Duration, request func(i int) []byte, check func(i int, reply []byte) error) (lost int, why []string) {
	const workers = 16
	var mu sync.Mutex
	fail := func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		lost++
		if len(why) < 5 {
			why = append(why, fmt.Sprintf("client %d: %v", i, err))
		}
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := halfCloseOnce(addr, limit, request(i), func(b []byte) error { return check(i, b) }); err != nil {
					fail(i, err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return lost, why
}

func halfCloseOnce(addr string, limit time.Duration, req []byte, check func([]byte) error) error {
	c, err := net.DialTimeout("tcp", addr, limit)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(limit)); err != nil {
		return err
	}
	if _, err := c.Write(req); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("after %d reply bytes: %w", len(reply), err)
	}
	return check(reply)
}
