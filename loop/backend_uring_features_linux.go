package loop

import (
	"errors"
	"fmt"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

// The io_uring features Options lets the user switch (URingRecv, URingSendZC,
// URingSetup, URingSubmit): the backend's side of each.

var _ singleShotReceiver = (*uringBackend)(nil)

// uringFeatures are the backend's switches, fixed when it opens.
type uringFeatures struct {
	sendZC    int  // smallest send to go out zero-copy; 0: none
	sendmsgZC bool // the probe has IORING_OP_SENDMSG_ZC (Linux 6.1)
	perOp     bool // one io_uring_enter per SQE (SubmitPerOp)
	zcSends   int  // zero-copy sends submitted (for tests)
}

func newURingFeatures(cfg backendConfig, r *uring.Ring) uringFeatures {
	f := uringFeatures{sendZC: cfg.sendZC, perOp: cfg.submitPerOp}
	if f.sendZC > 0 {
		if p, err := r.Probe(); err == nil {
			f.sendmsgZC = p.Supported(uring.OpSendmsgZC)
		}
	}
	return f
}

// setupTiers are the taskrun flags each SetupMode asks for, best first; each
// is tried with the extras of uring.New's own choice (setupExtras).
var setupTiers = [...][]uring.SetupFlags{
	SetupDeferTaskrun: {
		uring.SetupSingleIssuer | uring.SetupDeferTaskrun | uring.SetupTaskrunFlag,
		uring.SetupSingleIssuer | uring.SetupDeferTaskrun,
	},
	SetupCoopTaskrun:    {uring.SetupCoopTaskrun | uring.SetupTaskrunFlag},
	SetupNoTaskrunFlags: {0},
}

// setupFeature names what an explicit SetupMode needs, for its error.
var setupFeature = [...]string{
	SetupDeferTaskrun:   "IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN",
	SetupCoopTaskrun:    "IORING_SETUP_COOP_TASKRUN|IORING_SETUP_TASKRUN_FLAG",
	SetupNoTaskrunFlags: "io_uring_setup without taskrun flags",
}

// setupExtras must match the extras uring.New adds to its automatic choice.
var setupExtras = []uring.SetupFlags{
	uring.SetupClamp | uring.SetupSubmitAll | uring.SetupNoSQArray,
	uring.SetupClamp | uring.SetupSubmitAll,
	uring.SetupClamp,
}

// openRing sets up the ring with the flags mode asks for (Options.URingSetup).
// SetupAuto is uring.New's own choice; an explicit mode the kernel refuses
// returns a *uring.FeatureError naming it (so Auto falls back to epoll).
func openRing(entries uint32, mode SetupMode) (*uring.Ring, error) {
	if mode == SetupAuto {
		return uring.New(entries, nil)
	}
	var err error
	for _, t := range setupTiers[mode] {
		for _, e := range setupExtras {
			var r *uring.Ring
			r, err = uring.New(entries, &uring.Options{Flags: t | e, NoAutoFlags: true})
			if err == nil {
				return r, nil
			}
			if !errors.Is(err, unix.EINVAL) {
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("%w (Options.URingSetup %v): %w",
		&uring.FeatureError{Feature: setupFeature[mode]}, mode, err)
}

// submitPerOp submits the SQEs queued so far when Options.URingSubmit is
// SubmitPerOp: called before a new SQE is handed out, so each operation
// enters the kernel on its own (the last one with poll's wait).
func (b *uringBackend) submitPerOp() error {
	if !b.feat.perOp || b.r.SQSpaceLeft() == b.r.SQEntries() {
		return nil
	}
	_, err := b.r.Submit()
	return err
}

// recv submits one IORING_OP_RECV into m.bufs[0] (Options.URingRecv =
// RecvSingleShot).
func (b *uringBackend) recv(fd int, m *opMem, tok uint64) error {
	s, err := b.sqe()
	if err != nil {
		return err
	}
	buf := m.bufs[0]
	// Memory: the kernel writes buf until the CQE; m.bufs keeps it reachable
	// and the pin keeps it in place until m.release.
	m.pin.Pin(&buf[0])
	m.pinned = true
	s.PrepRecv(fd, buf, 0)
	s.SetUserData(tok)
	b.ops++
	return nil
}

// prepSend prepares the send of m.bufs on s: IORING_OP_SENDMSG, or, for
// at least feat.sendZC bytes and unless the loop set m.noZC, SEND_ZC (one
// buffer, or the first one where SENDMSG_ZC is missing: a short send) or
// SENDMSG_ZC. A zero-copy send sets m.zc; its buffers stay pinned in m until
// the notification CQE, which the loop takes as the final completion.
func (b *uringBackend) prepSend(s *uring.SQE, fd int, m *opMem) {
	if b.feat.sendZC > 0 && !m.noZC {
		n, first := 0, -1
		for i, p := range m.bufs {
			n += len(p)
			if first < 0 && len(p) > 0 {
				first = i
			}
		}
		if n >= b.feat.sendZC && first >= 0 {
			m.zc = true
			b.feat.zcSends++
			if n == len(m.bufs[first]) || !b.feat.sendmsgZC {
				p := m.bufs[first]
				// Memory: the kernel reads p until the notification CQE;
				// m.bufs keeps it reachable, the pin keeps it in place until
				// m.release, which the loop calls after the notification.
				m.pin.Pin(&p[0])
				m.pinned = true
				s.PrepSendZC(fd, p, unix.MSG_NOSIGNAL, 0)
				return
			}
			fillMsg(m, m.bufs)
			s.PrepSendmsgZC(fd, &m.msg, unix.MSG_NOSIGNAL)
			return
		}
	}
	if p, ok := singleBuf(m.bufs); ok {
		// One buffer (a small reply, the common case): IORING_OP_SEND
		// spares the kernel the msghdr copy and iovec import and us two of
		// the three pins.
		// Memory: the kernel reads p until the final CQE; m.bufs keeps it
		// reachable and the pin keeps it in place until m.release.
		m.pin.Pin(&p[0])
		m.pinned = true
		s.PrepSend(fd, p, unix.MSG_NOSIGNAL)
		return
	}
	fillMsg(m, m.bufs)
	s.PrepSendmsg(fd, &m.msg, unix.MSG_NOSIGNAL)
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

// The loop's side of single-shot receives (Options.URingRecv).

// maxFreeRecvBufs bounds the loop's pool of single-shot receive buffers.
const maxFreeRecvBufs = 64

// singleShot returns the backend as a singleShotReceiver when
// Options.URingRecv asks for single-shot receives and the backend has them
// (io_uring; epoll ignores the option).
func (l *Loop) singleShot() singleShotReceiver {
	if l.opts.URingRecv != RecvSingleShot {
		return nil
	}
	r, _ := l.be.(singleShotReceiver)
	return r
}

// recvSingleShot arms one receive on s into a buffer of RecvBufferSize that
// s.recvMem owns until the completion (putRecvMem).
func (l *Loop) recvSingleShot(r singleShotReceiver, s *sock) error {
	m := l.getOpMem()
	var buf []byte
	if k := len(l.net.recvBufs); k > 0 {
		buf = l.net.recvBufs[k-1]
		l.net.recvBufs[k-1] = nil
		l.net.recvBufs = l.net.recvBufs[:k-1]
	} else {
		buf = make([]byte, l.opts.RecvBufferSize)
	}
	m.bufs = append(m.bufs[:0], buf)
	if err := r.recv(s.fd, m, s.tok(opRecv)); err != nil {
		l.putOpMem(&m)
		l.net.recvBufs = append(l.net.recvBufs, buf)
		return err
	}
	s.recvMem = m
	return nil
}

// putRecvMem releases the memory of s's single-shot receive, whose final
// completion has been handled (or which was never submitted), and keeps its
// buffer for the next one. Nothing when s has none.
func (l *Loop) putRecvMem(s *sock) {
	m := s.recvMem
	if m == nil {
		return
	}
	buf := m.bufs[0]
	l.putOpMem(&s.recvMem)
	if len(l.net.recvBufs) < maxFreeRecvBufs {
		l.net.recvBufs = append(l.net.recvBufs, buf)
	}
}
