package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringmachine/ringmachine/bench/internal/hist"
)

// dialTimeout bounds a connect (and with TLS its handshake).
const dialTimeout = 5 * time.Second

// dial opens one connection before deadline: TCP, and with c.TLS a
// completed handshake.
func (c *Config) dial(deadline time.Time) (net.Conn, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if c.tlsConf == nil {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", c.Addr)
	}
	d := tls.Dialer{Config: c.tlsConf}
	nc, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return nc, nil
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// dialAll opens every connection, 32 at a time (a TLS handshake costs the
// server a few hundred µs of CPU: one at a time would take long).
func (c *Config) dialAll(conns []net.Conn) error {
	errs := make([]error, len(conns))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], errs[i] = c.dial(time.Now().Add(dialTimeout))
			<-sem
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}
	return nil
}

// runGoroutines is the blocking engine: one goroutine per connection writes
// P messages at once, reads them back, checks them, and repeats. With
// c.Handshake each goroutine is a client that connects for every round and
// closes after it.
func runGoroutines(c *Config, ready io.Writer) (*Result, error) {
	conns := make([]net.Conn, c.Conns)
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	if !c.Handshake {
		if err := c.dialAll(conns); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	warmEnd := t0.Add(c.Warmup)
	end := warmEnd.Add(c.Duration)
	if c.Idle {
		end = t0 // one round each
	}
	var (
		mu      sync.Mutex
		total   hist.Hist
		reqs    atomic.Uint64
		checked atomic.Uint64
		errs    atomic.Uint64
		first   atomic.Value
		wg      sync.WaitGroup
	)
	fail := func(msg string) {
		errs.Add(1)
		first.CompareAndSwap(nil, msg)
	}
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h hist.Hist
			defer func() {
				mu.Lock()
				total.Merge(&h)
				mu.Unlock()
			}()
			seed := uint64(i) * 7919
			batch := c.Size * c.Pipeline
			buf := make([]byte, batch)
			var off uint64
			nc := conns[i]
			if nc != nil {
				_ = nc.SetDeadline(end.Add(c.Drain))
			}
			for once := true; once || time.Now().Before(end); once = false {
				start := time.Now()
				if c.Handshake {
					var err error
					if nc, err = c.dial(earliest(start.Add(dialTimeout), end.Add(c.Drain))); err != nil {
						fail(fmt.Sprintf("conn %d: dial: %v", i, err))
						return
					}
					conns[i] = nc // closed by runGoroutines should this round fail
					_ = nc.SetDeadline(end.Add(c.Drain))
				}
				for sent := 0; sent < batch; {
					n := min(batch-sent, maxChunk)
					if _, err := nc.Write(window(seed, off+uint64(sent), n)); err != nil {
						fail(fmt.Sprintf("conn %d: write: %v", i, err))
						return
					}
					sent += n
				}
				if n, err := io.ReadFull(nc, buf); err != nil {
					fail(fmt.Sprintf("conn %d: read back %d of %d bytes: %v", i, n, batch, err))
					return
				}
				for got := 0; got < batch; {
					n := min(batch-got, maxChunk)
					want := window(seed, off+uint64(got), n)
					if !bytes.Equal(buf[got:got+n], want) {
						j := firstDiff(buf[got:got+n], want)
						fail(mismatchErr(i, off+uint64(got+j), buf[got+j], want[j]))
						return
					}
					got += n
				}
				off += uint64(batch)
				checked.Add(uint64(batch))
				if c.Handshake {
					nc.Close()
					conns[i] = nil
				}
				now := time.Now()
				if now.After(warmEnd) && now.Before(end) {
					lat := uint64(now.Sub(start))
					for range c.Pipeline {
						h.Record(lat)
					}
					reqs.Add(uint64(c.Pipeline))
				}
			}
		}()
		if c.Idle {
			wg.Wait() // serially: one round trip per connection
		}
	}
	wg.Wait()
	f, _ := first.Load().(string)
	if c.Idle {
		if errs.Load() > 0 {
			return nil, fmt.Errorf("idle round trip: %d errors (%s)", errs.Load(), f)
		}
		fmt.Fprintln(ready, "READY")
		time.Sleep(c.Hold)
		return result(&total, 0, time.Since(t0), checked.Load(), 0, "", c.Conns), nil
	}
	return result(&total, reqs.Load(), c.Duration, checked.Load(), errs.Load(), f, c.Conns), nil
}
