package epoll

import "golang.org/x/sys/unix"

// attempt makes o's system call once, or a few times for a multishot op
// within its budget, and posts the resulting completion. EAGAIN leaves o
// waiting for readiness (see wouldBlock).
func (p *Poller) attempt(o *op) {
	if o.kind.multishot() {
		if o.waitSeq != p.waitSeq {
			o.waitSeq, o.spent = p.waitSeq, 0
		}
		if o.spent >= multishotBudget {
			p.carryOver(o)
			return
		}
	}
	switch o.kind {
	case kindAccept:
		p.accept(o)
	case kindRecvMultishot:
		p.recvMultishot(o)
	case kindRecv:
		n, err := ignoringEINTR(&p.syscalls, func() (int, error) { return unix.Read(o.fd, o.buf) })
		p.complete(o, n, err, o.buf)
	case kindRecvFrom:
		var from unix.Sockaddr
		n, err := ignoringEINTR(&p.syscalls, func() (int, error) {
			n, sa, err := unix.Recvfrom(o.fd, o.buf, 0)
			from = sa
			return n, err
		})
		if err == unix.EAGAIN {
			p.wouldBlock(o)
			return
		}
		if err != nil {
			p.finish(o, errnoRes(err))
			return
		}
		p.finishWith(o, Completion{UserData: o.userData, Res: int32(n), Buf: o.buf[:n:n], From: from})
	case kindSend:
		bufs := o.bufs[:min(len(o.bufs), maxIOV)]
		// sendmsg with MSG_NOSIGNAL rather than write(v): a peer that has gone
		// makes the send fail with EPIPE instead of raising SIGPIPE, which a
		// program that Notify's SIGPIPE would otherwise receive for every
		// reply written after its client closed (io_uring sends pass the same flag).
		n, err := ignoringEINTR(&p.syscalls, func() (int, error) {
			if len(bufs) == 1 {
				return unix.SendmsgN(o.fd, bufs[0], nil, nil, unix.MSG_NOSIGNAL)
			}
			return unix.SendmsgBuffers(o.fd, bufs, nil, nil, unix.MSG_NOSIGNAL)
		})
		p.complete(o, n, err, nil)
	case kindWrite:
		bufs := o.bufs[:min(len(o.bufs), maxIOV)]
		n, err := ignoringEINTR(&p.syscalls, func() (int, error) {
			if len(bufs) == 1 {
				return unix.Write(o.fd, bufs[0])
			}
			return unix.Writev(o.fd, bufs)
		})
		p.complete(o, n, err, nil)
	case kindSendTo:
		n, err := ignoringEINTR(&p.syscalls, func() (int, error) {
			return unix.SendmsgN(o.fd, o.buf, nil, o.sa, unix.MSG_NOSIGNAL)
		})
		p.complete(o, n, err, nil)
	case kindConnect:
		p.connect(o)
	case kindSplice:
		n, err := ignoringEINTR(&p.syscalls, func() (int, error) {
			if o.off < 0 {
				return unix.Sendfile(o.fd, o.inFD, nil, o.n)
			}
			off := o.off
			return unix.Sendfile(o.fd, o.inFD, &off, o.n)
		})
		p.complete(o, n, err, nil)
	case kindSpliceIn:
		// SPLICE_F_NONBLOCK: the pipe never blocks either (it has room, but
		// the flag makes sure); EAGAIN is the socket's.
		n, err := ignoringEINTR(&p.syscalls, func() (int, error) {
			n, err := unix.Splice(o.fd, nil, o.inFD, nil, o.n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			return int(n), err
		})
		p.complete(o, n, err, nil)
	case kindPollIn, kindPollOut:
		fds := []unix.PollFd{{Fd: int32(o.fd), Events: int16(o.n)}}
		n, err := ignoringEINTR(&p.syscalls, func() (int, error) { return unix.Poll(fds, 0) })
		switch {
		case err != nil:
			p.finish(o, errnoRes(err))
		case n == 0 || fds[0].Revents == 0:
			p.wouldBlock(o)
		default:
			p.finish(o, int32(uint16(fds[0].Revents)))
		}
	case kindSpliceOut:
		n, err := ignoringEINTR(&p.syscalls, func() (int, error) {
			n, err := unix.Splice(o.inFD, nil, o.fd, nil, o.n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			return int(n), err
		})
		p.complete(o, n, err, nil)
	}
}

// complete ends a one-shot o with the outcome of its system call: EAGAIN
// waits, an error becomes -errno, n the result (with Buf = buf[:n] if buf is
// not nil).
func (p *Poller) complete(o *op, n int, err error, buf []byte) {
	switch {
	case err == unix.EAGAIN:
		p.wouldBlock(o)
	case err != nil:
		p.finish(o, errnoRes(err))
	default:
		c := Completion{UserData: o.userData, Res: int32(n)}
		if buf != nil {
			c.Buf = buf[:n:n]
		}
		p.finishWith(o, c)
	}
}

// accept accepts one connection for a multishot accept.
func (p *Poller) accept(o *op) {
	nfd, err := ignoringEINTR(&p.syscalls, func() (int, error) {
		nfd, _, err := unix.Accept4(o.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return nfd, err
	})
	switch err {
	case nil:
		o.spent++
		p.post(Completion{UserData: o.userData, Res: int32(nfd), Flags: FlagMore})
		p.enqueue(o) // behind the others: accept again later in this Wait
	case unix.ECONNABORTED:
		// The peer gave up while queued: not an error of the listener.
		o.spent++
		p.enqueue(o)
	case unix.EAGAIN:
		p.wouldBlock(o)
	default:
		p.finish(o, errnoRes(err))
	}
}

// recvMultishot reads once into the arena for a multishot receive.
func (p *Poller) recvMultishot(o *op) {
	size := p.opts.RecvBufferSize
	if p.arena == nil {
		p.arena = make([]byte, p.opts.RecvBuffers*size)
	}
	if len(p.arena)-p.arenaOff < size {
		p.carryOver(o) // arena full until the next Wait: the data waits in the kernel
		return
	}
	buf := p.arena[p.arenaOff : p.arenaOff+size]
	n, err := ignoringEINTR(&p.syscalls, func() (int, error) { return unix.Read(o.fd, buf) })
	switch {
	case err == unix.EAGAIN:
		p.wouldBlock(o)
	case err != nil:
		p.finish(o, errnoRes(err))
	case n == 0:
		p.finish(o, 0) // end of stream
	default:
		p.arenaOff += n
		o.spent++
		p.post(Completion{UserData: o.userData, Res: int32(n), Flags: FlagMore, Buf: buf[:n:n]})
		if n < size && p.shortReadDrains(o.fd) {
			// A short read emptied the socket's receive queue: anything that
			// arrives later raises a new edge, so the read that would only
			// return EAGAIN is skipped (one system call per message saved).
			p.wouldBlock(o)
			return
		}
		p.enqueue(o)
	}
}

// connect starts a connect(2), or after writability checks its outcome.
func (p *Poller) connect(o *op) {
	if !o.connecting {
		// Not through ignoringEINTR: an interrupted connect continues in the
		// background and a second call would report EALREADY.
		p.syscalls++
		switch err := unix.Connect(o.fd, o.sa); err {
		case nil, unix.EISCONN:
			p.finish(o, 0)
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			o.connecting = true
			p.wouldBlock(o) // not writable until connected, whatever was cached
		default:
			p.finish(o, errnoRes(err))
		}
		return
	}
	soErr, err := ignoringEINTR(&p.syscalls, func() (int, error) {
		return unix.GetsockoptInt(o.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	})
	if err != nil {
		p.finish(o, errnoRes(err))
		return
	}
	switch errno := unix.Errno(soErr); errno {
	case 0, unix.EISCONN:
		// Writable without error can be spurious (an event from before the
		// connect): only a peer name proves the connection.
		_, err := ignoringEINTR(&p.syscalls, func() (int, error) {
			_, err := unix.Getpeername(o.fd)
			return 0, err
		})
		if err == unix.ENOTCONN {
			p.wouldBlock(o)
			return
		}
		p.finish(o, 0)
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		p.wouldBlock(o)
	default:
		p.finish(o, -int32(errno))
	}
}

// shortReadDrains reports whether a short read from fd means its receive
// queue is empty, so that the next edge will announce more: true for a
// stream socket that is registered (an EPOLL_CTL_ADD reports the current
// state as an edge, so an unregistered fd is also safe, but wouldBlock
// registers it anyway) and has not reported a hang-up. After EPOLLRDHUP the
// peer's FIN may sit behind the data already, with no edge left to come, so
// the socket is read until it returns 0. For other descriptors (pipes,
// datagram sockets) a short read promises nothing.
func (p *Poller) shortReadDrains(fd int) bool {
	fs := p.fds.get(fd)
	if fs == nil || fs.hup {
		return false
	}
	if fs.sockType == 0 {
		t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil {
			t = -1 // not a socket
		}
		fs.sockType = t
	}
	return fs.sockType == unix.SOCK_STREAM
}
