package engine

import (
	"errors"
	"runtime"
	"slices"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

// rowKind is what a row of the operation table does.
type rowKind uint8

const (
	rowSend         rowKind = iota + 1 // SEND, SENDMSG, SEND_ZC or SENDMSG_ZC
	rowSendTo                          // SENDMSG with an address
	rowRecv                            // RECV into the caller's buffer
	rowRecvFrom                        // POLL_ADD, then recvfrom(2)
	rowRecvMsg                         // RECVMSG of a direct descriptor's datagram
	rowConnect                         // CONNECT, with its LINK_TIMEOUT when timed
	rowSplice                          // SPLICE file -> pipe linked to pipe -> socket
	rowSendfile                        // POLL_ADD, then sendfile(2): a file that cannot splice
	rowUpdate                          // TIMEOUT_REMOVE updating a connect's LINK_TIMEOUT
	rowAcceptDirect                    // multishot ACCEPT into the file table
	rowSockOpt                         // URING_CMD setsockopt on a direct descriptor
	rowSocketDirect                    // SOCKET into the file table
	rowCloseDirect                     // CLOSE of a direct descriptor: frees its slot
	rowSpliceIn                        // POLL_ADD linked to SPLICE socket -> pipe
	rowSpliceOut                       // POLL_ADD linked to SPLICE pipe -> socket
	rowWrite                           // WRITE or WRITEV at the current position
)

// row is one operation in the table (token.go). It lives from submission
// until the CQE of its last SQE; the caller's completion may come earlier (a
// connect reports before its linked timeout's CQE).
type row struct {
	ud   uint64    // the caller's token (0 for rowUpdate)
	mem  *opMem    // kernel-visible memory, nil when none
	sp   *spliceOp // rowSplice
	fd   int32
	res  int32 // zero-copy send: its result until the notification
	gen  uint16
	kind rowKind
	sqes uint8 // SQEs of this row whose last CQE is not reaped

	live      bool
	done      bool // the caller's final completion is produced
	named     bool // in byUD: the caller may name it (Cancel, UpdateConnectTimeout)
	zc        bool // the send went out zero-copy: final at its notification
	timed     bool // a connect with a LINK_TIMEOUT
	cancelled bool // Cancel or CancelFD reached it: no more SQEs for it
}

// opMem is the memory one operation hands the kernel (iovecs, msghdr,
// sockaddr, timespec) plus the buffers it points to. Go memory whose address
// goes into an SQE is pinned from submission until release, after the row's
// last CQE (STYLE §5). Pooled: an idle connection owns none.
type opMem struct {
	bufs   [][]byte
	iov    []unix.Iovec
	msg    unix.Msghdr
	sa     uring.Sockaddr
	ts     uring.Timespec
	buf    []byte // Recv, RecvFrom: the caller's buffer
	val    int32  // SetSockOptInt's value
	pin    runtime.Pinner
	pinned bool
	// slabsHeld: the send slab chunks among bufs are held (holdSlabs)
	// until the row is freed.
	slabsHeld bool

	// The sendfile(2) emulation of a splice; SpliceIn/SpliceOut (inFD:
	// the pipe).
	inFD int
	off  int64
	n    int

	// SpliceIn/SpliceOut: the process fd splice(2) takes for the socket
	// (-1: IORING_OP_SPLICE, Options.SpliceWorker); which of the poll's and
	// the SPLICE's CQEs are in, and their results.
	sys                int
	polled, spliced    bool
	pollRes, spliceRes int32
}

// maxFreeMems bounds the pool of operation memory.
const maxFreeMems = 4096

func (m *opMem) release() {
	m.unpin()
	clear(m.bufs)
	m.bufs = m.bufs[:0]
	clear(m.iov)
	m.iov = m.iov[:0]
	m.msg = unix.Msghdr{}
	m.buf = nil
	m.polled, m.spliced = false, false
	m.slabsHeld = false
}

// unpin ends the pins of m, keeping its buffers.
func (m *opMem) unpin() {
	if m.pinned {
		m.pin.Unpin()
		m.pinned = false
	}
}

// pinHere pins p, whose address goes into an SQE.
func (m *opMem) pinHere(p any) {
	m.pin.Pin(p)
	m.pinned = true
}

func (e *Engine) getMem() *opMem {
	if k := len(e.mems); k > 0 {
		m := e.mems[k-1]
		e.mems[k-1] = nil
		e.mems = e.mems[:k-1]
		return m
	}
	return new(opMem)
}

// newRow takes a free row for an operation of kind k on fd for the caller's
// token ud, with memory when withMem.
func (e *Engine) newRow(k rowKind, fd int, ud uint64, withMem bool) uint32 {
	var idx uint32
	if n := len(e.free); n > 0 {
		idx = e.free[n-1]
		e.free = e.free[:n-1]
	} else {
		idx = uint32(len(e.rows))
		e.rows = append(e.rows, row{})
	}
	r := &e.rows[idx]
	*r = row{ud: ud, fd: int32(fd), gen: r.gen, kind: k, live: true}
	if withMem {
		r.mem = e.getMem()
	}
	return idx
}

// name makes row idx findable by its caller's token.
func (e *Engine) name(idx uint32) {
	r := &e.rows[idx]
	r.named = true
	e.byUD[r.ud] = idx
}

// freeRow releases row idx, whose last CQE is reaped (or which never
// reached the kernel), and its memory.
func (e *Engine) freeRow(idx uint32) {
	r := &e.rows[idx]
	if r.named && e.byUD[r.ud] == idx {
		delete(e.byUD, r.ud)
	}
	if m := r.mem; m != nil {
		if m.slabsHeld {
			for _, p := range m.bufs {
				e.slabs.Release(p)
			}
			m.slabsHeld = false
		}
		m.release()
		if len(e.mems) < maxFreeMems {
			e.mems = append(e.mems, m)
		}
	}
	if r.kind == rowAcceptDirect {
		// A listener that reuses the row is told afresh.
		e.told = slices.DeleteFunc(e.told, func(i uint32) bool { return i == idx })
	}
	*r = row{gen: r.gen + 1}
	e.free = append(e.free, idx)
}

// submitted gives s the token sub of row idx and counts the SQE.
func (e *Engine) submitted(s *uring.SQE, sub uint64, idx uint32) {
	s.SetUserData(opToken(sub, idx, e.rows[idx].gen))
	e.rows[idx].sqes++
	e.sqes++
}

// finish produces the caller's final completion of row idx into d, and
// frees the row when none of its SQEs is still in flight.
func (e *Engine) finish(d *Completion, idx uint32, res int32) bool {
	r := &e.rows[idx]
	*d = Completion{UserData: r.ud, Res: res}
	r.done = true
	if r.named {
		r.named = false
		if e.byUD[r.ud] == idx {
			delete(e.byUD, r.ud)
		}
	}
	e.ops--
	if r.kind == rowSplice || r.kind == rowSendfile || r.kind == rowRecvFrom || r.kind == rowAcceptDirect || r.kind == rowSpliceIn || r.kind == rowSpliceOut {
		e.stepping--
	}
	if r.sqes == 0 {
		e.freeRow(idx)
	}
	return true
}

// onRow handles the CQE of an SQE under a row token and reports whether it
// produced a completion in d.
func (e *Engine) onRow(d *Completion, c *uring.CQE) bool {
	sub, idx, gen := splitOpToken(c.UserData)
	if int(idx) >= len(e.rows) || !e.rows[idx].live || e.rows[idx].gen != gen {
		return false // impossible: a row outlives its SQEs
	}
	r := &e.rows[idx]
	if !c.More() {
		r.sqes--
		e.sqes--
	}
	if r.done {
		// The caller has its completion; this was the last linked SQE.
		if r.sqes == 0 {
			e.freeRow(idx)
		}
		return false
	}
	switch r.kind {
	case rowSend, rowSendTo:
		return e.onSend(d, idx, c)
	case rowRecv:
		if c.Res > 0 {
			buf := r.mem.buf
			e.finish(d, idx, c.Res)
			d.Buf = buf[:c.Res]
			return true
		}
		return e.finish(d, idx, c.Res)
	case rowWrite:
		return e.finish(d, idx, c.Res)
	case rowRecvFrom, rowSendfile:
		return e.onPolled(d, idx, c.Res)
	case rowRecvMsg:
		return e.onRecvMsg(d, idx, c.Res)
	case rowConnect:
		if sub == tokLinked {
			return false // the LINK_TIMEOUT's own CQE, before the connect's
		}
		res := c.Res
		if res == -int32(unix.ECANCELED) && r.timed && !r.cancelled {
			// Nothing but the linked timeout cancels a connect the caller
			// did not cancel: it ran out of time.
			res = -int32(unix.ETIME)
		}
		return e.finish(d, idx, res)
	case rowSplice:
		return e.onSplice(d, idx, sub, c.Res)
	case rowSpliceIn, rowSpliceOut:
		return e.onPipeSplice(d, idx, sub, c.Res)
	case rowUpdate, rowSockOpt:
		e.freeRow(idx)
		return false
	case rowAcceptDirect:
		return e.onAcceptDirect(d, idx, c)
	case rowSocketDirect:
		return e.onSocketDirect(d, idx, c.Res)
	case rowCloseDirect:
		if c.Res >= 0 {
			e.closeDone() // an empty slot (EBADF) frees nothing
		}
		return e.finish(d, idx, c.Res)
	}
	return false
}

// errRes turns a submission error into a completion result.
func errRes(err error) int32 {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return -int32(errno)
	}
	return -int32(unix.EIO)
}
