package loop_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// uringFeatureModes are the io_uring option values the feature tests run
// every core echo with.
var uringFeatureModes = []featureCase{
	{name: "defaults", opts: loop.Options{}},
	{name: "recv=singleshot", opts: loop.Options{URing: loop.URingOptions{Recv: loop.RecvSingleShot}}},
	{name: "sendzc=1", opts: loop.Options{URing: loop.URingOptions{SendZC: 1}}},
	{name: "sendzc=1,unregistered", opts: loop.Options{URing: loop.URingOptions{SendZC: 1}}, hook: loop.SetTestHookNoFixedSendBuffers},
	{name: "sendzc=4096", opts: loop.Options{URing: loop.URingOptions{SendZC: 4096}}},
	{name: "setup=defer-taskrun", opts: loop.Options{URing: loop.URingOptions{Setup: loop.SetupDeferTaskrun}}},
	{name: "setup=coop-taskrun", opts: loop.Options{URing: loop.URingOptions{Setup: loop.SetupCoopTaskrun}}},
	{name: "setup=none", opts: loop.Options{URing: loop.URingOptions{Setup: loop.SetupNoTaskrunFlags}}},
	{name: "submit=per-op", opts: loop.Options{URing: loop.URingOptions{Submit: loop.SubmitPerOp}}},
	{name: "minwait=50us", opts: loop.Options{URing: loop.URingOptions{MinWait: 50 * time.Microsecond}}},
	{name: "minwait=2ms,batch=4", opts: loop.Options{URing: loop.URingOptions{MinWait: 2 * time.Millisecond, MinWaitBatch: 4}}},
	{name: "process-fds", opts: loop.Options{URing: loop.URingOptions{ProcessFDs: true}}},
	{name: "process-fds+sendzc=1", opts: loop.Options{URing: loop.URingOptions{ProcessFDs: true, SendZC: 1}}},
	{name: "recv=multishot-bundle", opts: loop.Options{URing: loop.URingOptions{Recv: loop.RecvMultishotBundle}}},
	{name: "recv=multishot-bundle+small-buffers", opts: loop.Options{RecvBufferSize: 512, RecvBuffers: 8, URing: loop.URingOptions{Recv: loop.RecvMultishotBundle, RecvBuffersMax: 64}}},
	{name: "recv=multishot-bundle+process-fds", opts: loop.Options{URing: loop.URingOptions{Recv: loop.RecvMultishotBundle, ProcessFDs: true}}},
	{name: "sends=one-chunk", opts: loop.Options{}, hook: func() func() { return loop.SetTestHookSendBufs(1) }},
	{name: "all-off", opts: loop.Options{URing: loop.URingOptions{Recv: loop.RecvSingleShot, SendZC: 1, Setup: loop.SetupNoTaskrunFlags, Submit: loop.SubmitPerOp}}},
}

// TestURingFeatureModes runs the 1 MB echo (TCP and Unix) and a 10 MB
// echo stream with every io_uring option value.
func TestURingFeatureModes(t *testing.T) {
	testutil.RequireURing(t)
	for _, m := range uringFeatureModes {
		t.Run(m.name, func(t *testing.T) {
			if m.hook != nil {
				defer m.hook()()
			}
			for _, tc := range []struct {
				name, addr string
				size       int
			}{
				{"tcp-1MB", "127.0.0.1:0", 1 << 20},
				{"unix-1MB", "unix:" + t.TempDir() + "/s.sock", 1 << 20},
				{"tcp-10MB", "127.0.0.1:0", 10 << 20},
			} {
				t.Run(tc.name, func(t *testing.T) {
					testutil.CheckLeaks(t)
					opts := m.opts
					opts.Backend = loop.URing
					zc, bundles := echoOnce(t, opts, tc.addr, tc.size)
					if m.opts.URing.SendZC > 0 && strings.HasPrefix(tc.name, "tcp") {
						assert.Positive(t, zc, "no zero-copy send")
					} else {
						assert.Zero(t, zc, "zero-copy sends")
					}
					switch {
					case m.opts.URing.Recv == loop.RecvMultishot && loop.RecvBundleSuite():
					case m.opts.URing.Recv != loop.RecvMultishotBundle:
						assert.Zero(t, bundles, "receive bundles")
					case m.opts.RecvBufferSize == 512:
						assert.Positive(t, bundles, "no receive filled several buffers")
					}
				})
			}
		})
	}
}

