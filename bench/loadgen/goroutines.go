package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringmachine/ringmachine/bench/internal/hist"
)

// runGoroutines is the blocking engine: one goroutine per connection writes
// P messages at once, reads them back, checks them, and repeats.
func runGoroutines(c *Config, ready io.Writer) (*Result, error) {
	conns := make([]net.Conn, c.Conns)
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	for i := range conns {
		nc, err := net.DialTimeout("tcp", c.Addr, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
		conns[i] = nc
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
	for i, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h hist.Hist
			seed := uint64(i) * 7919
			batch := c.Size * c.Pipeline
			buf := make([]byte, batch)
			var off uint64
			_ = nc.SetDeadline(end.Add(c.Drain))
			for once := true; once || time.Now().Before(end); once = false {
				start := time.Now()
				for sent := 0; sent < batch; {
					n := min(batch-sent, maxChunk)
					if _, err := nc.Write(window(seed, off+uint64(sent), n)); err != nil {
						errs.Add(1)
						return
					}
					sent += n
				}
				if _, err := io.ReadFull(nc, buf); err != nil {
					errs.Add(1)
					return
				}
				for got := 0; got < batch; {
					n := min(batch-got, maxChunk)
					want := window(seed, off+uint64(got), n)
					if !bytes.Equal(buf[got:got+n], want) {
						j := firstDiff(buf[got:got+n], want)
						first.CompareAndSwap(nil, mismatchErr(i, off+uint64(got+j), buf[got+j], want[j]))
						errs.Add(1)
						return
					}
					got += n
				}
				off += uint64(batch)
				checked.Add(uint64(batch))
				now := time.Now()
				if now.After(warmEnd) && now.Before(end) {
					lat := uint64(now.Sub(start))
					for range c.Pipeline {
						h.Record(lat)
					}
					reqs.Add(uint64(c.Pipeline))
				}
			}
			mu.Lock()
			total.Merge(&h)
			mu.Unlock()
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
