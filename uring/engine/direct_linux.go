package engine

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

// fdOf returns the descriptor to put in an SQE for fd and whether it is a
// direct descriptor (a slot of the registered file table, which the SQE
// names with IOSQE_FIXED_FILE).
func fdOf(fd int) (int, bool) {
	if fd >= DirectBase {
		return fd - DirectBase, true
	}
	return fd, false
}

// target sets s's fd flags for fd: IOSQE_FIXED_FILE for a direct descriptor.
// Call it after the Prep method.
func target(s *uring.SQE, fd int) {
	if fd >= DirectBase {
		s.SetFlags(uring.SQEFixedFile)
	}
}

// directOps reports whether the kernel has what direct descriptors need
// besides the table: IORING_OP_FIXED_FD_INSTALL (Linux 6.8, for Addrs) and
// socket commands (IORING_OP_URING_CMD with setsockopt, 6.7). Without them
// the engine registers no table (DirectFiles reports 0) and callers accept
// process fds, as before.
func directOps(p *uring.Probe) bool {
	return p.Supported(uring.OpFixedFDInstall) && p.Supported(uring.OpURingCmd)
}

// registerDirect registers the sparse file table of Options.DirectFiles
// slots, capped at RLIMIT_NOFILE (the kernel refuses more).
func (e *Engine) registerDirect(n int) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && uint64(n) > lim.Cur {
		n = int(lim.Cur)
	}
	if err := e.r.RegisterFilesSparse(uint32(n)); err != nil {
		return fmt.Errorf("engine: a table of %d direct descriptors: %w", n, err)
	}
	e.direct = n
	e.watch = make([]watchSlot, n) // untouched slots cost no memory
	return nil
}

// DirectFiles reports the size of the registered file table (0: none).
func (e *Engine) DirectFiles() int { return e.direct }

// acceptDepth is how many single-shot direct accepts a listener keeps in
// flight (each holds a slot of the table until it completes).
const acceptDepth = 8

// AcceptMultishotDirect is AcceptMultishot whose connections are direct
// descriptors: each lands in a free slot of the registered file table, and
// its completion's Res is DirectBase + the slot, which every method of the
// engine takes as an fd. Such a connection occupies no process descriptor.
//
// The kernel takes a connection off the listen queue before it looks for a
// slot, so an accept that finds the table full resets its peer. The engine
// therefore accepts with single-shot ACCEPTs (up to acceptDepth at a time),
// each holding a slot it has counted free, and reports them as one
// multishot operation. With every slot taken it submits none: connections
// wait in the listen queue, as with EMFILE, until a CloseFD of a direct
// descriptor frees a slot, and the accept goes on by itself. It reports each
// such episode with a non-final completion, Res -ENFILE and FlagMore.
//
// Errors as AcceptMultishot, and unix.EINVAL without a table
// (Options.DirectFiles 0).
func (e *Engine) AcceptMultishotDirect(fd int, ud uint64) error {
	if err := e.check("accept", fd, ud); err != nil {
		return err
	}
	if e.direct == 0 {
		return fmt.Errorf("engine: accept fd %d into direct descriptors: no table (Options.DirectFiles): %w", fd, unix.EINVAL)
	}
	idx := e.newRow(rowAcceptDirect, fd, ud, false)
	e.name(idx)
	e.ops++
	e.stepping++
	if err := e.armAccepts(idx); err != nil && e.rows[idx].sqes == 0 {
		r := &e.rows[idx]
		r.named = false
		delete(e.byUD, ud)
		e.ops--
		e.stepping--
		e.freeRow(idx)
		return err
	}
	return nil
}

// armAccepts submits single-shot direct accepts for row idx while it has
// fewer than acceptDepth in flight and the table a slot not promised yet;
// with none in flight and no slot free, it parks the row until closeDone.
func (e *Engine) armAccepts(idx uint32) error {
	for e.rows[idx].sqes < acceptDepth && e.directUsed < e.direct {
		s, err := e.sqe()
		if err != nil {
			return err
		}
		s.PrepAcceptDirect(int(e.rows[idx].fd), unix.SOCK_NONBLOCK)
		e.submitted(s, tokOp, idx)
		e.directUsed++
	}
	if e.directUsed >= e.direct && !e.rows[idx].cancelled && !slices.Contains(e.told, idx) {
		// Every slot is taken or promised to an accept in flight: tell
		// each listener once per episode, as EMFILE would, with a NOP
		// whose CQE carries a non-final -ENFILE. A slot freed ends the
		// episode.
		if s, err := e.sqe(); err == nil {
			e.told = append(e.told, idx)
			s.PrepNop()
			e.submitted(s, tokLinked, idx)
		}
	}
	if e.rows[idx].sqes == 0 {
		e.unpark(idx)
		e.parked = append(e.parked, idx)
	}
	return nil
}

