package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/bench/internal/hist"
)

// econn is one connection of the epoll engine.
type econn struct {
	fd       int
	id       int
	seed     uint64
	sent     uint64 // stream bytes written
	want     uint64 // stream bytes that should have been written
	recv     uint64 // stream bytes read and checked
	done     uint64 // messages completed
	issued   uint64 // messages issued (want / size)
	sentAt   []int64
	writeOn  bool // EPOLLOUT armed
	closed   bool
	idleDone bool
}

// dial opens a blocking TCP connection (connect bounded by SO_SNDTIMEO),
// then makes it nonblocking with TCP_NODELAY.
func dial(addr string) (int, error) {
	ap, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return -1, err
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ip4 := ap.IP.To4(); ip4 != nil {
		s := &unix.SockaddrInet4{Port: ap.Port}
		copy(s.Addr[:], ip4)
		sa = s
	} else {
		family = unix.AF_INET6
		s := &unix.SockaddrInet6{Port: ap.Port}
		copy(s.Addr[:], ap.IP.To16())
		sa = s
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	tv := unix.Timeval{Sec: 5}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

type engine struct {
	c       *Config
	epfd    int
	conns   []econn
	buf     []byte
	h       hist.Hist
	now     int64 // ns since t0, refreshed once per wake-up
	issuing bool
	count   bool // count completions (after warm-up)
	reqs    uint64
	checked uint64
	errs    uint64
	first   string
	live    int
}

func runEpoll(c *Config, ready io.Writer) (*Result, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(epfd)
	e := &engine{c: c, epfd: epfd, conns: make([]econn, c.Conns), buf: make([]byte, maxChunk)}
	defer func() {
		for i := range e.conns {
			if !e.conns[i].closed && e.conns[i].fd > 0 {
				unix.Close(e.conns[i].fd)
			}
		}
	}()
	sentAt := make([]int64, c.Conns*c.Pipeline)
	for i := range e.conns {
		fd, err := dial(c.Addr)
		if err != nil {
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
		ec := &e.conns[i]
		*ec = econn{fd: fd, id: i, seed: uint64(i) * 7919, sentAt: sentAt[i*c.Pipeline : (i+1)*c.Pipeline : (i+1)*c.Pipeline]}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, err
		}
	}
	e.live = c.Conns
	t0 := time.Now()
	clock := func() { e.now = int64(time.Since(t0)) }

	if c.Idle {
		// One message per connection, then hold.
		for i := range e.conns {
			e.issue(&e.conns[i], 1)
		}
		e.idleWait(clock, 30*time.Second)
		if e.errs > 0 {
			return nil, fmt.Errorf("idle round trip: %d errors (%s)", e.errs, e.first)
		}
		fmt.Fprintln(ready, "READY")
		time.Sleep(c.Hold)
		return result(&e.h, e.reqs, time.Since(t0), e.checked, e.errs, e.first, c.Conns), nil
	}

	e.issuing = true
	for i := range e.conns {
		e.issue(&e.conns[i], c.Pipeline)
	}
	warmEnd := int64(c.Warmup)
	end := warmEnd + int64(c.Duration)
	e.count = warmEnd == 0
	events := make([]unix.EpollEvent, 512)
	var measured time.Duration
	for e.live > 0 {
		clock()
		if !e.count && e.issuing && e.now >= warmEnd {
			e.count = true
		}
		if e.issuing && e.now >= end {
			e.issuing = false
			measured = time.Duration(e.now - warmEnd)
		}
		if !e.issuing && (e.outstanding() == 0 || e.now >= end+int64(c.Drain)) {
			break
		}
		wait := (end - e.now) / 1e6
		if !e.issuing {
			wait = (end + int64(c.Drain) - e.now) / 1e6
		}
		n, err := unix.EpollWait(epfd, events, int(min(max(wait, 1), 100)))
		if err == unix.EINTR {
			n = 0 // a signal (the Go runtime's preemption, say): n is -1
		} else if err != nil {
			return nil, err
		}
		clock()
		for _, ev := range events[:n] {
			ec := &e.conns[ev.Fd]
			if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
				e.read(ec)
			}
			if !ec.closed && ev.Events&unix.EPOLLOUT != 0 {
				e.flush(ec)
			}
		}
	}
	if measured == 0 {
		measured = time.Duration(e.now - warmEnd)
	}
	if o := e.outstanding(); o > 0 {
		e.errs += o
		if e.first == "" {
			e.first = fmt.Sprintf("%d replies missing after the drain (%s)", o, e.stuck(3))
		}
	}
	return result(&e.h, e.reqs, measured, e.checked, e.errs, e.first, c.Conns), nil
}

func (e *engine) idleWait(clock func(), limit time.Duration) {
	events := make([]unix.EpollEvent, 512)
	deadline := time.Now().Add(limit)
	for e.outstanding() > 0 && time.Now().Before(deadline) {
		n, err := unix.EpollWait(e.epfd, events, 100)
		if err == unix.EINTR {
			n = 0 // n is -1 on an interrupted wait
		} else if err != nil {
			e.fail(&e.conns[0], err.Error())
			return
		}
		clock()
		for _, ev := range events[:n] {
			ec := &e.conns[ev.Fd]
			if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
				e.read(ec)
			}
			if !ec.closed && ev.Events&unix.EPOLLOUT != 0 {
				e.flush(ec)
			}
		}
	}
	if o := e.outstanding(); o > 0 {
		e.errs += o
		e.first = fmt.Sprintf("%d replies missing", o)
	}
}

