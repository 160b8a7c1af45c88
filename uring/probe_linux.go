package uring

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Probe asks the kernel which opcodes it supports (IORING_REGISTER_PROBE, Linux 5.6). On
// older kernels it returns a *FeatureError.
func (r *Ring) Probe() (*Probe, error) {
	var buf probeBuf
	if err := r.registerProbe(&buf); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return nil, &FeatureError{Feature: "IORING_REGISTER_PROBE"}
		}
		return nil, err
	}
	p := &Probe{lastOp: buf.Header.LastOp}
	for i := 0; i < int(buf.Header.OpsLen) && i < len(buf.Ops); i++ {
		o := buf.Ops[i]
		if o.Flags&probeOpSupported != 0 {
			p.supported[o.Op] = true
		}
	}
	return p, nil
}
