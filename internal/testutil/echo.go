package testutil

import (
	"io"
	"net"
	"sync"
	"testing"
)

// ServeEcho serves ln with Go's net: a goroutine per connection copying
// what it reads back until EOF, then closing (a backend nobody here wrote
// the reactor of). stop closes ln and waits for the connections' goroutines
// (their peers must have closed); the test's cleanup calls it too.
func ServeEcho(t testing.TB, ln net.Listener) (stop func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { ln.Close(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// EchoOnce writes msg to c and checks that exactly msg comes back.
func EchoOnce(t testing.TB, c io.ReadWriter, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("echo: write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo: read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
}
