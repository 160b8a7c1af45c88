package engine

import (
	"errors"
	"time"

	"github.com/ringmachine/ringmachine/uring"
	"golang.org/x/sys/unix"
)

// FlagMore is set in [Completion.Flags] when a multishot operation
// ([Engine.AcceptMultishot], [Engine.RecvMultishot]) will complete again. A
// completion without it is the operation's final one. It is the kernel's
// IORING_CQE_F_MORE.
const FlagMore = uring.CQEFlagMore

// Completion is the result of one operation, as [Engine.Wait] reports it.
//
// UserData is the token the operation was submitted with. Res >= 0 is the
// operation's result (bytes transferred, a new fd, or 0); Res < 0 is -errno,
// which [Completion.Err] turns into an error.
type Completion struct {
	// UserData is the caller's token given at submission.
	UserData uint64
	// Res is the result: >= 0 on success, -errno on failure.
	Res int32
	// Flags holds [FlagMore] for the non-final completions of multishot
	// operations.
	Flags uint32
	// Buf holds the bytes received, for receive operations with Res > 0. For
	// [Engine.RecvMultishot] it is a buffer of the engine's provided-buffer
	// ring, valid only until the next call to [Engine.Wait] (the engine gives
	// it back to the kernel then): copy what you keep. For [Engine.Recv] and
	// [Engine.RecvFrom] it is buf[:Res] of the caller's own buffer. Nil
	// otherwise.
	Buf []byte
	// From is the sender's address for [Engine.RecvFrom] completions with
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

// More reports whether the operation will complete again ([FlagMore]).
func (c Completion) More() bool { return c.Flags&FlagMore != 0 }

// Taskrun is [uring.Taskrun], named here so a caller of the engine need not
// import package uring.
type Taskrun = uring.Taskrun

// The tiers of [Taskrun].
const (
	TaskrunAuto  = uring.TaskrunAuto
	TaskrunDefer = uring.TaskrunDefer
	TaskrunCoop  = uring.TaskrunCoop
	TaskrunNone  = uring.TaskrunNone
)

// Options configures an [Engine]. The zero value selects the defaults.
type Options struct {
	// Entries is the submission queue size (default DefaultEntries); the
	// completion queue is four times larger.
	Entries int
	// Taskrun limits the ring's setup to one tier of task-work flags (default
	// uring.TaskrunAuto, the best the kernel accepts). A tier the kernel
	// refuses makes [New] fail with a *uring.FeatureError.
	Taskrun Taskrun
	// RecvBufferSize is the most bytes one [Engine.RecvMultishot] completion
	// carries: the size of each provided buffer (default
	// DefaultRecvBufferSize).
	RecvBufferSize int
	// RecvBuffers is how many provided buffers the ring starts with (default
	// DefaultRecvBuffers). When a receive runs out of them (-ENOBUFS) the
	// ring doubles, at most once per Wait, up to RecvBuffersMax.
	RecvBuffers int
	// RecvBuffersMax caps the provided buffers (default: RecvBuffers, no
	// growth). Untouched buffers cost address space, not memory.
	RecvBuffersMax int
	// SendZC is a size in bytes: a [Engine.Send] of at least this many bytes
	// goes out zero-copy (IORING_OP_SEND_ZC, or SENDMSG_ZC for several
	// buffers where the kernel has it). 0 disables zero-copy sends. A socket
	// that refuses them (EOPNOTSUPP: AF_UNIX) is sent to the ordinary way,
	// transparently, from then on.
	SendZC int
	// SubmitPerOp enters the kernel once per operation instead of once per
	// Wait (for measurements).
	SubmitPerOp bool
	// DirectFiles, when positive, registers a table of that many slots for
	// direct descriptors (capped at RLIMIT_NOFILE, which the kernel
	// enforces per table): [Engine.AcceptMultishotDirect] puts connections
	// there instead of in the process's descriptor table, so a process holds
	// engines × RLIMIT_NOFILE connections, and the kernel skips an fd lookup
	// on every operation. A kernel without IORING_OP_FIXED_FD_INSTALL
	// (Linux 6.8) gets no table: [Engine.DirectFiles] reports 0.
	DirectFiles int
	// RecvPollFirst submits multishot receives with
	// IORING_RECVSEND_POLL_FIRST: the kernel arms the poll without trying the
	// receive first. Worth it when data rarely waits at arming time; it also
	// widens the kernel race the engine works around (see
	// [Engine.RecvMultishot]), which tests use.
	RecvPollFirst bool
	// MinWait, when at least a microsecond, makes Wait gather completions:
	// it waits for MinWaitBatch of them (default 32), but once MinWait has
	// passed returns as soon as one has arrived (IORING_FEAT_MIN_TIMEOUT,
	// Linux 6.12; ignored on an older kernel, see [Engine.MinWait]). It
	// trades at most MinWait of latency per Wait for fewer, fuller Waits.
	MinWait time.Duration
	// MinWaitBatch is the completions a MinWait wait gathers at most.
	MinWaitBatch int
	// RecvBundle submits multishot receives with IORING_RECVSEND_BUNDLE
	// (Linux 6.10; ignored before, and on 6.13.11 to 6.14.8, whose bundles
	// can reorder a stream; see [Engine.RecvBundle]): one CQE then carries
	// up to four provided buffers, as many as the socket had bytes for,
	// instead of one CQE per buffer. Wait still reports one completion per
	// buffer, in order, each with its own Buf, so callers see no difference
	// but where the stream is split.
	RecvBundle bool
	// SpliceWorker makes SpliceIn and SpliceOut issue IORING_OP_SPLICE,
	// which the kernel always runs on an io-wq worker thread, instead of
	// calling splice(2) on the caller's thread once a POLL_ADD reports the
	// socket ready (the default).
	SpliceWorker bool
	// SendSlabChunk, when positive, gives the engine slabs of send memory
	// pinned once ([Engine.SendSlabs]): chunks of this many bytes, at most
	// SendSlabChunks of them (default 256), allocated 64 at a time as they
	// are needed. A send whose buffers lie in them pins nothing for the
	// operation; any other buffer is pinned from submission to completion.
	// A zero-copy send holds its slab chunks (uring.Slabs.Hold) until its
	// notification: the caller may Put them back at its completion, and
	// the slabs hand them out again only once the kernel no longer reads
	// them.
	SendSlabChunk int
	// SendSlabChunks caps the chunks of SendSlabChunk.
	SendSlabChunks int
	// NoFixedSendBuffers leaves the send slabs out of the ring's
	// fixed-buffer table. By default, with SendZC and SendSlabChunk both
	// set, each slab is registered as a fixed buffer on its first zero-copy
	// send (IORING_REGISTER_BUFFERS_UPDATE), and a zero-copy SEND from it
	// names its slot (IORING_RECVSEND_FIXED_BUF): the kernel pinned its
	// pages once, at registration, instead of mapping and pinning them for
	// every send. A slab the kernel refuses to register (ENOMEM past
	// RLIMIT_MEMLOCK) is sent from as if this were set. For measurements.
	NoFixedSendBuffers bool
}

// DirectBase is the first fd value that names a direct descriptor: fd =
// DirectBase + its slot in the engine's registered file table
// ([Options.DirectFiles]). Every method takes such fds; they are no process
// descriptors, so system calls on them fail (see [Engine.Addrs],
// [Engine.SetSockOptInt], [Engine.Shutdown]).
const DirectBase = 1 << 30

// IsDirect reports whether fd names a direct descriptor.
func IsDirect(fd int) bool { return fd >= DirectBase }

// Defaults of [Options].
const (
	DefaultEntries        = 512
	DefaultRecvBufferSize = 16 << 10
	DefaultRecvBuffers    = 256
)

// ErrClosed is returned by every method of an [Engine] after [Engine.Close].
var ErrClosed = errors.New("engine: closed")

// Stats are counters for tests and measurements ([Engine.Stats]).
type Stats struct {
	// ZeroCopySends counts the sends submitted zero-copy.
	ZeroCopySends int
	// FreshRecvCancels counts the multishot receives cancelled because
	// their connection's hang-up watch saw the peer go: the
	// stranded-receive workaround (see [Engine.RecvMultishot]).
	FreshRecvCancels int
	// RecvBuffers is how many buffers the provided-buffer ring holds now.
	RecvBuffers int
	// PinnedSendBuffers counts the send payload buffers pinned for their
	// operation: those outside the send slabs (Options.SendSlabChunk).
	PinnedSendBuffers int
	// FixedZeroCopySends counts the zero-copy sends from a send slab
	// registered as a fixed buffer (Options.NoFixedSendBuffers).
	FixedZeroCopySends int
	// RecvBundles counts the receive CQEs that filled more than one
	// provided buffer (Options.RecvBundle), and BundledBuffers the buffers
	// they filled.
	RecvBundles, BundledBuffers int
}
