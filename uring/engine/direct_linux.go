package engine

import (
	"fmt"
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
	e.watch = make([]uint32, n)
	return nil
}

// DirectFiles reports the size of the registered file table (0: none).
func (e *Engine) DirectFiles() int { return e.direct }

// AcceptMultishotDirect is AcceptMultishot whose connections are direct
// descriptors: each lands in a free slot of the registered file table, and
// its completion's Res is DirectBase + the slot, which every method of the
// engine takes as an fd. Such a connection occupies no process descriptor.
// A full table ends the accept with -ENFILE (re-arm it once a connection
// has closed).
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
	s, err := e.sqe()
	if err != nil {
		return err
	}
	idx := e.newRow(rowAcceptDirect, fd, ud, false)
	s.PrepAcceptMultishotDirect(fd, unix.SOCK_NONBLOCK)
	e.submitted(s, tokOp, idx)
	e.name(idx)
	e.ops++
	return nil
}

// onAcceptDirect handles a CQE of a direct multishot accept.
func (e *Engine) onAcceptDirect(d *Completion, idx uint32, c *uring.CQE) bool {
	res := c.Res
	if res >= 0 {
		res += DirectBase
	}
	if c.More() {
		*d = Completion{UserData: e.rows[idx].ud, Res: res, Flags: FlagMore}
		return true
	}
	return e.finish(d, idx, res)
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

// Shutdown shuts down the how side(s) of the socket fd (unix.SHUT_WR, ...):
// at once with shutdown(2) for a process fd, with IORING_OP_SHUTDOWN for a
// direct descriptor, submitted with the next Wait, before any operation
// queued after it. Its result is not reported (ENOTCONN, a peer gone, needs
// nothing more).
//
// Errors: ErrClosed; shutdown's for a process fd, ENOTCONN excepted;
// io_uring_enter's when the SQ was full and submitting failed.
func (e *Engine) Shutdown(fd, how int) error {
	if e.closed {
		return ErrClosed
	}
	f, direct := fdOf(fd)
	if !direct {
		if err := unix.Shutdown(fd, how); err != nil && err != unix.ENOTCONN {
			return fmt.Errorf("engine: shutdown fd %d: %w", fd, err)
		}
		return nil
	}
	s, err := e.sqe()
	if err != nil {
		return err
	}
	s.PrepShutdown(f, how)
	s.SetFlags(uring.SQEFixedFile)
	s.SetUserData(tokIgnore)
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
	if e.closed {
		return nil, nil, ErrClosed
	}
	f, direct := fdOf(fd)
	if direct {
		if f, err = e.install(f); err != nil {
			return nil, nil, err
		}
		defer unix.Close(f)
	}
	if local, err = unix.Getsockname(f); err != nil {
		return nil, nil, fmt.Errorf("engine: getsockname fd %d: %w", fd, err)
	}
	if peer, err = unix.Getpeername(f); err != nil {
		return local, nil, fmt.Errorf("engine: getpeername fd %d: %w", fd, err)
	}
	return local, peer, nil
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
	var cqes [16]uring.CQE
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := e.r.SubmitAndWait(1, 100*time.Millisecond); err != nil {
			return -1, err
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
				if res < 0 {
					return -1, fmt.Errorf("engine: install direct descriptor %d: %w", slot, unix.Errno(-res))
				}
				return int(res), nil
			}
			if k < len(cqes) {
				break
			}
		}
	}
	return -1, fmt.Errorf("engine: install direct descriptor %d: no completion: %w", slot, unix.ETIME)
}

// watchHangup arms, for the direct descriptor fd whose multishot receive
// ud was just submitted, a one-shot POLL_ADD for a hang-up (POLLRDHUP,
// POLLHUP, POLLERR): the direct counterpart of checkFresh, whose poll(2)
// needs a process fd. When the peer goes the receive is cancelled, so a
// receive the kernel race left stranded ends, and the caller's next one
// reads what is left. A watch costs one armed poll per connection; it ends
// with the connection (CloseFD and CancelFD cancel it).
func (e *Engine) watchHangup(fd int, ud uint64) {
	slot, _ := fdOf(fd)
	if slot >= len(e.watch) || e.watch[slot] != 0 {
		return // watched already: one watch per connection
	}
	s, err := e.sqe()
	if err != nil {
		e.late = append(e.late, ud) // cancel it now: a new receive is always safe
		return
	}
	idx := e.newRow(rowWatch, fd, ud, false)
	s.PrepPollAdd(slot, unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR)
	s.SetFlags(uring.SQEFixedFile)
	e.submitted(s, tokOp, idx)
	e.watch[slot] = idx + 1
}

// onWatch handles the CQE of a hang-up watch.
func (e *Engine) onWatch(idx uint32, res int32) {
	r := &e.rows[idx]
	slot, _ := fdOf(int(r.fd))
	if slot < len(e.watch) && e.watch[slot] == idx+1 {
		e.watch[slot] = 0
	}
	if res > 0 && !e.closed {
		e.cancelFresh(r.ud)
	}
	e.freeRow(idx)
}

// unwatch cancels the hang-up watch of fd, if any: before its close.
func (e *Engine) unwatch(fd int) {
	slot, direct := fdOf(fd)
	if !direct || slot >= len(e.watch) || e.watch[slot] == 0 {
		return
	}
	idx := e.watch[slot] - 1
	e.watch[slot] = 0
	if s, err := e.sqe(); err == nil {
		s.PrepCancel(opToken(tokOp, idx, e.rows[idx].gen), 0)
		s.SetUserData(tokIgnore)
	}
}
