package loop

import (
	"errors"
	"time"

	"github.com/ringmachine/ringmachine/internal/connio"
	"github.com/ringmachine/ringmachine/uring/engine"
	"golang.org/x/sys/unix"
)

var (
	_ backend     = (*uringBackend)(nil)
	_ msgRinger   = (*uringBackend)(nil)
	_ directMover = (*uringBackend)(nil)
	_ chunkSource = (*uringBackend)(nil)
)

// sendChunks returns the engine's pinned send slabs: outbound chunks taken
// from them go to SEND without a runtime.Pinner call per send, which
// profiles of the echo server put at 2 to 3 % of its CPU.
func (b *uringBackend) sendChunks() connio.ChunkSource {
	if s := b.e.SendSlabs(); s != nil {
		return s
	}
	return nil
}

// uringBackend adapts the io_uring engine to the backend contract.
type uringBackend struct {
	e    *engine.Engine
	cqes []engine.Completion
}

// URingSetupMode mirrors engine.Taskrun value for value (a constant overflow here
// fails the build).
const (
	_ = uint8(SetupDeferTaskrun) - uint8(engine.TaskrunDefer)
	_ = uint8(engine.TaskrunDefer) - uint8(SetupDeferTaskrun)
	_ = uint8(SetupCoopTaskrun) - uint8(engine.TaskrunCoop)
	_ = uint8(engine.TaskrunCoop) - uint8(SetupCoopTaskrun)
	_ = uint8(SetupNoTaskrunFlags) - uint8(engine.TaskrunNone)
	_ = uint8(engine.TaskrunNone) - uint8(SetupNoTaskrunFlags)
)

// newURingBackend opens the engine. It must run on the loop's locked OS
// thread (SINGLE_ISSUER).
func newURingBackend(cfg backendConfig) (*uringBackend, error) {
	e, err := engine.New(engine.Options{
		Entries:        cfg.ringEntries,
		Taskrun:        engine.Taskrun(cfg.setup), // URingSetupMode mirrors engine.Taskrun
		RecvBufferSize: cfg.recvBufferSize,
		RecvBuffers:    cfg.recvBuffers,
		RecvBuffersMax: cfg.recvBuffersMax,
		SendZC:         cfg.sendZC,
		SubmitPerOp:    cfg.submitPerOp,
		RecvPollFirst:  testHookRecvPollFirst,
		DirectFiles:    cfg.directFiles,
		MinWait:        cfg.minWait,
		MinWaitBatch:   cfg.minWaitBatch,
		RecvBundle:     cfg.recvBundle,
		SpliceWorker:   cfg.spliceWorker,
		// Outbound chunks come from pinned slabs (see sendChunks).
		SendSlabChunk:  connio.ChunkSize,
		SendSlabChunks: outboundChunksMax,
		// Zero-copy sends from the slabs name them as fixed buffers.
		NoFixedSendBuffers: testHookNoFixedSendBuffers,
	})
	if err != nil {
		return nil, err
	}
	batch := 256
	if testHookCompletionBatch > 0 {
		batch = testHookCompletionBatch
	}
	return &uringBackend{e: e, cqes: make([]engine.Completion, batch)}, nil
}

// testHookCompletionBatch, when positive, is how many completions one
// engine Wait may hand the loop (default 256): a benchmark measures what
// larger batches per io_uring_enter gain.
var testHookCompletionBatch int

// testHookRecvPollFirst, when set by a test, opens engines with
// Options.RecvPollFirst, which widens the kernel race the engine works
// around to every receive.
var testHookRecvPollFirst bool

func (b *uringBackend) kind() Backend  { return URing }
func (b *uringBackend) wake() error    { return b.e.Wake() }
func (b *uringBackend) inFlight() int  { return b.e.InFlight() }
func (b *uringBackend) close() error   { return b.e.Close() }
func (b *uringBackend) msgRingFD() int { return b.e.RingFD() }

// poll waits once, and again without blocking while the engine fills cqes:
// more completions are ready than one batch holds.
func (b *uringBackend) poll(timeout time.Duration, dispatch func(*completion)) error {
	for {
		n, err := b.e.Wait(timeout, b.cqes)
		for i := range b.cqes[:n] {
			c := &b.cqes[i]
			dispatch(c) // the engine's record itself: no copy (see completion)
			*c = engine.Completion{}
		}
		if err != nil || n < len(b.cqes) {
			return err
		}
		timeout = 0
	}
}

func (b *uringBackend) acceptMultishot(fd int, tok uint64) error {
	return b.e.AcceptMultishot(fd, tok)
}

