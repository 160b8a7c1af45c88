package loop_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// envFaultSeed, when set, makes TestFaultEcho run that one seed only.
const envFaultSeed = "RINGMACHINE_FAULT_SEED"

// faultSeeds are the seeds TestFaultEcho runs by default: fixed ones, so a
// failure reproduces, and one from the clock, so runs over time cover more.
func faultSeeds(t *testing.T) []uint64 {
	if v := os.Getenv(envFaultSeed); v != "" {
		s, err := strconv.ParseUint(v, 0, 64)
		require.NoError(t, err, "%s", envFaultSeed)
		return []uint64{s}
	}
	return []uint64{1, 2, 3, uint64(time.Now().UnixNano()) & 0xFFFFFF}
}

// faultMix is the fault mix of TestFaultEcho: every kind often enough to
// show up many times in one run.
func faultMix(seed uint64) loop.Faults {
	return loop.Faults{
		Seed:      seed,
		ShortSend: 0.3,
		DeferSend: 0.1,
		Again:     0.03,
		SplitRecv: 0.3,
		NoBufs:    0.03,
		Cancel:    0.02,
		Reset:     0.1,
		Delay:     0.1,
	}
}

// TestFaultEcho streams a tagged random-looking stream over many
// connections through an echo server whose engine (either) is wrapped in
// the fault injector: short sends, deferred sends, EAGAIN, split receives,
// ENOBUFS, spontaneous cancels, resets and delayed completions. The server
// has outbound watermarks low enough that reading pauses and resumes all the
// time, so held bytes and the loop's own cancels meet the injected ones.
// Every byte that comes
// back must be the right byte of the right connection; a connection may end
// early only if the injector reset it, which the server sees as
// ECONNRESET. A failing seed reproduces with RINGMACHINE_FAULT_SEED=seed
// (the injector's choices, not the kernel's timing).
func TestFaultEcho(t *testing.T) {
	const conns, size = 64, 256 << 10
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		var total loop.FaultStats
		for _, seed := range faultSeeds(t) {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Cleanup(func() {
					if t.Failed() {
						t.Logf("reproduce: %s=%d go test -run 'TestFaultEcho/%s/' ./loop/", envFaultSeed, seed, b)
					}
				})
				st := runFaultEcho(t, b, faultMix(seed), conns, size)
				t.Logf("seed %d: %+v", seed, st)
				total.ShortSends += st.ShortSends
				total.DeferredSends += st.DeferredSends
				total.Agains += st.Agains
				total.SplitRecvs += st.SplitRecvs
				total.NoBufs += st.NoBufs
				total.Cancels += st.Cancels
				total.Resets += st.Resets
				total.Delayed += st.Delayed
			})
		}
		if t.Failed() {
			return
		}
		// Not vacuous: every kind of fault was injected.
		assert.Positive(t, total.ShortSends, "short sends")
		assert.Positive(t, total.DeferredSends, "deferred sends")
		assert.Positive(t, total.Agains, "EAGAIN")
		assert.Positive(t, total.SplitRecvs, "split receives")
		assert.Positive(t, total.NoBufs, "ENOBUFS")
		assert.Positive(t, total.Cancels, "cancels")
		assert.Positive(t, total.Resets, "resets")
		assert.Positive(t, total.Delayed, "delays")
	})
}

// faultClient is the outcome of one client connection.
type faultClient struct {
	local string // its address, as the server sees it
	got   int    // bytes echoed back correctly
	err   error  // why it ended early (nil: all came back)
}

func runFaultEcho(t *testing.T, b loop.Backend, f loop.Faults, conns, size int) loop.FaultStats {
	testutil.CheckLeaks(t)
	stats, restore := loop.SetTestFaults(f)
	defer restore()
	var mu sync.Mutex
	unbound := make(map[string]error) // client address -> Unbind reason
	results := make([]faultClient, conns)
	var wrong []error
	aborted := false // under mu, like all
	_, err := runLoop(t, b, loop.Options{}, 120*time.Second, func(l *loop.Loop) {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
			var peer string // known at PostInit; gone from a closed conn
			return &hazardFunc{
				post: func(c *conn.Conn) {
					peer = c.RemoteAddr().String()
					assert.NoError(t, c.SetOutboundLimits(16<<10, 48<<10, 0))
				},
				recv: func(c *conn.Conn, data []byte) { _ = c.SendData(data) },
				unbind: func(c *conn.Conn, reason error) {
					mu.Lock()
					defer mu.Unlock()
					unbound[peer] = reason
				},
			}
		})
		require.NoError(t, err)
		addr := srv.Addr().String()
		go func() {
			defer func() { _ = l.NextTick(l.Stop) }()
			var wg sync.WaitGroup
			all := make([]net.Conn, 0, conns)
			for id := range conns {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					results[id].err = err
					continue
				}
				results[id].local = c.LocalAddr().String()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				mu.Lock()
				all = append(all, c)
				if aborted {
					_ = c.SetDeadline(time.Now())
				}
				mu.Unlock()
				wg.Add(2)
				go func() {
					defer wg.Done()
					for off := 0; off < size; off += 8192 {
						if _, err := c.Write(pattern(id, off, min(8192, size-off))); err != nil {
							return // the reader reports how far the echo got
						}
					}
				}()
				go func() {
					defer wg.Done()
					defer c.Close()
					r := &results[id]
					buf := make([]byte, 8192)
					for r.got < size {
						n, err := c.Read(buf[:min(len(buf), size-r.got)])
						if n > 0 {
							if want := pattern(id, r.got, n); string(want) != string(buf[:n]) {
								r.err = errors.New("wrong bytes")
								// The run has failed: end every stream now
								// rather than at its deadline.
								mu.Lock()
								wrong = append(wrong, fmt.Errorf("conn %d: bytes %d..%d are not its own", id, r.got, r.got+n))
								aborted = true
								for _, c := range all {
									_ = c.SetDeadline(time.Now())
								}
								mu.Unlock()
								return
							}
							r.got += n
						}
						if err != nil {
							r.err = err
							return
						}
					}
				}()
			}
			wg.Wait()
		}()
	})
	require.NoError(t, err)
	for _, e := range wrong {
		t.Error(e)
	}
	st := stats()
	if len(wrong) > 0 {
		return st // the other streams were cut short on purpose
	}
	early := 0
	for id, r := range results {
		if r.err == nil {
			continue
		}
		early++
		reason, ok := unbound[r.local]
		if !ok || !errors.Is(reason, syscall.ECONNRESET) {
			t.Errorf("conn %d (%s) ended after %d of %d bytes (%v) though it was not reset (server: %v)", id, r.local, r.got, size, r.err, reason)
		}
	}
	assert.LessOrEqual(t, early, st.Resets, "only reset connections end early")
	t.Logf("%d of %d connections reset and ended early", early, conns)
	return st
}