// TestURingMinWaitReachesEngine: the option is applied, not just accepted.
func TestURingMinWaitReachesEngine(t *testing.T) {
	testutil.RequireURing(t)
	for _, d := range []time.Duration{0, 50 * time.Microsecond} {
		var got time.Duration
		_, err := runLoop(t, loop.URing, loop.Options{URing: loop.URingOptions{MinWait: d}}, 5*time.Second, func(l *loop.Loop) {
			got = l.EngineMinWait()
			l.Stop()
		})
		require.NoError(t, err)
		assert.Equal(t, d, got)
	}
}

func TestURingOptionsValidate(t *testing.T) {
	for _, o := range []loop.Options{
		{URing: loop.URingOptions{Recv: loop.RecvMultishotBundle + 1}},
		{URing: loop.URingOptions{SendZC: -1}},
		{URing: loop.URingOptions{Setup: loop.SetupNoTaskrunFlags + 1}},
		{URing: loop.URingOptions{Submit: loop.SubmitPerOp + 1}},
		{URing: loop.URingOptions{MinWait: -1}},
		{URing: loop.URingOptions{MinWaitBatch: -1}},
	} {
		_, err := loop.New(o)
		assert.Error(t, err, "%+v", o)
	}
	// Ignored on epoll.
	testutil.CheckLeaks(t)
	l, err := loop.New(loop.Options{Backend: loop.Epoll, URing: loop.URingOptions{Recv: loop.RecvSingleShot, SendZC: 1, Setup: loop.SetupCoopTaskrun, Submit: loop.SubmitPerOp}})
	require.NoError(t, err)
	require.NoError(t, l.Run(func(l *loop.Loop) { l.Stop() }))
}

// zcPinger sends messages of len(msg) bytes one at a time and checks every
// echo.
type zcPinger struct {
	conn.Base
	rounds int
	r      *rand.Rand
	msg    []byte
	got    []byte
	bad    int
	done   chan struct{}
}

func (p *zcPinger) next(c *conn.Conn) {
	for i := range p.msg {
		p.msg[i] = byte(p.r.Uint32())
	}
	_ = c.SendData(p.msg)
}

func (p *zcPinger) ConnectionCompleted(c *conn.Conn) { p.next(c) }

func (p *zcPinger) ReceiveData(c *conn.Conn, data []byte) {
	p.got = append(p.got, data...)
	if len(p.got) < len(p.msg) {
		return
	}
	if !bytes.Equal(p.got, p.msg) {
		p.bad++
	}
	p.got = p.got[:0]
	if p.rounds--; p.rounds == 0 {
		_ = c.Close()
		return
	}
	p.next(c)
}

func (p *zcPinger) Unbind(*conn.Conn, error) { close(p.done) }

// TestURingSendZC echoes messages with zero-copy sends, regenerating the
// client's message after every echo so that a buffer reused before its
// notification would show. Outbound chunks come from the send slabs. A 64
// KB SendData goes out as SENDMSG_ZC over
// four 16 KiB chunks; 8 KB messages mostly as SEND_ZC of one chunk, which
// names the send slab's fixed buffer unless the slabs are left unregistered.
func TestURingSendZC(t *testing.T) {
	testutil.RequireURing(t)
	for _, size := range []int{64 << 10, 8 << 10} {
		for _, fixed := range []bool{true, false} {
			t.Run(fmt.Sprintf("%dKB/fixed=%v", size>>10, fixed), func(t *testing.T) {
				if !fixed {
					defer loop.SetTestHookNoFixedSendBuffers()()
				}
				testURingSendZC(t, size, fixed, size <= 16<<10)
			})
		}
	}
}

