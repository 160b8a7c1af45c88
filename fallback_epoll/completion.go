package epoll

import (
	"errors"

	"golang.org/x/sys/unix"
)

// FlagMore is set in [Completion.Flags] when a multishot operation
// ([Poller.AcceptMultishot], [Poller.RecvMultishot]) will produce more
// completions. A completion without it is the operation's final one.
//
// It has the value of IORING_CQE_F_MORE (1<<1), like the io_uring engine's
// FlagMore: the loop reads a Completion as the io_uring engine's (same
// fields, same order) and asserts at compile time that the two are equal.
const FlagMore uint32 = 1 << 1

// MsgTokens is the first user data value a Poller refuses: every method that
// takes a token returns an error wrapping unix.EINVAL for one at or above it.
// The range is kept for parity with the io_uring engine, which delivers its
// ring messages there and tags its own operations above it (MsgTokens in
// uring/engine/token.go; the two must match): a token valid on one backend
// is valid on the other.
const MsgTokens uint64 = 0xFE << 56

// Completion is the result of one operation, shaped like an io_uring CQE.
//
// UserData is the token the operation was submitted with. Res >= 0 is the
// operation's result (bytes transferred, a new fd, or 0); Res < 0 is -errno,
// the io_uring convention, which [Completion.Err] turns into an error.
type Completion struct {
	// UserData is the caller's token given at submission.
	UserData uint64
	// Res is the result: >= 0 on success, -errno on failure.
	Res int32
	// Flags holds [FlagMore] for non-final completions of multishot ops.
	Flags uint32
	// Buf holds the bytes received, for receive operations with Res > 0.
	// For [Poller.RecvMultishot] it points into the Poller's receive arena
	// and is valid only until the next call to [Poller.Wait]; copy what you
	// keep. For [Poller.Recv] and [Poller.RecvFrom] it is buf[:Res] of the
	// caller's own buffer. Nil otherwise.
	Buf []byte
	// From is the sender's address for [Poller.RecvFrom] completions with
	// Res >= 0; nil otherwise.
	From unix.Sockaddr
}

// Err returns nil when c.Res >= 0 and unix.Errno(-c.Res) otherwise, so
// errors.Is(c.Err(), unix.ECONNREFUSED) works.
func (c Completion) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return unix.Errno(-c.Res)
}

// More reports whether the operation will produce more completions
// ([FlagMore] is set), that is whether c is not its final completion.
func (c Completion) More() bool { return c.Flags&FlagMore != 0 }

// Options configures a [Poller]. The zero value selects the defaults.
type Options struct {
	// RecvBufferSize is the most bytes one [Poller.RecvMultishot] completion
	// carries (the size of one read). Default 64 KiB.
	RecvBufferSize int
	// RecvBuffers is how many RecvBufferSize reads fit in the receive arena
	// that backs [Completion.Buf] between two Wait calls; the arena
	// (RecvBuffers×RecvBufferSize bytes, allocated on first use) is the
	// package's whole receive memory. When it is full, the remaining ready
	// receives wait for the next Wait call. Default 16.
	RecvBuffers int
	// MaxEvents is how many epoll events one epoll_wait(2) may return.
	// Default 256.
	MaxEvents int
}

// Defaults of [Options].
const (
	DefaultRecvBufferSize = 64 << 10
	DefaultRecvBuffers    = 16
	DefaultMaxEvents      = 256
)

// ErrClosed is returned by every method of a [Poller] after [Poller.Close].
var ErrClosed = errors.New("epoll: poller closed")
