package loop

import (
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/ringmachine/ringmachine/uring/engine"
	"golang.org/x/sys/unix"
)

// Faults configures the fault-injecting engine wrapper (SetTestFaults): each
// field is the probability of one fault at each chance to inject it. The
// wrapper injects only what a real engine may produce under the backend
// contract (backend.go):
//
//   - ShortSend: a send is handed fewer bytes than the loop asked for, so
//     the kernel writes less and the completion is short; the loop must send
//     the rest.
//   - DeferSend: the engine found the socket full and submits the send
//     only at the next poll, as epoll does when it waits for writability.
//   - Again: the operation ends with -EAGAIN having done nothing, as
//     io_uring's does once its poll retries run out (errRetry in
//     sock_linux.go): a send at once, without reaching the kernel; a
//     multishot receive by a real cancel whose -ECANCELED is reported as
//     -EAGAIN. The loop must submit it again.
//   - SplitRecv: one receive completion arrives as two to four, the
//     first ones with more set, as if the bytes had reached the socket in
//     pieces.
//   - NoBufs: after a receive completion the multishot receive is really
//     cancelled and its final -ECANCELED reported as -ENOBUFS (the buffers
//     ran out); data completions that were already on their way are
//     delivered first, as the kernel does.
//   - Cancel: the same, reported as -ECANCELED.
//   - Reset: the share of connections that are reset by the peer at some
//     point: their receive is cancelled for real and ends with
//     -ECONNRESET, and every later send or receive on them fails with
//     -ECONNRESET without reaching the kernel.
//   - The same faults reach a proxy's splices: Again ends a spliceIn or a
//     spliceOut with -EAGAIN having moved nothing, SplitRecv makes a
//     spliceIn ask for fewer bytes, ShortSend a spliceOut move fewer.
//   - Delay: a completion is held back until a later poll (its bytes
//     copied); later completions of the same operation queue behind it, so
//     each operation's completions stay in order, as in both engines.
//
// Bytes handed to dispatch from a copy are poisoned after the dispatch, so a
// loop that keeps a receive buffer beyond it reads garbage.
type Faults struct {
	Seed      uint64
	ShortSend float64
	DeferSend float64
	Again     float64
	SplitRecv float64
	NoBufs    float64
	Cancel    float64
	Reset     float64
	Delay     float64
}

// FaultStats counts the faults a wrapper injected.
type FaultStats struct {
	ShortSends, DeferredSends, Agains, SplitRecvs, NoBufs, Cancels, Resets, Delayed int
}

// SetTestFaults wraps the backend of every loop run afterwards in a wrapper
// injecting f, one seeded random stream per loop. stats reports the faults
// injected so far (read it once Run has returned); restore removes the hook.
func SetTestFaults(f Faults) (stats func() FaultStats, restore func()) {
	st := new(FaultStats)
	old := testHookWrapBackend
	testHookWrapBackend = func(inner backend) backend {
		return &faultBackend{
			inner:  inner,
			f:      f,
			rng:    rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15)),
			st:     st,
			recvs:  make(map[uint64]*faultRecv),
			conns:  make(map[uint64]*faultConn),
			heldOp: make(map[uint64]int),
		}
	}
	return func() FaultStats { return *st }, func() { testHookWrapBackend = old }
}

// faultBackend is a backend wrapped by SetTestFaults. Like every backend it
// is used from the loop goroutine only (wake excepted, which it forwards).
type faultBackend struct {
	inner backend
	f     Faults
	rng   *rand.Rand
	st    *FaultStats

	held       []completion // held back for the next poll; bufs are copies
	heldOp     map[uint64]int
	heldFinals int
	deferred   []deferredSend // sends not handed to inner yet
	synth      []completion   // made-up final completions (ECONNRESET, submission errors)

	recvs map[uint64]*faultRecv // multishot receives in flight, by token
	conns map[uint64]*faultConn // by token without its kind: one per socket
	buf   []byte                // copies of received bytes, poisoned after use
}

type deferredSend struct {
	fd   int
	bufs [][]byte
	tok  uint64
}

// faultRecv is a multishot receive in flight.
type faultRecv struct {
	fd     int
	endAs  unix.Errno // injected cancel in flight: its final -ECANCELED becomes -endAs
	loopCx bool       // the loop cancelled it itself
}

// faultConn is what the wrapper knows of one socket.
type faultConn struct {
	seen       bool
	doomed     bool // will be reset once it has had resetAfter receives
	resetAfter int
	recvs      int
	reset      bool // reset: every new operation fails with ECONNRESET
}

