package uring

// Probe is the set of opcodes the running kernel supports, from [Ring.Probe].
type Probe struct {
	lastOp    Op
	supported [probeOpsMax]bool
}

// Supported reports whether the kernel accepts op. Features carried by flags (multishot
// receive, for instance) are not visible here; see the opcode's doc for its version.
func (p *Probe) Supported(op Op) bool { return p.supported[op] }

// LastOp returns the highest opcode the kernel knows (IORING_OP_LAST - 1).
func (p *Probe) LastOp() Op { return p.lastOp }

// Require returns a *FeatureError naming the first of ops the kernel lacks, or nil.
func (p *Probe) Require(ops ...Op) error {
	for _, op := range ops {
		if !p.Supported(op) {
			return &FeatureError{Feature: op.String()}
		}
	}
	return nil
}