// onAcceptDirect handles the CQE of one direct accept of row idx.
func (e *Engine) onAcceptDirect(d *Completion, idx uint32, c *uring.CQE) bool {
	r := &e.rows[idx]
	res := c.Res
	if res < 0 {
		e.directUsed-- // the slot it held was not used
	}
	if sub, _, _ := splitOpToken(c.UserData); sub == tokLinked {
		// A NOP: the final completion of a cancelled row, or the notice
		// that the table is full (armAccepts).
		switch {
		case r.cancelled && r.sqes == 0:
			return e.finish(d, idx, r.endRes())
		case r.cancelled:
			return false
		}
		if r.sqes == 0 {
			// The accepts in flight are over: wait for a slot (closeDone),
			// or take one freed meanwhile.
			_ = e.armAccepts(idx)
		}
		*d = Completion{UserData: r.ud, Res: -int32(unix.ENFILE), Flags: FlagMore}
		return true
	}
	switch {
	case r.cancelled || e.closed:
		if res >= 0 {
			// Accepted before the cancel landed: the caller owns it.
			*d = Completion{UserData: r.ud, Res: res + DirectBase, Flags: FlagMore}
			if r.sqes == 0 {
				e.finalNop(idx)
			}
			return true
		}
		if r.sqes == 0 {
			return e.finish(d, idx, r.endRes())
		}
		return false
	case res >= 0:
		e.noteAccepted(r.fd, res)
		_ = e.armAccepts(idx) // an SQ failure shows at the next Wait
		*d = Completion{UserData: r.ud, Res: res + DirectBase, Flags: FlagMore}
		return true
	case res == -int32(unix.ECONNABORTED) || res == -int32(unix.EAGAIN) || res == -int32(unix.EINTR) || res == -int32(unix.ENFILE):
		// A peer that gave up, a poll run out, or a slot taken by a
		// descriptor moved in: try again.
		_ = e.armAccepts(idx)
		return false
	}
	// Anything else ends the operation; the caller re-arms it. The other
	// accepts in flight are cancelled and reaped without a report.
	if r.sqes == 0 {
		return e.finish(d, idx, res)
	}
	r.cancelled = true
	r.res = res // the final completion reports it, once the others are in
	if s, err := e.sqe(); err == nil {
		s.PrepCancel(opToken(tokOp, idx, r.gen), uring.CancelAll)
		s.SetUserData(tokIgnore)
	}
	return false
}

// endRes is the final result of a cancelled direct accept row: the error
// that ended it, or -ECANCELED.
func (r *row) endRes() int32 {
	if r.res < 0 {
		return r.res
	}
	return -int32(unix.ECANCELED)
}

// noteAccepted records whether the direct descriptor in slot, accepted on
// listener, may send zero-copy: a connection has its listener's family,
// which zeroCopyOK cannot ask a direct descriptor.
func (e *Engine) noteAccepted(listener, slot int32) {
	if e.opts.SendZC > 0 {
		ok := e.zeroCopyOK(listener) // makes zcOK
		e.zcOK[slot+DirectBase] = ok
	}
}

// finalNop submits a NOP under row idx's tokLinked, whose CQE carries the
// row's final completion when the CQE that ended it already carried a
// connection.
func (e *Engine) finalNop(idx uint32) {
	s, err := e.sqe()
	if err != nil {
		e.lateFinals = append(e.lateFinals, idx)
		return
	}
	s.PrepNop()
	e.submitted(s, tokLinked, idx)
}