const tokKindMask = 0xFF << tokKindShift

func (w *faultBackend) conn(tok uint64) *faultConn {
	key := tok &^ tokKindMask
	c := w.conns[key]
	if c == nil {
		c = &faultConn{}
		w.conns[key] = c
	}
	if !c.seen {
		c.seen = true
		c.doomed = w.roll(w.f.Reset)
		c.resetAfter = 1 + w.rng.IntN(24)
	}
	return c
}

func (w *faultBackend) roll(p float64) bool { return p > 0 && w.rng.Float64() < p }

func (w *faultBackend) kind() Backend { return w.inner.kind() }
func (w *faultBackend) wake() error   { return w.inner.wake() }

func (w *faultBackend) inFlight() int {
	return w.inner.inFlight() + w.heldFinals + len(w.deferred) + len(w.synth)
}

func (w *faultBackend) poll(timeout time.Duration, dispatch func(*completion)) error {
	if len(w.held)+len(w.deferred)+len(w.synth) > 0 {
		timeout = 0 // something is due now
	}
	// Sends that met the (pretend) full socket go to the engine now.
	def := w.deferred
	w.deferred = nil
	for _, d := range def {
		w.submitSend(d)
	}
	// Made-up completions and those held back in the previous poll come
	// first: they happened before anything the engine reports now.
	syn, held := w.synth, w.held
	w.synth, w.held = nil, nil
	clear(w.heldOp)
	w.heldFinals = 0
	for i := range syn {
		w.handle(&syn[i], dispatch, false)
	}
	for i := range held {
		w.handle(&held[i], dispatch, false)
		for j := range held[i].Buf {
			held[i].Buf[j] = 0xDB // the copy was valid during its dispatch only
		}
	}
	return w.inner.poll(timeout, func(c *completion) { w.handle(c, dispatch, true) })
}

// handle applies the faults to one completion and dispatches what results.
// fresh: c comes from the engine now (and may be held back).
func (w *faultBackend) handle(c *completion, dispatch func(*completion), fresh bool) {
	final := !c.More()
	if fresh && dispatch != nil && (w.heldOp[c.UserData] > 0 || w.roll(w.f.Delay)) {
		// Hold it: an operation whose earlier completion is held keeps its
		// order by queueing behind it.
		h := *c
		if c.Buf != nil {
			h.Buf = append([]byte(nil), c.Buf...)
		}
		w.held = append(w.held, h)
		w.heldOp[c.UserData]++
		if final {
			w.heldFinals++
		}
		w.st.Delayed++
		return
	}
	cc := *c
	k, _, _ := splitToken(cc.UserData)
	r := w.recvs[cc.UserData]
	if k == opRecv && r != nil && final {
		delete(w.recvs, cc.UserData)
		if cc.Res == -int32(unix.ECANCELED) && r.endAs != 0 {
			cc.Res = -int32(r.endAs)
		}
	}
	if dispatch == nil {
		return
	}
	if k != opRecv || cc.Res <= 0 || r == nil {
		dispatch(&cc)
		return
	}
	fc := w.conn(cc.UserData)
	fc.recvs++
	w.dispatchRecv(&cc, dispatch)
	if final || r.endAs != 0 || r.loopCx || w.recvs[cc.UserData] != r {
		return
	}
	// The receive goes on: maybe end it.
	var end unix.Errno
	switch {
	case fc.doomed && !fc.reset && fc.recvs >= fc.resetAfter:
		fc.reset = true
		w.st.Resets++
		end = unix.ECONNRESET
	case w.roll(w.f.NoBufs):
		w.st.NoBufs++
		end = unix.ENOBUFS
	case w.roll(w.f.Cancel):
		w.st.Cancels++
		end = unix.ECANCELED
	case w.roll(w.f.Again):
		w.st.Agains++
		end = unix.EAGAIN
	default:
		return
	}
	if err := w.inner.cancel(cc.UserData); err == nil {
		r.endAs = end
	}
}

