package loop

import (
	"github.com/ringmachine/ringmachine/uring"
)

var _ msgRinger = (*uringBackend)(nil)

// msgRingFD returns the ring's fd when the kernel has IORING_OP_MSG_RING
// (Linux 5.18), -1 otherwise. It probes the ring: call it once per Run.
func (b *uringBackend) msgRingFD() int {
	p, err := b.r.Probe()
	if err != nil || !p.Supported(uring.OpMsgRing) {
		return -1
	}
	return b.r.FD()
}

// msgRing submits IORING_OP_MSG_RING with IORING_MSG_DATA to the ring ringFD:
// the target gets a CQE with UserData data and Res res, this ring one with
// tok (0 or -errno), counted in ops like any operation of the loop. The
// message carries no memory: nothing to pin.
func (b *uringBackend) msgRing(ringFD int, res uint32, data, tok uint64) error {
	s, err := b.sqe()
	if err != nil {
		return err
	}
	s.PrepMsgRing(ringFD, res, data, 0)
	s.SetUserData(tok)
	b.ops++
	return nil
}

// reapHandoff handles a CQE that another ring posted on this one with
// MSG_RING (a hand-off, see handoff.go) and reports whether c was one. Such
// a CQE answers no operation of ours, so it is not counted in ops; at close
// (dispatch nil) it is dropped, and the loop closes the fd it carried
// (handoffInbox.drain).
func (b *uringBackend) reapHandoff(c *uring.CQE, dispatch func(*completion)) bool {
	if opKind(c.UserData>>tokKindShift) != opHandoffIn {
		return false
	}
	if dispatch != nil {
		b.comp = completion{tok: c.UserData, res: c.Res, flags: c.Flags}
		dispatch(&b.comp)
		b.comp = completion{}
	}
	return true
}