// testURingSendZC runs TestURingSendZC's echo of size-byte messages. With
// fixed (the slabs registered) and oneChunk (messages within one chunk) it
// requires sends from fixed buffers; without fixed, none.
func testURingSendZC(t *testing.T, size int, fixed, oneChunk bool) {
	testutil.CheckLeaks(t)
	l, err := loop.New(loop.Options{Backend: loop.URing, DebugPoisonReceive: true, URing: loop.URingOptions{SendZC: 1024}})
	require.NoError(t, err)
	p := &zcPinger{rounds: 64, r: rand.New(rand.NewPCG(1, 2)), msg: make([]byte, size), done: make(chan struct{})}
	var zc, zcFixed, pinned int
	err = l.Run(func(l *loop.Loop) {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return coreEcho{} })
		if !assert.NoError(t, err) {
			l.Stop()
			return
		}
		_, err = l.Connect(srv.Addr().String(), p)
		assert.NoError(t, err)
		go func() {
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
			}
			l.NextTick(func() {
				zc, zcFixed, pinned = l.ZeroCopySends(), l.FixedZeroCopySends(), l.PinnedSendBuffers()
				l.Stop()
			})
		}()
	})
	require.NoError(t, err)
	assert.Zero(t, l.InFlightOps())
	assert.Zero(t, p.rounds, "rounds left")
	assert.Zero(t, p.bad, "echoes that differ")
	assert.GreaterOrEqual(t, zc, 64, "zero-copy sends")
	// Outbound chunks come from the send slabs, whose chunks a zero-copy
	// send holds until its notification: none of the Go heap to pin.
	assert.Zero(t, pinned, "send buffers pinned per send")
	switch {
	case !fixed:
		assert.Zero(t, zcFixed, "zero-copy sends from fixed buffers")
	case oneChunk:
		assert.GreaterOrEqual(t, zcFixed, 64, "zero-copy sends from fixed buffers")
	}
}

// TestURingSendZCStop stops a loop whose connections have zero-copy sends
// in flight: one client that keeps reading, one that stopped reading (its
// server side is stuck with unacknowledged zero-copy data until the client
// closes). Run returns without error and nothing leaks.
func TestURingSendZCStop(t *testing.T) {
	testutil.RequireURing(t)
	testutil.CheckLeaks(t)
	l, err := loop.New(loop.Options{Backend: loop.URing, StopTimeout: -1, URing: loop.URingOptions{SendZC: 1}})
	require.NoError(t, err)
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- l.Run(func(l *loop.Loop) {
			srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler { return coreEcho{} })
			if err != nil {
				l.Stop()
				addrc <- ""
				return
			}
			addrc <- srv.Addr().String()
		})
	}()
	addr := <-addrc
	require.NotEmpty(t, addr)
	var wg sync.WaitGroup
	block := bytes.Repeat([]byte{'z'}, 64<<10)
	reader, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer reader.Close()
	stuck, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer stuck.Close()
	for i, c := range []net.Conn{reader, stuck} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The stuck client writes 8 MB; the reader until the end.
			for n := 0; i == 0 || n < 128; n++ {
				if _, err := c.Write(block); err != nil {
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(io.Discard, reader)
	}()
	time.Sleep(300 * time.Millisecond)
	zcc := make(chan int, 1)
	require.NoError(t, l.NextTick(func() { zcc <- l.ZeroCopySends() }))
	zc := <-zcc
	l.Stop()
	// The stuck connection's data waits for an ACK that never comes: the
	// client closing with unread data resets it, which ends the wait.
	time.Sleep(200 * time.Millisecond)
	stuck.Close()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	reader.Close()
	wg.Wait()
	assert.Zero(t, l.InFlightOps())
	assert.Positive(t, zc, "zero-copy sends")
}

