package engine

import "math"

// User data (the 64-bit token of every SQE and CQE) is shared between the
// caller and the engine. This file is the whole layout.
//
//	top byte   0x00..0xFD  the caller's tokens, passed through untouched
//	           0xFE        MsgTokens: messages between rings (Engine.MsgRing)
//	           0xFF        the engine's own (Reserved), below:
//	  0xFF 00 ........     tokIgnore: CQEs nobody waits for (cancels, NOPs)
//	  0xFF 01 gen16 idx32  tokOp: an operation in the table, first SQE
//	  0xFF 02 gen16 idx32  tokLinked: the same operation's linked second SQE
//	  0xFF 03 ........     tokInstall: an operation waited for at once (Control's install, RegisterDirect, Shutdown)
//	  0xFF 04 gen16 slot32 tokWatch: a direct descriptor's hang-up watch
//	  0xFF FF FF...FF      tokWake: the read on the wake-up eventfd
//
// An operation that needs the engine's help at completion (memory to unpin,
// a linked timeout, a splice's second half, a poll plus a system call) is a
// row of the operation table, and its SQEs carry tokOp/tokLinked with the
// row's index: a CQE finds its row with one comparison and one slice index,
// no map. The row keeps the caller's token, which the completion reports.
// Accepts, multishot receives, closes and messages need no row: their SQEs
// carry the caller's token itself.
const (
	// Reserved is the first user data value the engine keeps for itself:
	// every method refuses a token at or above MsgTokens other than through
	// [Engine.MsgRing] (an error wrapping unix.EINVAL).
	Reserved uint64 = 0xFF << 56
	// MsgTokens is the first token of the range [Engine.MsgRing] delivers:
	// the data of a message must lie in [MsgTokens, Reserved), and a
	// completion whose UserData lies there is a message, not an operation of
	// this engine.
	MsgTokens uint64 = 0xFE << 56

	tokIgnore  = Reserved
	tokOp      = Reserved | 1<<48
	tokLinked  = Reserved | 2<<48
	tokWake    = math.MaxUint64
	tokInstall = Reserved | 3<<48 // an operation waited for at once (waitOwn)
	tokWatch   = Reserved | 4<<48 // | gen16 | slot32: a hang-up watch (watchHangup)

	tokGenMask = 0xFFFF
	tokGenShft = 32
)

func opToken(sub uint64, idx uint32, gen uint16) uint64 {
	return sub | uint64(gen)<<tokGenShft | uint64(idx)
}

func splitOpToken(t uint64) (sub uint64, idx uint32, gen uint16) {
	return t & (0xFFFF << 48), uint32(t), uint16(t >> tokGenShft)
}