func (b *uringBackend) recvMultishot(fd int, tok uint64) error { return b.e.RecvMultishot(fd, tok) }

func (b *uringBackend) acceptDirect(fd int, tok uint64) error {
	if b.e.DirectFiles() == 0 {
		return errors.ErrUnsupported
	}
	return b.e.AcceptMultishotDirect(fd, tok)
}

func (b *uringBackend) socketDirect(domain int, tok uint64) error {
	if b.e.DirectFiles() == 0 {
		return errors.ErrUnsupported
	}
	return b.e.SocketDirect(domain, unix.SOCK_STREAM, 0, tok)
}

func (b *uringBackend) setNoDelay(fd int) error {
	return b.e.SetSockOptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
}

func (b *uringBackend) shutdownWrite(fd int) error { return b.e.Shutdown(fd, unix.SHUT_WR) }

func (b *uringBackend) addrs(fd int) (unix.Sockaddr, unix.Sockaddr, error) { return b.e.Addrs(fd) }

func (b *uringBackend) control(fd int, fn func(fd int) error) error { return b.e.Control(fd, fn) }

func (b *uringBackend) recv(fd int, buf []byte, tok uint64) error { return b.e.Recv(fd, buf, tok) }

func (b *uringBackend) recvFrom(fd int, buf []byte, tok uint64) error {
	return b.e.RecvFrom(fd, buf, tok)
}

func (b *uringBackend) send(fd int, bufs [][]byte, tok uint64) error {
	return b.e.Send(fd, bufs, tok)
}

func (b *uringBackend) sendTo(fd int, p []byte, to unix.Sockaddr, tok uint64) error {
	return b.e.SendTo(fd, p, to, tok)
}

// connect bounds the attempt with a linked timeout when asked to.
func (b *uringBackend) connect(fd int, sa unix.Sockaddr, timeout time.Duration, tok uint64) (bool, error) {
	if timeout > 0 {
		return true, b.e.ConnectTimeout(fd, sa, timeout, tok)
	}
	return false, b.e.Connect(fd, sa, tok)
}

func (b *uringBackend) updateConnectTimeout(tok uint64, d time.Duration) error {
	return b.e.UpdateConnectTimeout(tok, d)
}

func (b *uringBackend) sendFile(outFD, inFD int, offset int64, n int, tok uint64) error {
	return b.e.Splice(outFD, inFD, offset, n, tok)
}

func (b *uringBackend) spliceIn(fd, pipeW, n int, tok uint64) error {
	return b.e.SpliceIn(fd, pipeW, n, tok)
}

func (b *uringBackend) spliceOut(fd, pipeR, n int, tok uint64) error {
	return b.e.SpliceOut(fd, pipeR, n, tok)
}

func (b *uringBackend) pollFD(fd int, mask uint32, tok uint64) error {
	return b.e.Poll(fd, mask, tok)
}

func (b *uringBackend) waitid(pidfd int, info *siginfo, tok uint64) error {
	return b.e.Waitid(pidfd, info, tok)
}

func (b *uringBackend) read(fd int, buf []byte, tok uint64) error { return b.e.Read(fd, buf, tok) }
func (b *uringBackend) write(fd int, bufs [][]byte, tok uint64) error {
	return b.e.Write(fd, bufs, tok)
}
func (b *uringBackend) release(fd int) (int, error) { return b.e.Release(fd) }

func (b *uringBackend) cancel(tok uint64) error          { return b.e.Cancel(tok) }
func (b *uringBackend) cancelFD(fd int) error            { return b.e.CancelFD(fd) }
func (b *uringBackend) closeFD(fd int, tok uint64) error { return b.e.CloseFD(fd, tok) }
func (b *uringBackend) msgRing(ringFD int, res uint32, data, tok uint64) error {
	return b.e.MsgRing(ringFD, res, data, tok)
}

func (b *uringBackend) directFiles() int { return b.e.DirectFiles() }
func (b *uringBackend) sendDirect(ringFD, fd int, data, tok uint64) error {
	return b.e.SendDirect(ringFD, fd, data, tok)
}
func (b *uringBackend) reserveDirect(n int) int { return b.e.ReserveDirect(n) }
func (b *uringBackend) adoptDirect(slot int32, tcp bool) (int, error) {
	return b.e.AdoptDirect(slot, tcp)
}
func (b *uringBackend) shutdown(fd int) error              { return b.e.Shutdown(fd, unix.SHUT_RDWR) }
func (b *uringBackend) registerDirect(fd int) (int, error) { return b.e.RegisterDirect(fd) }