// cancelAccept ends direct accept row idx (Cancel, CancelFD): its accepts
// in flight are cancelled; a parked row gets its final completion from a
// NOP.
func (e *Engine) cancelAccept(idx uint32) {
	r := &e.rows[idx]
	r.cancelled = true
	if r.sqes == 0 {
		e.unpark(idx)
		e.finalNop(idx)
	}
}

// unpark removes row idx from the parked accepts.
func (e *Engine) unpark(idx uint32) {
	for i, p := range e.parked {
		if p == idx {
			e.parked = append(e.parked[:i], e.parked[i+1:]...)
			return
		}
	}
}

// closeDone notes that a direct descriptor's slot is free again and lets the
// parked accepts go on.
func (e *Engine) closeDone() {
	e.directUsed--
	e.told = e.told[:0]
	if len(e.parked) == 0 || e.closed {
		return
	}
	parked := e.parked
	e.parked = nil
	for _, idx := range parked {
		if e.rows[idx].live && !e.rows[idx].cancelled {
			_ = e.armAccepts(idx)
		}
	}
}

// SetSockOptInt sets the integer socket option level/name of fd to v: at
// once with setsockopt(2) for a process fd, with a socket command
// (IORING_OP_URING_CMD, Linux 6.7) for a direct descriptor, submitted with
// the next Wait. The command's result is not reported: callers use it for
// options whose failure changes nothing they can act on (TCP_NODELAY).
//
// Errors: ErrClosed; setsockopt's for a process fd; io_uring_enter's when
// the SQ was full and submitting failed.
func (e *Engine) SetSockOptInt(fd, level, name, v int) error {
	if e.closed {
		return ErrClosed
	}
	f, direct := fdOf(fd)
	if !direct {
		if err := unix.SetsockoptInt(fd, level, name, v); err != nil {
			return fmt.Errorf("engine: setsockopt fd %d (%d, %d): %w", fd, level, name, err)
		}
		return nil
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	idx := e.newRow(rowSockOpt, fd, 0, true)
	m := e.rows[idx].mem
	m.val = int32(v)
	// Memory: the kernel reads m.val when it issues the command; the row
	// keeps m pinned until the CQE.
	m.pinHere(&m.val)
	s.PrepSetsockoptInt(f, level, name, &m.val)
	s.SetFlags(uring.SQEFixedFile)
	e.submitted(s, tokOp, idx)
	return nil
}

// Shutdown shuts down the how side(s) of the socket fd (unix.SHUT_WR, ...)
// before it returns: with shutdown(2), for a direct descriptor on a process
// fd installed for the call as Control does (one round trip to the kernel
// while the caller waits). Only if the process has no fd to spare (the
// install fails with EMFILE or ENFILE) does it submit IORING_OP_SHUTDOWN
// and wait for its completion, which takes a kernel worker thread. Either
// way a CloseFD of fd after it cannot overtake it.
//
// It does not leave IORING_OP_SHUTDOWN in flight: the kernel always runs
// that operation on a worker thread, which looks the slot up only when it
// runs. A CloseFD submitted after it, which runs at once, may have freed
// the slot by then and an accept or a new socket filled it, and the
// shutdown hits that other connection (TestShutdownThenClose in
// internal/enginetest). Shutting down the right socket at once costs what
// the epoll engine's shutdown(2) costs, plus the install.
//
// Errors: ErrClosed; the install's (unix.EBADF for an empty slot), wrapped;
// shutdown's, ENOTCONN excepted, wrapped.
func (e *Engine) Shutdown(fd, how int) error {
	if e.closed {
		return ErrClosed
	}
	var installed bool // fn ran: an error is shutdown's, not the install's
	err := e.Control(fd, func(f int) error {
		installed = true
		if err := unix.Shutdown(f, how); err != nil && err != unix.ENOTCONN {
			return fmt.Errorf("engine: shutdown fd %d: %w", fd, err)
		}
		return nil
	})
	if !installed && (errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)) {
		slot, _ := fdOf(fd)
		return e.shutdownWaited(slot, how)
	}
	return err
}