// dispatchRecv dispatches a receive completion with data, maybe split.
func (w *faultBackend) dispatchRecv(c *completion, dispatch func(*completion)) {
	n := len(c.Buf)
	if n < 2 || !w.roll(w.f.SplitRecv) {
		dispatch(c)
		return
	}
	w.st.SplitRecvs++
	parts := 2 + w.rng.IntN(3)
	cuts := make([]int, 0, parts+1)
	cuts = append(cuts, 0)
	for range parts - 1 {
		cuts = append(cuts, 1+w.rng.IntN(n-1))
	}
	cuts = append(cuts, n)
	slices.Sort(cuts)
	for i := 1; i < len(cuts); i++ {
		lo, hi := cuts[i-1], cuts[i]
		if lo == hi {
			continue
		}
		// A copy: the piece must not outlive its own dispatch, and the
		// poison proves the loop did not keep it.
		w.buf = append(w.buf[:0], c.Buf[lo:hi]...)
		part := completion{UserData: c.UserData, Res: int32(hi - lo), Buf: w.buf}
		if c.More() || hi != n {
			part.Flags = engine.FlagMore
		}
		dispatch(&part)
		for j := range w.buf {
			w.buf[j] = 0xDB
		}
	}
}

func (w *faultBackend) acceptMultishot(fd int, tok uint64) error {
	return w.inner.acceptMultishot(fd, tok)
}

func (w *faultBackend) acceptDirect(fd int, tok uint64) error { return w.inner.acceptDirect(fd, tok) }
func (w *faultBackend) setNoDelay(fd int) error               { return w.inner.setNoDelay(fd) }
func (w *faultBackend) control(fd int, fn func(fd int) error) error {
	return w.inner.control(fd, fn)
}
func (w *faultBackend) socketDirect(domain int, tok uint64) error {
	return w.inner.socketDirect(domain, tok)
}
func (w *faultBackend) shutdownWrite(fd int) error { return w.inner.shutdownWrite(fd) }
func (w *faultBackend) addrs(fd int) (unix.Sockaddr, unix.Sockaddr, error) {
	return w.inner.addrs(fd)
}

func (w *faultBackend) recvMultishot(fd int, tok uint64) error {
	if w.conn(tok).reset {
		w.synth = append(w.synth, completion{UserData: tok, Res: -int32(unix.ECONNRESET)})
		return nil
	}
	if err := w.inner.recvMultishot(fd, tok); err != nil {
		return err
	}
	w.recvs[tok] = &faultRecv{fd: fd}
	return nil
}

func (w *faultBackend) recv(fd int, buf []byte, tok uint64) error {
	return w.inner.recv(fd, buf, tok)
}

func (w *faultBackend) recvFrom(fd int, buf []byte, tok uint64) error {
	return w.inner.recvFrom(fd, buf, tok)
}

func (w *faultBackend) send(fd int, bufs [][]byte, tok uint64) error {
	if fc := w.conn(tok); fc.doomed && !fc.reset && fc.recvs >= fc.resetAfter {
		// Its time came while no receive could report it (paused, say).
		fc.reset = true
		w.st.Resets++
		rt := tok&^tokKindMask | uint64(opRecv)<<tokKindShift
		if r := w.recvs[rt]; r != nil && r.endAs == 0 && !r.loopCx {
			if err := w.inner.cancel(rt); err == nil {
				r.endAs = unix.ECONNRESET
			}
		}
	}
	if w.conn(tok).reset {
		w.synth = append(w.synth, completion{UserData: tok, Res: -int32(unix.ECONNRESET)})
		return nil
	}
	if w.roll(w.f.Again) {
		w.st.Agains++
		w.synth = append(w.synth, completion{UserData: tok, Res: -int32(unix.EAGAIN)})
		return nil
	}
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if total >= 2 && w.roll(w.f.ShortSend) {
		w.st.ShortSends++
		limit := 1 + w.rng.IntN(total-1)
		short := make([][]byte, 0, len(bufs))
		for _, b := range bufs {
			if len(b) >= limit {
				short = append(short, b[:limit])
				break
			}
			short = append(short, b)
			limit -= len(b)
		}
		bufs = short
	}
	if w.roll(w.f.DeferSend) {
		w.st.DeferredSends++
		w.deferred = append(w.deferred, deferredSend{fd: fd, bufs: append([][]byte(nil), bufs...), tok: tok})
		return nil
	}
	return w.inner.send(fd, bufs, tok)
}

// submitSend hands a deferred send to the engine; an error becomes its
// completion, as the engines do for errors found after submission.
func (w *faultBackend) submitSend(d deferredSend) {
	if err := w.inner.send(d.fd, d.bufs, d.tok); err != nil {
		w.synth = append(w.synth, completion{UserData: d.tok, Res: errnoRes(err)})
	}
}