// TestZeroCopyCloseNonReader: with zero-copy sends, a connection whose peer
// stopped reading still closes. The kernel posts a zero-copy send's
// notification only once it no longer reads the buffers, which for a peer
// that does not read is after the socket is closed; a loop that waited for
// the notification before closing the socket would keep it, and its record,
// for ever. Here the record is freed soon after Close.
func TestZeroCopyCloseNonReader(t *testing.T) {
	testutil.RequireURing(t)
	testutil.CheckLeaks(t)
	freed := false
	_, err := runLoop(t, loop.URing, loop.Options{URing: loop.URingOptions{SendZC: 1}}, 20*time.Second, func(l *loop.Loop) {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
			return &hazardFunc{post: func(c *conn.Conn) {
				_ = c.SendData(make([]byte, 8<<20)) // far more than the socket buffers hold
				_, _ = l.AddTimer(200*time.Millisecond, func() { _ = c.Close() })
			}}
		})
		require.NoError(t, err)
		peer, err := net.Dial("tcp", srv.Addr().String())
		require.NoError(t, err)
		_ = l.AddShutdownHook(func() { peer.Close() })
		start := time.Now()
		var check func()
		check = func() {
			if l.LiveRecords() == 1 { // the listener alone
				freed = true
				l.Stop()
				return
			}
			if time.Since(start) > 5*time.Second {
				l.Stop()
				return
			}
			_, _ = l.AddTimer(10*time.Millisecond, check)
		}
		_, _ = l.AddTimer(300*time.Millisecond, check)
	})
	require.NoError(t, err)
	assert.True(t, freed, "the closed connection's record is freed although its peer never read")
}

// TestURingSendSlabs: on io_uring a connection's outbound chunks come from
// the engine's pinned send slabs, so request/response traffic pins no send
// buffer; a queue larger than the slabs (16 MiB echoed to a client that
// reads only once it has written everything) spills into chunks of the Go
// heap, pinned per send, and every byte still comes back in order.
func TestURingSendSlabs(t *testing.T) {
	testutil.RequireURing(t)
	testutil.CheckLeaks(t)
	l, err := loop.New(loop.Options{Backend: loop.URing})
	require.NoError(t, err)
	var pinsSmall, pinsBig int
	var received atomic.Int64
	err = l.Run(func(l *loop.Loop) {
		srv, err := l.StartServer("127.0.0.1:0", func() conn.Handler {
			return &hazardFunc{recv: func(c *conn.Conn, data []byte) {
				received.Add(int64(len(data)))
				_ = c.SendData(data)
			}}
		})
		if !assert.NoError(t, err) {
			l.Stop()
			return
		}
		addr := srv.Addr().String()
		go func() {
			defer l.Stop()
			// A small, fixed receive buffer (set before the handshake,
			// so autotuning never grows it) keeps the echo in the
			// server's queue rather than in the kernel.
			d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
				})
				return errors.Join(err, serr)
			}}
			c, err := d.Dial("tcp", addr)
			if !assert.NoError(t, err) {
				return
			}
			defer c.Close()
			require.NoError(t, c.SetDeadline(time.Now().Add(60*time.Second)))
			r := rand.New(rand.NewPCG(3, 4))
			msg, got := make([]byte, 64), make([]byte, 64)
			for range 200 {
				for i := range msg {
					msg[i] = byte(r.Uint32())
				}
				_, err := c.Write(msg)
				require.NoError(t, err)
				_, err = io.ReadFull(c, got)
				require.NoError(t, err)
				require.Equal(t, msg, got)
			}
			pins := make(chan int)
			l.NextTick(func() { pins <- l.PinnedSendBuffers() })
			pinsSmall = <-pins

			big := make([]byte, 16<<20)
			for i := range big {
				big[i] = byte(r.Uint32())
			}
			_, err = c.Write(big)
			require.NoError(t, err)
			// Read nothing back before the server has read it all: its
			// queue then holds all but what the kernel buffers took
			// (a few MiB), well past the slabs' 4 MiB.
			want := int64(200*len(msg) + len(big))
			if !assert.Eventually(t, func() bool { return received.Load() == want },
				30*time.Second, time.Millisecond, "the server reads the whole upload") {
				return
			}
			back := make([]byte, len(big))
			_, err = io.ReadFull(c, back)
			require.NoError(t, err)
			if !bytes.Equal(big, back) {
				i := 0
				for big[i] == back[i] {
					i++
				}
				t.Errorf("echo differs from byte %d on", i)
			}
			l.NextTick(func() { pins <- l.PinnedSendBuffers() })
			pinsBig = <-pins
		}()
	})
	require.NoError(t, err)
	assert.Zero(t, pinsSmall, "round trips pin no send buffer")
	assert.Positive(t, pinsBig, "a queue beyond the slabs pins its heap chunks")
}