// shutdownWaited shuts down the direct descriptor in slot with
// IORING_OP_SHUTDOWN and waits for its completion (see Shutdown).
func (e *Engine) shutdownWaited(slot, how int) error {
	s, err := e.sqe()
	if err != nil {
		return err
	}
	s.PrepShutdown(slot, how)
	s.SetFlags(uring.SQEFixedFile)
	s.SetUserData(tokInstall)
	res, err := e.waitOwn()
	if err == nil && res < 0 && res != -int32(unix.ENOTCONN) {
		err = unix.Errno(-res)
	}
	if err != nil {
		return fmt.Errorf("engine: shutdown direct descriptor %d: %w", slot, err)
	}
	return nil
}

// Addrs returns the local and peer addresses of the socket fd: with
// getsockname(2)/getpeername(2) for a process fd. A direct descriptor is in
// no process table for those calls, and 6.18 has no socket command for them,
// so the engine installs it as a process fd for the two calls
// (IORING_OP_FIXED_FD_INSTALL, Linux 6.8) and closes that fd at once: one
// round trip to the kernel while the loop waits, paid only when asked. The
// CQEs that arrive meanwhile are kept, in order, for the next Wait.
//
// Errors: ErrClosed; the install's (unix.EBADF for an empty slot,
// unix.EMFILE when the process table is full), getsockname's and
// getpeername's, wrapped.
func (e *Engine) Addrs(fd int) (local, peer unix.Sockaddr, err error) {
	err = e.Control(fd, func(f int) error {
		if local, err = unix.Getsockname(f); err != nil {
			return fmt.Errorf("engine: getsockname fd %d: %w", fd, err)
		}
		if peer, err = unix.Getpeername(f); err != nil {
			return fmt.Errorf("engine: getpeername fd %d: %w", fd, err)
		}
		return nil
	})
	return local, peer, err
}

// Control calls fn with a process fd for the socket fd: fd itself for a
// process fd; for a direct descriptor, a process fd the engine installs
// for the call (IORING_OP_FIXED_FD_INSTALL, Linux 6.8; one round trip to
// the kernel while the caller waits, the CQEs reaped meanwhile kept for the
// next Wait) and closes when fn returns. It is how the system calls no
// socket command covers (getsockname, getsockopt of any level, bind, ...)
// reach a direct descriptor. fn must not keep the fd.
//
// Errors: ErrClosed; the install's (unix.EBADF for an empty slot,
// unix.EMFILE when the process table is full), wrapped; fn's, as is.
func (e *Engine) Control(fd int, fn func(fd int) error) error {
	if e.closed {
		return ErrClosed
	}
	f, direct := fdOf(fd)
	if direct {
		var err error
		if f, err = e.install(f); err != nil {
			return err
		}
		defer unix.Close(f)
	}
	return fn(f)
}

// Release ends the engine's hold on fd without closing it and returns a
// process fd for it that the caller owns: fd itself, whose per-descriptor
// state the engine forgets, or, for a direct descriptor, a process fd
// installed with IORING_OP_FIXED_FD_INSTALL (Linux 6.8; close-on-exec,
// sharing the open file and its O_NONBLOCK with the slot) as Control does.
// The direct descriptor stays in its slot: close it with CloseFD once its
// operations are done, which frees the slot and leaves the installed fd
// open. Operations still in flight on fd go on until they complete or are
// cancelled.
//
// Errors: ErrClosed; the install's, as Control.
func (e *Engine) Release(fd int) (int, error) {
	if e.closed {
		return -1, ErrClosed
	}
	f, direct := fdOf(fd)
	if !direct {
		delete(e.zcOK, int32(fd))
		e.unwatch(fd) // its poll would keep the caller's socket open
		return fd, nil
	}
	return e.install(f)
}

// install installs the direct descriptor in slot as a process fd and waits
// for it, stashing the other CQEs it reaps.
func (e *Engine) install(slot int) (int, error) {
	s, err := e.sqe()
	if err != nil {
		return -1, err
	}
	s.PrepFixedFDInstall(slot, 0)
	s.SetUserData(tokInstall)
	res, err := e.waitOwn()
	if err == nil && res < 0 {
		err = unix.Errno(-res)
	}
	if err != nil {
		return -1, fmt.Errorf("engine: install direct descriptor %d: %w", slot, err)
	}
	return int(res), nil
}

