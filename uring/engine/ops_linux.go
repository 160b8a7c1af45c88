package engine

import (
	"fmt"
	"time"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

// AcceptMultishot accepts connections on the listening socket fd: one
// completion per connection (Res = the new fd, non-blocking and
// close-on-exec) with FlagMore, until a final completion (an error such as
// -EMFILE, or -ECANCELED); the caller re-arms it.
//
// Errors (nothing was submitted): ErrClosed; unix.EINVAL for a reserved
// token; unix.EBADF for a negative fd; io_uring_enter's when the SQ was
// full and submitting failed.
func (e *Engine) AcceptMultishot(fd int, ud uint64) error {
	if err := e.check("accept", fd, ud); err != nil {
		return err
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	s.PrepAcceptMultishot(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	s.SetUserData(ud)
	e.ops++
	return nil
}

// RecvMultishot reads from the stream socket fd into the engine's provided
// buffers: completions with Res = n > 0, Buf = the bytes (valid until the
// next Wait) and FlagMore; a final completion at EOF (Res 0), on error, on
// cancel, or with -ENOBUFS when the buffers ran out (the ring has grown if
// it could: re-arm it; the bytes wait in the socket). Arm one receive per
// socket at a time.
//
// With Options.RecvBundle one kernel completion may carry several buffers:
// Wait reports them as consecutive completions, one per buffer, all but the
// last with FlagMore. A bundle that took the last free buffers ends the
// receive with its bytes (the last of them has no FlagMore): re-arm it as
// after -ENOBUFS.
//
// The engine works around kernel races (seen on Linux 6.18) that strand a
// multishot receive for ever: see hangup_linux.go. The workaround may end a
// receive with -ECANCELED the caller did not ask for (its peer is gone):
// re-arm it as after -ENOBUFS, and the rest of the bytes, then the EOF or
// the error, arrive in order. Errors as AcceptMultishot.
func (e *Engine) RecvMultishot(fd int, ud uint64) error {
	if err := e.check("recv", fd, ud); err != nil {
		return err
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	f, _ := fdOf(fd)
	s.PrepRecvMultishot(f, 0)
	target(s, fd)
	s.SetBufGroup(e.br.Group())
	if e.opts.RecvPollFirst {
		s.SetIOPrio(uring.RecvsendPollFirst)
	}
	if e.opts.RecvBundle {
		s.SetIOPrio(uring.RecvsendBundle)
		// At most bundleBuffers per completion: a completion that reaches
		// it also ends the kernel's retries for this socket in that round
		// (IORING_RECV_MSHOT_CAP), so one socket cannot take every free
		// buffer at once, nor a pausing one pile up megabytes.
		s.Len = uint32(bundleBuffers * e.br.BufSize())
	}
	s.SetUserData(ud)
	e.ops++
	e.watchHangup(fd, ud)
	return nil
}

// Recv reads once from fd into buf (a stream read, or one datagram): Res = n
// (0 at end of stream), Buf = buf[:n]. buf belongs to the engine until the
// completion.
//
// Errors as AcceptMultishot, and unix.EINVAL for an empty buf.
func (e *Engine) Recv(fd int, buf []byte, ud uint64) error {
	if err := e.check("recv", fd, ud); err != nil {
		return err
	}
	if len(buf) == 0 {
		return fmt.Errorf("engine: recv fd %d: empty buffer: %w", fd, unix.EINVAL)
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	idx := e.newRow(rowRecv, fd, ud, true)
	m := e.rows[idx].mem
	m.buf = buf
	// Memory: the kernel writes buf until the CQE; m keeps it reachable and
	// the pin in place until the row is freed.
	m.pinHere(&buf[0])
	f, _ := fdOf(fd)
	s.PrepRecv(f, buf, 0)
	target(s, fd)
	e.submitted(s, tokOp, idx)
	e.name(idx)
	e.ops++
	return nil
}

// RecvFrom receives one datagram from fd into buf: Res = n, Buf = buf[:n],
// From = the sender. io_uring has no recvfrom that reports the address
// without a msghdr per datagram, so for a process fd the engine polls for
// readability (POLL_ADD) and then calls recvfrom(2) itself, saving the
// msghdr; a direct descriptor, which no system call takes, gets one
// RECVMSG with a msghdr of the operation's own. buf belongs to the engine
// until the completion.
//
// Errors as Recv.
func (e *Engine) RecvFrom(fd int, buf []byte, ud uint64) error {
	if err := e.check("recvfrom", fd, ud); err != nil {
		return err
	}
	if len(buf) == 0 {
		return fmt.Errorf("engine: recvfrom fd %d: empty buffer: %w", fd, unix.EINVAL)
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	if f, direct := fdOf(fd); direct {
		// No recvfrom(2) on a direct descriptor: one RECVMSG, whose
		// msghdr takes the sender's address.
		idx := e.newRow(rowRecvMsg, fd, ud, true)
		m := e.rows[idx].mem
		m.buf = buf
		m.bufs = append(m.bufs[:0], buf)
		fillMsg(m, m.bufs)
		m.sa = uring.Sockaddr{}
		m.msg.Name, m.msg.Namelen = m.sa.Storage()
		s.PrepRecvmsg(f, &m.msg, 0)
		s.SetFlags(uring.SQEFixedFile)
		e.submitted(s, tokOp, idx)
		e.name(idx)
		e.ops++
		return nil
	}
	idx := e.newRow(rowRecvFrom, fd, ud, true)
	e.rows[idx].mem.buf = buf
	s.PrepPollAdd(fd, unix.POLLIN)
	e.submitted(s, tokOp, idx)
	e.name(idx)
	e.ops++
	e.stepping++
	return nil
}

// onRecvMsg completes a direct descriptor's RecvFrom: Buf and the sender.
func (e *Engine) onRecvMsg(d *Completion, idx uint32, res int32) bool {
	m := e.rows[idx].mem
	if res < 0 {
		return e.finish(d, idx, res)
	}
	buf := m.buf[:res]
	from, err := m.sa.Decode(m.msg.Namelen)
	if err != nil {
		return e.finish(d, idx, errRes(err))
	}
	e.finish(d, idx, res)
	d.Buf, d.From = buf, from
	return true
}

// Send writes bufs to fd in one operation (SEND for one buffer, SENDMSG for
// several; zero-copy from Options.SendZC bytes): Res = bytes written,
// possibly short, or -EAGAIN when nothing was written (the kernel gave up
// polling; submit it again). The slices belong to the engine until the
// completion; for a zero-copy send the kernel goes on reading the bytes
// written until its notification, after the completion: do not write into
// that memory again (the engine keeps it referenced until then, so memory
// dropped to the garbage collector is safe, and chunks of SendSlabs may be
// Put back at the completion: the engine holds them until then).
//
// Errors as AcceptMultishot.
func (e *Engine) Send(fd int, bufs [][]byte, ud uint64) error {
	if err := e.check("send", fd, ud); err != nil {
		return err
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	if p, ok := singleBuf(bufs); ok && (e.opts.SendZC <= 0 || len(p) < e.opts.SendZC) && e.slabs.Contains(p) {
		// The common reply: one buffer in the send slabs, not zero-copy.
		// Its row needs no operation memory: no iovec, no pin, and the
		// slabs keep p referenced and pinned until the engine closes, so
		// the row need not hold it either (it never sends it again: only
		// a refused zero-copy send is resent).
		// Memory: the kernel reads p until the CQE; e.slabs owns and pins it.
		idx := e.newRow(rowSend, fd, ud, false)
		f, _ := fdOf(fd)
		s.PrepSend(f, p, unix.MSG_NOSIGNAL)
		target(s, fd)
		e.submitted(s, tokOp, idx)
		e.ops++
		return nil
	}
	idx := e.newRow(rowSend, fd, ud, true)
	m := e.rows[idx].mem
	m.bufs = append(m.bufs[:0], bufs...)
	e.prepSend(s, idx)
	e.submitted(s, tokOp, idx)
	e.ops++
	return nil
}

// prepSend prepares the send of row idx on s: SEND or SENDMSG, or zero-copy
// (SEND_ZC for one buffer, or the first where SENDMSG_ZC is missing: a short
// send; SENDMSG_ZC) for at least Options.SendZC bytes unless the socket
// refused it before.
func (e *Engine) prepSend(s *uring.SQE, idx uint32) {
	e.prepSendOp(s, idx)
	target(s, int(e.rows[idx].fd)) // after the Prep method, which resets the flags
}

// prepSendOp is prepSend but for the fd flags.
func (e *Engine) prepSendOp(s *uring.SQE, idx uint32) {
	r := &e.rows[idx]
	m := r.mem
	fd, _ := fdOf(int(r.fd))
	if e.opts.SendZC > 0 && e.zeroCopyOK(r.fd) {
		n, first := 0, -1
		for i, p := range m.bufs {
			n += len(p)
			if first < 0 && len(p) > 0 {
				first = i
			}
		}
		if n >= e.opts.SendZC && first >= 0 {
			r.zc = true
			e.stats.ZeroCopySends++
			e.holdSlabs(m)
			if n == len(m.bufs[first]) || !e.zcMsg {
				p := m.bufs[first]
				// Memory: the kernel reads p until the notification CQE;
				// m.bufs keeps it reachable and the pin (or the slab's) in
				// place until the row is freed, after the notification.
				e.pinSend(m, p)
				if i := e.fixedSlab(p); i >= 0 {
					s.PrepSendZCFixed(fd, p, unix.MSG_NOSIGNAL, 0, uint16(i))
					e.stats.FixedZeroCopySends++
					return
				}
				s.PrepSendZC(fd, p, unix.MSG_NOSIGNAL, 0)
				return
			}
			e.fillSendMsg(m)
			s.PrepSendmsgZC(fd, &m.msg, unix.MSG_NOSIGNAL)
			return
		}
	}
	if p, ok := singleBuf(m.bufs); ok {
		// One buffer (a small reply, the common case): SEND spares the
		// kernel the msghdr copy and iovec import, and us two of three pins,
		// or all three when p is in the send slabs.
		// Memory: the kernel reads p until the CQE; m.bufs keeps it
		// reachable and the pin (or the slab's) in place until the row is
		// freed.
		e.pinSend(m, p)
		s.PrepSend(fd, p, unix.MSG_NOSIGNAL)
		return
	}
	e.fillSendMsg(m)
	s.PrepSendmsg(fd, &m.msg, unix.MSG_NOSIGNAL)
}

// onSend handles a CQE of a send row.
func (e *Engine) onSend(d *Completion, idx uint32, c *uring.CQE) bool {
	r := &e.rows[idx]
	res := c.Res
	if c.Flags&uring.CQEFlagNotif != 0 {
		res = r.res // the refused zero-copy send's notification (below)
	} else if c.More() {
		// A zero-copy send's result; its notification follows once the
		// kernel no longer reads the buffers, which for a peer that stops
		// reading may be only when the socket is closed. So the caller has
		// its completion now (it may close the socket), and the row keeps
		// the buffers referenced and pinned until the notification (onRow
		// frees it then). Only a refusal waits for it, to send again.
		if c.Res != -int32(unix.EOPNOTSUPP) {
			return e.finish(d, idx, c.Res)
		}
		r.res = c.Res
		return false
	}
	if r.zc && res == -int32(unix.EOPNOTSUPP) && r.kind == rowSend && !e.closed && !r.cancelled {
		// The socket cannot send zero-copy after all: send it the ordinary
		// way, now and from now on.
		if e.zcOK == nil {
			e.zcOK = make(map[int32]bool)
		}
		e.zcOK[r.fd] = false
		r.zc = false
		r.mem.unpin() // the buffers stay: prepSend pins them again
		s, err := e.sqe()
		if err != nil {
			return e.finish(d, idx, errRes(err))
		}
		e.prepSend(s, idx)
		e.submitted(s, tokOp, idx)
		return false
	}
	return e.finish(d, idx, res)
}

// zeroCopyOK reports whether fd may send zero-copy: TCP over IPv4 or IPv6
// (AF_UNIX refuses it). The answer, from SO_DOMAIN, is kept until CloseFD.
func (e *Engine) zeroCopyOK(fd int32) bool {
	ok, seen := e.zcOK[fd]
	if seen {
		return ok
	}
	if IsDirect(int(fd)) {
		return true // no process fd to ask: the EOPNOTSUPP fallback decides
	}
	if e.zcOK == nil {
		e.zcOK = make(map[int32]bool)
	}
	dom, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	ok = err == nil && (dom == unix.AF_INET || dom == unix.AF_INET6)
	e.zcOK[fd] = ok
	return ok
}

// SendTo sends b as one datagram to the address to (nil: the connected
// peer) with SENDMSG: Res = bytes sent. b belongs to the engine until the
// completion.
//
// Errors as AcceptMultishot, and the address's (unix.EAFNOSUPPORT for a
// family other than IPv4, IPv6 and unix).
func (e *Engine) SendTo(fd int, b []byte, to unix.Sockaddr, ud uint64) error {
	if err := e.check("sendto", fd, ud); err != nil {
		return err
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	idx := e.newRow(rowSendTo, fd, ud, true)
	m := e.rows[idx].mem
	if to != nil {
		if err := m.sa.Set(to); err != nil {
			e.freeRow(idx)
			s.PrepNop()
			s.SetUserData(tokIgnore)
			return fmt.Errorf("engine: sendto fd %d: %w", fd, err)
		}
	}
	m.bufs = append(m.bufs[:0], b)
	fillMsg(m, m.bufs)
	if to != nil {
		m.msg.Name = &m.sa.Bytes()[0]
		m.msg.Namelen = m.sa.Len()
	}
	f, _ := fdOf(fd)
	s.PrepSendmsg(f, &m.msg, unix.MSG_NOSIGNAL)
	target(s, fd)
	e.submitted(s, tokOp, idx)
	e.ops++
	return nil
}

// holdSlabs holds the chunks of the send slabs among m.bufs, a zero-copy
// send's, until the row is freed (freeRow), after the notification: the
// kernel reads them until then, and the caller may put them back to the
// slabs as soon as the send has completed.
func (e *Engine) holdSlabs(m *opMem) {
	if m.slabsHeld || e.slabs == nil {
		return // the ordinary resend of a refused zero-copy send
	}
	for _, p := range m.bufs {
		e.slabs.Hold(p)
	}
	m.slabsHeld = true
}

// pinSend pins p, a send's payload, unless it lies in the send slabs,
// which are pinned until the engine closes.
func (e *Engine) pinSend(m *opMem, p []byte) {
	if !e.slabs.Contains(p) {
		m.pinHere(&p[0])
		e.stats.PinnedSendBuffers++
	}
}

// fillSendMsg is fillMsg for a send's m.bufs, whose buffers in the send
// slabs need no pin of their own.
func (e *Engine) fillSendMsg(m *opMem) {
	e.stats.PinnedSendBuffers += fillMsgSkip(m, m.bufs, e.slabs)
}

// fillMsg points m.msg at bufs through m.iov, pinning every address the
// kernel will read.
func fillMsg(m *opMem, bufs [][]byte) { fillMsgSkip(m, bufs, nil) }

// fillMsgSkip is fillMsg but for the buffers that lie in pinned (already
// pinned until the engine closes); it returns how many buffers it pinned.
func fillMsgSkip(m *opMem, bufs [][]byte, pinned *uring.Slabs) (pins int) {
	m.iov = m.iov[:0]
	for _, p := range bufs {
		if len(p) == 0 {
			continue
		}
		v := unix.Iovec{Base: &p[0]}
		v.SetLen(len(p))
		m.iov = append(m.iov, v)
		// Memory: the kernel reads p until the final CQE; m.bufs keeps it
		// reachable and the pin (or the slab's) in place until the row is
		// freed.
		if !pinned.Contains(p) {
			m.pin.Pin(&p[0])
			pins++
		}
	}
	m.msg = unix.Msghdr{}
	if len(m.iov) > 0 {
		m.pin.Pin(&m.iov[0])
		m.msg.Iov = &m.iov[0]
		m.msg.SetIovlen(len(m.iov))
	}
	// Pins the record m (msg, sa and ts included).
	m.pinHere(m)
	return pins
}

// singleBuf returns the only non-empty buffer of bufs, if there is exactly one.
func singleBuf(bufs [][]byte) ([]byte, bool) {
	var one []byte
	for _, p := range bufs {
		if len(p) == 0 {
			continue
		}
		if one != nil {
			return nil, false
		}
		one = p
	}
	return one, one != nil
}

// Connect connects the non-blocking socket fd to sa: Res = 0 or -errno
// (-ECONNREFUSED, say).
//
// Errors as AcceptMultishot, and the address's (unix.EINVAL for nil,
// unix.EAFNOSUPPORT for an unknown family).
func (e *Engine) Connect(fd int, sa unix.Sockaddr, ud uint64) error {
	return e.connect(fd, sa, 0, ud)
}

// ConnectTimeout is Connect bounded by a LINK_TIMEOUT: when timeout runs
// out first the kernel cancels the attempt and the completion is -ETIME
// (which a connect never reports otherwise). [Engine.UpdateConnectTimeout]
// moves the bound. The epoll engine has no such operation: its callers time
// connects out with a timer.
//
// Errors as Connect, and unix.EINVAL for timeout <= 0.
func (e *Engine) ConnectTimeout(fd int, sa unix.Sockaddr, timeout time.Duration, ud uint64) error {
	if timeout <= 0 {
		return fmt.Errorf("engine: connect fd %d: timeout %v: %w", fd, timeout, unix.EINVAL)
	}
	return e.connect(fd, sa, timeout, ud)
}

func (e *Engine) connect(fd int, sa unix.Sockaddr, timeout time.Duration, ud uint64) error {
	if err := e.check("connect", fd, ud); err != nil {
		return err
	}
	if sa == nil {
		return fmt.Errorf("engine: connect fd %d: no address: %w", fd, unix.EINVAL)
	}
	var probe uring.Sockaddr
	if err := probe.Set(sa); err != nil {
		return fmt.Errorf("engine: connect fd %d: %w", fd, err)
	}
	var s, st *uring.SQE
	var err error
	if timeout > 0 {
		s, st, err = e.sqePair()
	} else {
		s, err = e.sqe()
	}
	if err != nil {
		return err
	}
	idx := e.newRow(rowConnect, fd, ud, true)
	m := e.rows[idx].mem
	m.sa = probe
	// Memory: the kernel reads m.sa (and m.ts) until the row's last CQE;
	// pinned until the row is freed.
	m.pinHere(m)
	f, _ := fdOf(fd)
	s.PrepConnect(f, &m.sa)
	target(s, fd)
	e.submitted(s, tokOp, idx)
	if st != nil {
		s.SetFlags(uring.SQEIOLink)
		m.ts.Set(timeout)
		st.PrepLinkTimeout(&m.ts, 0)
		e.submitted(st, tokLinked, idx)
		e.rows[idx].timed = true
	}
	e.name(idx)
	e.ops++
	return nil
}

// UpdateConnectTimeout moves the bound of the ConnectTimeout submitted with
// ud to d from now (d <= 0: now), with IORING_LINK_TIMEOUT_UPDATE.
//
// Errors: ErrClosed; unix.EINVAL for a reserved token; unix.ENOENT when no
// bounded connect with ud is in flight (the bound is then unchanged);
// io_uring_enter's when the SQ was full and submitting failed.
func (e *Engine) UpdateConnectTimeout(ud uint64, d time.Duration) error {
	if err := e.checkToken("update connect timeout", ud); err != nil {
		return err
	}
	idx, ok := e.byUD[ud]
	if !ok || e.rows[idx].kind != rowConnect || !e.rows[idx].timed {
		return fmt.Errorf("engine: no bounded connect %#x: %w", ud, unix.ENOENT)
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	target := opToken(tokLinked, idx, e.rows[idx].gen)
	u := e.newRow(rowUpdate, -1, 0, true)
	m := e.rows[u].mem
	m.ts.Set(max(d, 0))
	// Memory: the kernel reads m.ts until this SQE's CQE.
	m.pinHere(&m.ts)
	s.PrepTimeoutUpdate(&m.ts, target, uring.TimeoutLinkTimeoutUpdate)
	e.submitted(s, tokOp, u)
	return nil
}

// Cancel ends the operation submitted with ud: its final completion comes
// with -ECANCELED (or its own result, when it finished first). A miss is not
// an error. Sends are not found by their token (the engine keeps no index of
// them, to keep the send path free of map operations): cancel them with
// CancelFD.
//
// Errors: ErrClosed; unix.EINVAL for a reserved token (no operation has
// one); io_uring_enter's when the SQ was full and submitting failed.
func (e *Engine) Cancel(ud uint64) error {
	if err := e.checkToken("cancel", ud); err != nil {
		return err
	}
	target, flags := ud, uring.CancelFlags(0)
	if idx, ok := e.byUD[ud]; ok {
		if e.rows[idx].kind == rowAcceptDirect {
			e.cancelAccept(idx)
			flags = uring.CancelAll // its accepts in flight share the token
		}
		e.rows[idx].cancelled = true // no more SQEs for it
		target = opToken(tokOp, idx, e.rows[idx].gen)
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	s.PrepCancel(target, flags)
	s.SetUserData(tokIgnore)
	return nil
}

// CancelFD cancels every operation in flight on fd; each ends with a final
// completion (-ECANCELED unless it finished first). A miss is not an error.
//
// Errors as Cancel.
func (e *Engine) CancelFD(fd int) error {
	if e.closed {
		return ErrClosed
	}
	if e.stepping > 0 {
		// Splices and polled operations submit new SQEs as they go: stop
		// them from submitting any past this cancel.
		for i := range e.rows {
			r := &e.rows[i]
			if r.live && !r.done && !r.cancelled && r.fd == int32(fd) {
				if r.kind == rowAcceptDirect {
					e.cancelAccept(uint32(i))
				}
				r.cancelled = true
			}
		}
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	f, direct := fdOf(fd)
	flags := uring.CancelAll
	if direct {
		flags |= uring.CancelFDFixed
	}
	s.PrepCancelFD(f, flags)
	s.SetUserData(tokIgnore)
	e.unwatch(fd)
	return nil
}

// CloseFD closes fd, which must have no operation in flight: Res = 0 or
// -errno.
//
// Errors as AcceptMultishot.
func (e *Engine) CloseFD(fd int, ud uint64) error {
	if err := e.check("close", fd, ud); err != nil {
		return err
	}
	e.unwatch(fd) // its cancel goes before the close
	if f, ok := e.spliceFDs[fd]; ok {
		unix.Close(f)
		delete(e.spliceFDs, fd)
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	if f, direct := fdOf(fd); direct {
		// A row: the slot is free for the parked accepts once it is in.
		idx := e.newRow(rowCloseDirect, fd, ud, false)
		s.PrepCloseDirect(uint32(f))
		e.submitted(s, tokOp, idx)
	} else {
		s.PrepClose(fd)
		s.SetUserData(ud)
	}
	e.ops++
	delete(e.zcOK, int32(fd))
	return nil
}

// MsgRing posts a completion {UserData: data, Res: res} on the ring ringFD
// (another engine's [Engine.RingFD]) with IORING_OP_MSG_RING; this engine's
// own completion, under ud, has Res 0 or -errno. data must lie in
// [MsgTokens, Reserved), so the target tells the message from its own
// operations. The message carries no memory.
//
// Errors as AcceptMultishot, and unix.EINVAL for data outside the range.
func (e *Engine) MsgRing(ringFD int, res uint32, data, ud uint64) error {
	if err := e.check("msg_ring", ringFD, ud); err != nil {
		return err
	}
	if data < MsgTokens || data >= Reserved {
		return fmt.Errorf("engine: msg_ring: data %#x outside the message range: %w", data, unix.EINVAL)
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	s.PrepMsgRing(ringFD, res, data, 0)
	s.SetUserData(ud)
	e.ops++
	return nil
}
