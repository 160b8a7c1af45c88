package loop

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

var _ backend = (*uringBackend)(nil)

// Reserved user data values (STYLE §5): tokenIgnore marks completions nobody
// waits for (cancels, linked-timeout echoes); tokenWake is the backend's own
// read on its eventfd.
const (
	tokenIgnore uint64 = 0
	tokenWake   uint64 = math.MaxUint64
)

// ringEntries is the submission queue size; the completion queue is four
// times larger (uring.New's default).
const ringEntries = 512

// requiredOps are the operations the loop submits; Auto falls back to epoll
// when the probe lacks one.
var requiredOps = []uring.Op{
	uring.OpRead, uring.OpAsyncCancel, uring.OpLinkTimeout, uring.OpAccept,
	uring.OpConnect, uring.OpRecv, uring.OpSend, uring.OpSendmsg, uring.OpClose,
	uring.OpShutdown, uring.OpSplice,
	// IORING_OP_SEND_ZC arrived in Linux 6.0 with multishot receive; its
	// presence is how the probe tells us IORING_RECV_MULTISHOT is there.
	uring.OpSendZC,
}

// uringBackend adapts uring.Ring to the backend contract.
type uringBackend struct {
	r    *uring.Ring
	cqes []uring.CQE
	comp completion

	efd   int      // eventfd written by wake
	efbuf *[8]byte // target of the in-flight eventfd read, pinned
	pin   runtime.Pinner
	armed bool // the eventfd read is in flight
	ops   int  // operations in flight, the eventfd read included
}

// newURingBackend sets up a ring and checks that the kernel has what the
// loop needs. It must run on the loop's locked OS thread (SINGLE_ISSUER).
func newURingBackend() (*uringBackend, error) {
	r, err := uring.New(ringEntries, nil)
	if err != nil {
		return nil, err
	}
	if err := checkRing(r); err != nil {
		return nil, errors.Join(err, r.Close())
	}
	// A blocking eventfd: io_uring then waits for it by polling instead of
	// failing a read with EAGAIN.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("eventfd: %w", err), r.Close())
	}
	b := &uringBackend{r: r, cqes: make([]uring.CQE, 256), efd: efd, efbuf: new([8]byte)}
	// Memory: efbuf's address goes into every eventfd READ SQE; pinned until
	// close has reaped the last read.
	b.pin.Pin(b.efbuf)
	return b, nil
}

// checkRing returns a *uring.FeatureError naming the first missing feature.
func checkRing(r *uring.Ring) error {
	if !r.Features().Has(uring.FeatExtArg) {
		return &uring.FeatureError{Feature: "IORING_FEAT_EXT_ARG"}
	}
	p, err := r.Probe()
	if err != nil {
		return err
	}
	for _, op := range requiredOps {
		if !p.Supported(op) {
			return &uring.FeatureError{Feature: op.String()}
		}
	}
	br, err := r.NewBufRing(0, 2, 64)
	if err != nil {
		return fmt.Errorf("%w: %w", &uring.FeatureError{Feature: "IORING_REGISTER_PBUF_RING"}, err)
	}
	return br.Close()
}

func (b *uringBackend) kind() Backend { return URing }

func (b *uringBackend) wake() error {
	var one = [8]byte{1}
	_, err := unix.Write(b.efd, one[:])
	return err
}

func (b *uringBackend) inFlight() int { return b.ops }

// armWake queues the read on the eventfd that wake completes.
func (b *uringBackend) armWake() bool {
	if b.armed {
		return true
	}
	s, ok := b.r.GetSQE()
	if !ok {
		return false
	}
	s.PrepRead(b.efd, b.efbuf[:], 0)
	s.SetUserData(tokenWake)
	b.armed = true
	b.ops++
	return true
}

func (b *uringBackend) poll(timeout time.Duration, dispatch func(*completion)) error {
	if !b.armWake() {
		// The SQ is full: submit what is queued without waiting, then arm.
		if _, err := b.r.Submit(); err != nil {
			return err
		}
		b.armWake()
	}
	if _, err := b.r.SubmitAndWait(1, timeout); err != nil {
		return err
	}
	b.reap(dispatch)
	return nil
}

// reap copies out and handles every completion available.
func (b *uringBackend) reap(dispatch func(*completion)) {
	for {
		n := b.r.PeekCQEs(b.cqes)
		for i := range b.cqes[:n] {
			c := &b.cqes[i]
			switch c.UserData {
			case tokenIgnore:
				continue
			case tokenWake:
				b.armed = false
				b.ops--
				continue
			}
			if dispatch == nil {
				continue
			}
			b.comp = completion{tok: c.UserData, res: c.Res, flags: c.Flags}
			dispatch(&b.comp)
		}
		b.comp = completion{}
		if n < len(b.cqes) {
			return
		}
	}
}

func (b *uringBackend) close() error {
	var errs []error
	if b.armed {
		if s, ok := b.r.GetSQE(); ok {
			s.PrepCancel(tokenWake, 0)
			s.SetUserData(tokenIgnore)
		}
		deadline := time.Now().Add(5 * time.Second)
		for b.armed && time.Now().Before(deadline) {
			if _, err := b.r.SubmitAndWait(1, 100*time.Millisecond); err != nil {
				errs = append(errs, err)
				break
			}
			b.reap(nil)
		}
		if b.armed {
			errs = append(errs, errors.New("loop: eventfd read not reaped at close"))
		}
	}
	if err := b.r.Close(); err != nil {
		errs = append(errs, err)
	}
	// The ring is gone: the kernel holds no reference to efbuf any more.
	b.pin.Unpin()
	b.armed = false
	b.ops = 0
	if err := unix.Close(b.efd); err != nil {
		errs = append(errs, fmt.Errorf("close eventfd: %w", err))
	}
	return errors.Join(errs...)
}