// waitOwn submits and waits (at most 5 s) for the CQE of the SQE just
// prepared under tokInstall, and returns its Res; the other CQEs it reaps
// are stashed, in order, for the next Wait.
func (e *Engine) waitOwn() (int32, error) {
	var cqes [16]uring.CQE
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := e.r.SubmitAndWait(1, 100*time.Millisecond); err != nil {
			return 0, err
		}
		for {
			k := e.r.PeekCQEs(cqes[:])
			res, found := int32(0), false
			for _, c := range cqes[:k] {
				if c.UserData == tokInstall {
					res, found = c.Res, true
					continue
				}
				e.stash = append(e.stash, c)
			}
			if found {
				return res, nil
			}
			if k < len(cqes) {
				break
			}
		}
	}
	return 0, fmt.Errorf("no completion in 5 s: %w", unix.ETIME)
}

// SocketDirect creates a socket(domain, typ|SOCK_NONBLOCK, proto) as a
// direct descriptor (IORING_OP_SOCKET into the file table, Linux 5.19):
// Res = DirectBase + its slot, for Connect and every other method. It
// counts the slot like an accept does, so it never takes one an accept was
// promised.
//
// Errors (nothing was submitted): ErrClosed; unix.EINVAL for a reserved
// token or without a table; unix.ENFILE when no slot is free (create a
// process fd instead); io_uring_enter's when the SQ was full and submitting
// failed.
func (e *Engine) SocketDirect(domain, typ, proto int, ud uint64) error {
	if err := e.checkToken("socket", ud); err != nil {
		return err
	}
	if e.direct == 0 {
		return fmt.Errorf("engine: socket into direct descriptors: no table (Options.DirectFiles): %w", unix.EINVAL)
	}
	if e.directUsed >= e.direct {
		return fmt.Errorf("engine: socket into direct descriptors: every slot taken: %w", unix.ENFILE)
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	idx := e.newRow(rowSocketDirect, -1, ud, false)
	e.rows[idx].res = int32(domain) // for onSocketDirect
	s.PrepSocketDirect(domain, typ|unix.SOCK_NONBLOCK, proto)
	e.submitted(s, tokOp, idx)
	e.directUsed++
	e.ops++
	return nil
}

// onSocketDirect handles the CQE of SocketDirect.
func (e *Engine) onSocketDirect(d *Completion, idx uint32, res int32) bool {
	if res < 0 {
		e.directUsed-- // the slot it held was not used
		return e.finish(d, idx, res)
	}
	if e.opts.SendZC > 0 {
		// zeroCopyOK cannot ask a direct descriptor its family: the
		// socket's creation tells it.
		if e.zcOK == nil {
			e.zcOK = make(map[int32]bool)
		}
		dom := e.rows[idx].res
		e.zcOK[res+DirectBase] = dom == unix.AF_INET || dom == unix.AF_INET6
	}
	return e.finish(d, idx, res+DirectBase)
}

// SendDirect moves the direct descriptor fd to the ring ringFD (another
// engine's [Engine.RingFD]) with IORING_OP_MSG_RING and IORING_MSG_SEND_FD
// (Linux 6.0): the kernel installs it in a free slot of the target's table
// and posts there a completion {UserData: data, Res: that slot}, which the
// target passes to [Engine.AdoptDirect]. This engine's own completion,
// under ud, has Res ≥ 0 once the descriptor is installed, or -errno. fd
// stays in this engine's table either way: close it (CloseFD) once the
// completion is in, or keep serving it when the move failed.
//
// Two results need care. -EOVERFLOW means the target got the descriptor
// but not its completion (the kernel could not queue the CQE): the target
// holds a slot nobody knows of until its ring closes, so shut the socket
// down before closing fd or its peer waits forever. And the target's slot
// is taken without the target's knowledge: the target must have promised
// it to the sender first ([Engine.ReserveDirect]), or one of its own
// direct accepts may find the table full after it has taken a connection
// off the listen queue, which resets that peer.
//
// Errors (nothing was submitted): ErrClosed; unix.EINVAL for a reserved
// ud, for data outside [MsgTokens, Reserved) or for a process fd;
// io_uring_enter's when the SQ was full and submitting failed.
func (e *Engine) SendDirect(ringFD, fd int, data, ud uint64) error {
	if err := e.check("send_fd", fd, ud); err != nil {
		return err
	}
	slot, direct := fdOf(fd)
	if !direct || slot >= e.direct {
		return fmt.Errorf("engine: send_fd: fd %d is not a direct descriptor of this engine: %w", fd, unix.EINVAL)
	}
	if data < MsgTokens || data >= Reserved {
		return fmt.Errorf("engine: send_fd: data %#x outside the message range: %w", data, unix.EINVAL)
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	s.PrepMsgRingFD(ringFD, uint32(slot), data, 0)
	s.SetUserData(ud)
	e.ops++
	return nil
}

// ReserveDirect promises up to n free slots of the table to descriptors
// other engines will move in with SendDirect, and returns how many it
// promised (0 without a table or with every slot taken or promised). A
// promised slot counts as taken, so this engine's own accepts and sockets
// never count on it; it is freed by the CloseFD of the descriptor moved
// in, after [Engine.AdoptDirect]. A promise is for the engine's lifetime:
// a slot promised and never filled stays counted until Close.
func (e *Engine) ReserveDirect(n int) int {
	if e.closed || n <= 0 {
		return 0
	}
	n = min(n, e.direct-e.directUsed)
	if n <= 0 {
		return 0
	}
	e.directUsed += n
	return n
}

// AdoptDirect returns the fd of the direct descriptor another engine moved
// into slot (the Res of the message SendDirect posted here): a slot it had
// promised with ReserveDirect, which stays taken until the fd's CloseFD.
// tcp tells whether the socket is a TCP one (zero-copy sends are tried
// on TCP only; see Options.SendZC).
//
// Errors: ErrClosed; unix.EINVAL for a slot outside the table.
func (e *Engine) AdoptDirect(slot int32, tcp bool) (int, error) {
	if e.closed {
		return -1, ErrClosed
	}
	if slot < 0 || int(slot) >= e.direct {
		return -1, fmt.Errorf("engine: adopt direct descriptor %d of a table of %d: %w", slot, e.direct, unix.EINVAL)
	}
	fd := int(slot) + DirectBase
	if e.opts.SendZC > 0 {
		if e.zcOK == nil {
			e.zcOK = make(map[int32]bool)
		}
		e.zcOK[int32(fd)] = tcp
	}
	return fd, nil
}

// RegisterDirect moves the process fd fd into a free slot of the table
// (IORING_OP_FILES_UPDATE with IORING_FILE_INDEX_ALLOC, Linux 5.19) and
// returns its direct descriptor, DirectBase + the slot, which every method
// takes as an fd; fd itself is closed. It is for sockets made and set up
// with system calls (a bound datagram socket) that should then hold no
// process descriptor. It waits for the kernel while the loop waits, as
// Addrs does, keeping the completions that arrive meanwhile.
//
// Errors (fd is left open and untouched): ErrClosed; unix.EINVAL without a
// table; unix.ENFILE when every slot is taken or promised; the update's
// errno (unix.EBADF for a bad fd); io_uring_enter's.
func (e *Engine) RegisterDirect(fd int) (int, error) {
	if e.closed {
		return -1, ErrClosed
	}
	if e.direct == 0 {
		return -1, fmt.Errorf("engine: register fd %d as a direct descriptor: no table (Options.DirectFiles): %w", fd, unix.EINVAL)
	}
	if e.directUsed >= e.direct {
		return -1, fmt.Errorf("engine: register fd %d as a direct descriptor: every slot taken: %w", fd, unix.ENFILE)
	}
	s, err := e.sqe()
	if err != nil {
		return -1, err
	}
	fds := []int32{int32(fd)}
	var pin runtime.Pinner
	// Memory: the kernel reads fds[0] and writes the slot there until the
	// CQE, which waitOwn waits for before the pin ends.
	pin.Pin(&fds[0])
	defer pin.Unpin()
	s.PrepFilesUpdateAlloc(fds)
	s.SetUserData(tokInstall)
	res, err := e.waitOwn()
	if err == nil && res < 0 {
		err = unix.Errno(-res)
	} else if err == nil && res != 1 {
		err = unix.EIO
	}
	if err != nil {
		return -1, fmt.Errorf("engine: register fd %d as a direct descriptor: %w", fd, err)
	}
	e.directUsed++
	unix.Close(fd) // the table holds its own reference
	return int(fds[0]) + DirectBase, nil
}