// stuck describes up to n connections with replies outstanding: how much
// of their requests was written and how much of it came back, which tells a
// server that stopped reading from one that stopped answering.
func (e *engine) stuck(n int) string {
	var parts []string
	for i := range e.conns {
		ec := &e.conns[i]
		if ec.closed || ec.issued == ec.done {
			continue
		}
		if len(parts) == n {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, e.state(ec))
	}
	return strings.Join(parts, "; ")
}

// state names ec and how far its stream got: "conn 3: wrote 100 of 200
// bytes, read back 50".
func (e *engine) state(ec *econn) string {
	return fmt.Sprintf("conn %d: wrote %d of %d bytes, read back %d", ec.id, ec.sent, ec.want, ec.recv)
}

// outstanding is the number of messages issued and not yet answered on
// connections still open.
func (e *engine) outstanding() uint64 {
	var n uint64
	for i := range e.conns {
		if !e.conns[i].closed {
			n += e.conns[i].issued - e.conns[i].done
		}
	}
	return n
}

// issue queues n more messages on ec and writes what it can.
func (e *engine) issue(ec *econn, n int) {
	p := uint64(e.c.Pipeline)
	for range n {
		ec.sentAt[ec.issued%p] = e.now
		ec.issued++
	}
	ec.want = ec.issued * uint64(e.c.Size)
	e.flush(ec)
}

// flush writes ec's pending bytes; what the socket does not take waits for
// EPOLLOUT.
func (e *engine) flush(ec *econn) {
	for ec.sent < ec.want {
		n := int(min(ec.want-ec.sent, maxChunk))
		w, err := unix.Write(ec.fd, window(ec.seed, ec.sent, n))
		if w > 0 {
			ec.sent += uint64(w)
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			e.fail(ec, e.state(ec)+": write: "+err.Error())
			return
		}
	}
	on := ec.sent < ec.want
	if on != ec.writeOn {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ec.id)}
		if on {
			ev.Events |= unix.EPOLLOUT
		}
		_ = unix.EpollCtl(e.epfd, unix.EPOLL_CTL_MOD, ec.fd, &ev)
		ec.writeOn = on
	}
}

// read reads once, checks the bytes, completes messages and issues as many
// new ones (one write).
func (e *engine) read(ec *econn) {
	n, err := unix.Read(ec.fd, e.buf)
	if err == unix.EAGAIN {
		return
	}
	if err != nil {
		e.fail(ec, e.state(ec)+": read: "+err.Error())
		return
	}
	if n == 0 {
		e.fail(ec, e.state(ec)+": unexpected EOF")
		return
	}
	if uint64(n) > ec.sent-ec.recv {
		e.fail(ec, fmt.Sprintf("%s: %d bytes more than sent", e.state(ec), uint64(n)-(ec.sent-ec.recv)))
		return
	}
	got := e.buf[:n]
	want := window(ec.seed, ec.recv, n)
	if !bytes.Equal(got, want) {
		i := firstDiff(got, want)
		e.fail(ec, mismatchErr(ec.id, ec.recv+uint64(i), got[i], want[i]))
		return
	}
	e.checked += uint64(n)
	ec.recv += uint64(n)
	size, p := uint64(e.c.Size), uint64(e.c.Pipeline)
	completed := ec.recv / size
	k := completed - ec.done
	if k == 0 {
		return
	}
	for m := ec.done; m < completed; m++ {
		if e.count {
			e.h.Record(uint64(e.now - ec.sentAt[m%p]))
		}
	}
	if e.count && e.issuing {
		e.reqs += k
	}
	ec.done = completed
	if e.issuing {
		e.issue(ec, int(k))
	}
}

func (e *engine) fail(ec *econn, msg string) {
	e.errs++
	if e.first == "" {
		e.first = msg
	}
	if !ec.closed {
		ec.closed = true
		e.live--
		_ = unix.EpollCtl(e.epfd, unix.EPOLL_CTL_DEL, ec.fd, nil)
		unix.Close(ec.fd)
	}
}