// flushDeferred submits the deferred sends that match, so a cancel finds
// them in the engine.
func (w *faultBackend) flushDeferred(match func(d deferredSend) bool) {
	keep := w.deferred[:0]
	var due []deferredSend
	for _, d := range w.deferred {
		if match(d) {
			due = append(due, d)
		} else {
			keep = append(keep, d)
		}
	}
	w.deferred = keep
	for _, d := range due {
		w.submitSend(d)
	}
}

func (w *faultBackend) sendTo(fd int, b []byte, to unix.Sockaddr, tok uint64) error {
	return w.inner.sendTo(fd, b, to, tok)
}

func (w *faultBackend) connect(fd int, sa unix.Sockaddr, timeout time.Duration, tok uint64) (bool, error) {
	return w.inner.connect(fd, sa, timeout, tok)
}

func (w *faultBackend) updateConnectTimeout(tok uint64, d time.Duration) error {
	return w.inner.updateConnectTimeout(tok, d)
}

func (w *faultBackend) sendFile(outFD, inFD int, offset int64, n int, tok uint64) error {
	return w.inner.sendFile(outFD, inFD, offset, n, tok)
}

func (w *faultBackend) waitid(pidfd int, info *siginfo, tok uint64) error {
	return w.inner.waitid(pidfd, info, tok)
}

func (w *faultBackend) pollFD(fd int, mask uint32, tok uint64) error {
	return w.inner.pollFD(fd, mask, tok)
}

// again rolls Again for the operation tok: when it comes up, the operation
// ends with -EAGAIN, having done nothing, and again reports true.
func (w *faultBackend) again(tok uint64) bool {
	if !w.roll(w.f.Again) {
		return false
	}
	w.st.Agains++
	w.synth = append(w.synth, completion{UserData: tok, Res: -int32(unix.EAGAIN)})
	return true
}

// spliceIn: Again ends it having moved nothing; SplitRecv asks for fewer
// bytes, as if fewer had arrived.
func (w *faultBackend) spliceIn(fd, pipeW, n int, tok uint64) error {
	if w.again(tok) {
		return nil
	}
	if n > 1 && w.roll(w.f.SplitRecv) {
		w.st.SplitRecvs++
		n = 1 + w.rng.IntN(n-1)
	}
	return w.inner.spliceIn(fd, pipeW, n, tok)
}

// spliceOut: Again ends it having moved nothing; ShortSend moves fewer
// bytes, as a socket with less room does.
func (w *faultBackend) spliceOut(fd, pipeR, n int, tok uint64) error {
	if w.again(tok) {
		return nil
	}
	if n > 1 && w.roll(w.f.ShortSend) {
		w.st.ShortSends++
		n = 1 + w.rng.IntN(n-1)
	}
	return w.inner.spliceOut(fd, pipeR, n, tok)
}

// read, write and release pass through: the faults model sockets.
func (w *faultBackend) read(fd int, buf []byte, tok uint64) error { return w.inner.read(fd, buf, tok) }
func (w *faultBackend) write(fd int, bufs [][]byte, tok uint64) error {
	return w.inner.write(fd, bufs, tok)
}
func (w *faultBackend) release(fd int) (int, error) { return w.inner.release(fd) }

func (w *faultBackend) cancel(tok uint64) error {
	w.flushDeferred(func(d deferredSend) bool { return d.tok == tok })
	if r := w.recvs[tok]; r != nil {
		r.loopCx = true
	}
	return w.inner.cancel(tok)
}

func (w *faultBackend) cancelFD(fd int) error {
	w.flushDeferred(func(d deferredSend) bool { return d.fd == fd })
	for _, r := range w.recvs {
		if r.fd == fd {
			r.loopCx = true
		}
	}
	return w.inner.cancelFD(fd)
}

func (w *faultBackend) closeFD(fd int, tok uint64) error { return w.inner.closeFD(fd, tok) }

// close drops what the wrapper holds (never dispatched, as the contract
// says of close) and closes the engine. A held accept owns its new fd:
// nobody else will close it.
func (w *faultBackend) close() error {
	for _, c := range w.held {
		if k, _, _ := splitToken(c.UserData); k == opAccept && c.Res >= 0 {
			unix.Close(int(c.Res))
		}
	}
	w.held, w.deferred, w.synth = nil, nil, nil
	clear(w.heldOp)
	w.heldFinals = 0
	clear(w.recvs)
	return w.inner.close()
}

// errnoRes turns a submission error into a completion result.
func errnoRes(err error) int32 {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return -int32(errno)
	}
	return -int32(unix.EIO)
}
