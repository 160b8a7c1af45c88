package loop

import (
	"github.com/ringmachine/ringmachine/uring/engine"
)

// Tokens (user data) name an operation in both engines. This file is the
// whole layout on the loop's side; the engines' side (what they keep for
// themselves) is declared by package engine (uring/engine/token.go), and
// the assertions below keep the two apart at compile time.
//
//	bits 63..56  opKind: the operation (1..opMaxKind), or opHandoffIn
//	bits 55..32  the generation of the socket slot (24 bits)
//	bits 31..0   the slot index in the loop's socket table
//
// A completion whose slot has moved to a new generation is stale: counted
// and dropped. Hand-offs between the loops of a group carry a hand-off
// sequence number where the others have a slot, and no socket record:
// opHandoffIn is the message another ring posts on ours with MSG_RING, so
// its kind is the top byte of engine.MsgTokens, the range the io_uring
// engine delivers messages in; opHandoffOut is our own MSG_RING's
// completion (its generation bits: the target loop's index).
type opKind uint8

const (
	opAccept opKind = iota + 1
	opRecv
	opSend
	opConnect
	opRecvFrom
	opSendTo
	opSendFile
	opClose
	opHandoffOut
	opDropFD    // the close of an fd no socket owns (dropFD)
	opSocket    // a client's socket created as a direct descriptor
	opSpliceIn  // a proxy's source: socket -> pipe
	opSpliceOut // a proxy's target: pipe -> socket
	opPoll      // a watched fd's readability (Watch; WatchProcess's pidfd; WatchFile's inotify fd)
	opPollOut   // a watched fd's writability (Watch)
	opWaitid    // a Popen child's exit (IORING_OP_WAITID)
	opMaxKind   = opWaitid

	opHandoffIn = opKind(engine.MsgTokens >> tokKindShift)
)

const (
	tokKindShift = 56
	tokGenShift  = 32
	tokGenMask   = 1<<24 - 1
)

// The loop's own kinds stay below the engines' ranges, and a hand-off
// message lies inside the io_uring engine's message range: a constant
// overflow here fails the build.
const (
	_ = engine.MsgTokens - (uint64(opMaxKind)+1)<<tokKindShift
	_ = uint64(opHandoffIn)<<tokKindShift - engine.MsgTokens
	_ = engine.Reserved - (uint64(opHandoffIn)+1)<<tokKindShift
)

func makeToken(k opKind, slot, gen uint32) uint64 {
	return uint64(k)<<tokKindShift | uint64(gen&tokGenMask)<<tokGenShift | uint64(slot)
}

func splitToken(t uint64) (k opKind, slot, gen uint32) {
	return opKind(t >> tokKindShift), uint32(t), uint32(t>>tokGenShift) & tokGenMask
}

// handoffToken is the token of a hand-off message (opHandoffIn, posted on
// the target ring) or of the MSG_RING that carries it (opHandoffOut, on the
// acceptor's ring; target is the index of the target loop in the group).
func handoffToken(k opKind, target int, seq uint32) uint64 {
	return makeToken(k, seq, uint32(target))
}
