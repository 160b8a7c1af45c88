package loop

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/connio"
)

// Backend names an I/O backend.
type Backend uint8

const (
	// Auto picks io_uring when the kernel offers everything the loop needs and
	// epoll otherwise. The RINGMACHINE_BACKEND environment variable
	// ("uring" or "epoll") overrides Auto, and only Auto.
	Auto Backend = iota
	// URing is the io_uring backend. Asking for it where it cannot work makes
	// Run return an error that names what is missing.
	URing
	// Epoll is the epoll fallback backend.
	Epoll
)

// EnvBackend is the environment variable that overrides [Auto]:
// "uring" or "epoll" (an empty value means Auto).
const EnvBackend = "RINGMACHINE_BACKEND"

// String returns "auto", "uring" or "epoll".
func (b Backend) String() string {
	switch b {
	case Auto:
		return "auto"
	case URing:
		return "uring"
	case Epoll:
		return "epoll"
	}
	return fmt.Sprintf("Backend(%d)", uint8(b))
}

// ParseBackend parses "auto", "uring" or "epoll" (the empty string is Auto).
// Any other value returns an error wrapping [ErrInvalidBackend].
func ParseBackend(s string) (Backend, error) {
	switch s {
	case "", "auto":
		return Auto, nil
	case "uring", "io_uring":
		return URing, nil
	case "epoll":
		return Epoll, nil
	}
	return Auto, fmt.Errorf("%w: %q (want auto, uring or epoll)", ErrInvalidBackend, s)
}

// DefaultPoolSize is the number of Defer workers when Options.PoolSize is 0:
// EventMachine's threadpool_size.
const DefaultPoolSize = 20

// DefaultStopTimeout is how long Stop lets connections flush their outbound
// data when Options.StopTimeout is 0.
const DefaultStopTimeout = 5 * time.Second

// Options configures a Loop. The zero value is ready to use.
type Options struct {
	// Backend selects the I/O backend; the default, Auto, prefers io_uring.
	Backend Backend

	// PoolSize is the number of worker goroutines behind Defer
	// (default DefaultPoolSize, like EventMachine's 20 threads).
	PoolSize int

	// MaxTimers caps the number of pending timers; 0, the default, means
	// unlimited (EventMachine's set_max_timers defaults to 100,000). Beyond
	// it AddTimer and AddPeriodicTimer return ErrTooManyTimers.
	MaxTimers int

	// ErrorHandler, when set, receives every panic recovered from a callback
	// (as a *PanicError carrying the stack) and the loop goes on, like
	// EventMachine's EM.error_handler. When nil, the first panic stops the loop
	// cleanly and Run returns it. The handler runs on the loop goroutine; a
	// panic inside it stops the loop.
	//
	// It also receives the errors no callback can take, as *conn.OpError:
	// a server's accept failing (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...; the
	// server retries after 5 ms, doubling the pause on each failure in a row
	// up to 1 s, and back to 5 ms once an accept succeeds). Those do not stop
	// the loop and are dropped when the handler is nil.
	ErrorHandler func(err error)

	// StopTimeout bounds how long Stop waits for connections to flush their
	// queued output (default DefaultStopTimeout; negative means do not wait).
	StopTimeout time.Duration

	// FixedGOMAXPROCS leaves runtime.GOMAXPROCS alone. By default Run
	// raises it from 1 to 2 (a process pinned to one CPU, or in a one-CPU
	// container, starts at 1), and never changes it otherwise: a loop's
	// thread spends its idle time blocked in a system call, and with no
	// other P the Go scheduler hands the loop's P to a new spinning thread
	// at every such wait and wakes sysmon at its shortest interval. On one
	// CPU those context switches cost a loop about 6 % of its throughput
	// (README, "One CPU").
	FixedGOMAXPROCS bool

	// YieldEvery is how long a busy loop runs before it lets the Go
	// scheduler have its P (runtime.Gosched) once, on its way into the next
	// I/O wait (default DefaultYieldEvery; negative means never). A loop
	// that waits in the kernel and wakes to work again never parks, so the
	// runtime sees one goroutine running without a reschedule: every 10 ms
	// its sysmon thread retakes the loop's P in the middle of a system call
	// and then polls at its shortest interval (20 µs) for a millisecond or
	// more. Those wake-ups and the context switches they cause cost a busy
	// loop about 16 % of its throughput on one CPU (bench/README.md
	// "Per-request costs"). A yield costs about 4 µs on a pinned CPU and
	// 13 to 14 µs when a thread on another CPU takes the P
	// (BenchmarkLockedGosched), and delays only the output queued in that
	// iteration. A loop that blocked in its wait for a whole
	// interval or more is not busy: it does not yield, so a server seeing
	// a request now and then pays nothing.
	YieldEvery time.Duration

	// DebugPoisonReceive, for tests, overwrites the bytes passed to
	// ReceiveData (and ReceiveDatagram) with 0xDB once the callback returns,
	// so a handler that keeps the slice instead of copying it sees garbage.
	DebugPoisonReceive bool

	// RecvBufferSize is the size of each receive buffer (default
	// DefaultRecvBufferSize): the most bytes one ReceiveData call carries.
	RecvBufferSize int

	// RecvBuffers is the number of receive buffers the loop shares between
	// all its connections (default DefaultRecvBuffers): io_uring's
	// provided-buffer ring, epoll's receive arena. A connection holds one
	// only while its data is being delivered.
	RecvBuffers int

	// ListenBacklog is the listen(2) backlog of servers (default
	// DefaultListenBacklog).
	ListenBacklog int

	// TLSHandshakeTimeout bounds the TLS handshake of conn.Conn.StartTLS
	// (default conn.DefaultTLSHandshakeTimeout); a connection whose
	// handshake takes longer is closed with Unbind(conn.ErrTLSHandshakeTimeout).
	TLSHandshakeTimeout time.Duration

	// Socket holds the socket options every TCP connection of the loop
	// starts with, accepted or connected (EventMachine's set_sock_opt and
	// enable_keepalive, for all connections at once). A handler changes
	// them per connection with conn.Conn's SetNoDelay, SetKeepAlive,
	// SetReadBuffer, ... or Control.
	Socket SocketOptions

	// ReusePort sets SO_REUSEPORT on servers' sockets, so several loops can
	// listen on one address and the kernel spreads connections among them.
	// Group.StartServer sets it itself when it needs it.
	ReusePort bool

	// Accept chooses how servers started with Group.StartServer spread
	// connections over the loops (default AcceptReusePort). Loops outside a
	// group ignore it.
	Accept AcceptMode

	// URing tunes the io_uring engine; the epoll engine ignores it. The
	// zero value is the measured best.
	URing URingOptions
}

// SocketOptions are the socket options of a loop's TCP connections
// (Options.Socket). Servers set them on their listening socket, whose
// accepted connections inherit them (so accepting costs no system call for
// them); clients get them before they connect. Their zero value is Go's
// net default: TCP_NODELAY on, keep-alive and buffer sizes the system's.
type SocketOptions struct {
	// Delay leaves Nagle's algorithm on (TCP_NODELAY off): small writes
	// wait to be coalesced with the next ones, up to a round trip. By
	// default it is off, as in Go's net: the loop already coalesces a
	// connection's writes into one send per iteration.
	Delay bool

	// KeepAlive, when KeepAlive.Enable is set, turns on TCP keep-alive
	// probes with its Idle, Interval and Count, as
	// conn.Conn.SetKeepAlive does. Unset, the system's default (off).
	KeepAlive net.KeepAliveConfig

	// ReadBuffer and WriteBuffer, when positive, set SO_RCVBUF and
	// SO_SNDBUF (the kernel doubles them and caps them at
	// net.core.rmem_max and wmem_max). 0: the system's autotuning.
	ReadBuffer, WriteBuffer int
}

// apply sets o on the TCP socket fd; the error names the option.
func (o *SocketOptions) apply(fd int) error {
	if err := connio.SetNoDelay(fd, !o.Delay); err != nil {
		return err
	}
	if o.KeepAlive.Enable {
		if err := connio.SetKeepAlive(fd, o.KeepAlive); err != nil {
			return err
		}
	}
	if o.ReadBuffer > 0 {
		if err := connio.SetReadBuffer(fd, o.ReadBuffer); err != nil {
			return err
		}
	}
	if o.WriteBuffer > 0 {
		if err := connio.SetWriteBuffer(fd, o.WriteBuffer); err != nil {
			return err
		}
	}
	return nil
}

// onlyNoDelay reports whether o sets nothing but the default TCP_NODELAY.
func (o *SocketOptions) onlyNoDelay() bool {
	return !o.Delay && !o.KeepAlive.Enable && o.ReadBuffer <= 0 && o.WriteBuffer <= 0
}

// URingOptions tunes the io_uring engine (Options.URing): they switch its
// features on and off, for measurement (BenchmarkURingFeatures; README
// "io_uring feature A/B") and for kernels where one misbehaves, and size its
// buffer ring. Their zero values are the measured best. The epoll engine
// ignores them.
type URingOptions struct {
	// Recv chooses how connections receive (default RecvMultishot).
	Recv URingRecvMode

	// SendZC is a size in bytes: a send of at least this many bytes goes
	// out as IORING_OP_SEND_ZC (one buffer) or IORING_OP_SENDMSG_ZC (several),
	// which lets the kernel read the outbound buffers in place instead of
	// copying them into the socket. 0, the default, means never (on loopback
	// the kernel copies anyway; see the README). Only TCP connections use it.
	//
	// A zero-copy send completes twice: its result, then a notification
	// (IORING_CQE_F_NOTIF) once the kernel no longer reads the buffers,
	// which for TCP is when the peer has acknowledged the bytes (or, for a
	// peer that stopped reading, when the socket is closed). The connection
	// goes on at the result; the engine keeps the sent buffers referenced
	// until the notification, and an outbound chunk is reused only after
	// it (a chunk of the engine's pinned send slabs goes back to them
	// then; one of the Go heap, once the slabs are all in use, to the
	// garbage collector), so the kernel never reads bytes written after
	// the send. A send of one slab chunk names it as a registered buffer
	// (IORING_RECVSEND_FIXED_BUF): the kernel pinned its pages once,
	// when the slab was registered, not at every send. A registered slab
	// (1 MiB) counts against RLIMIT_MEMLOCK unless the process has
	// CAP_IPC_LOCK; one the kernel refuses is sent from unregistered, as
	// before. Requires Linux 6.0
	// (SEND_ZC; SENDMSG_ZC is used from 6.1, before that a send takes only
	// its first buffer); a socket that is not TCP, or that refuses it
	// (-EOPNOTSUPP), is sent to the ordinary way.
	SendZC int

	// Setup chooses the io_uring_setup flags (default SetupAuto).
	Setup URingSetupMode

	// Submit chooses when prepared SQEs are submitted (default
	// SubmitBatch).
	Submit URingSubmitMode

	// ProcessFDs makes connections process descriptors, as the
	// epoll backend does. By default (false) io_uring servers accept them,
	// and Connect creates them (IORING_OP_SOCKET), as direct descriptors:
	// they live in the loop's ring (a registered file table as large as RLIMIT_NOFILE allows)
	// instead of the process's descriptor table, so a group of N loops
	// holds N × RLIMIT_NOFILE connections in one process, and the kernel
	// skips an fd lookup per operation (measured 0.99–1.09× the echo
	// throughput of process fds over several runs: README "io_uring
	// feature A/B").
	// Everything a connection does works the same; LocalAddr and
	// RemoteAddr cost one round trip to the kernel the first time. A
	// client or datagram socket whose loop's table is full gets a process
	// fd. A group in AcceptHandoff mode moves connections between the
	// loops' tables (IORING_MSG_SEND_FD). A kernel older than 6.8
	// (FIXED_FD_INSTALL, socket commands) gets process fds throughout.
	ProcessFDs bool

	// MinWait, when at least a microsecond, makes the loop gather
	// completions when it waits: it waits for MinWaitBatch of them, but
	// once MinWait has passed it goes on as soon as one has arrived
	// (IORING_FEAT_MIN_TIMEOUT, Linux 6.12; ignored before). A busy loop
	// then handles more completions per io_uring_enter, each at most
	// MinWait later. 0, the default, waits for the first completion
	// (README "io_uring feature A/B" has the figures).
	MinWait time.Duration

	// MinWaitBatch is the most completions a MinWait wait gathers
	// (default 32).
	MinWaitBatch int

	// SpliceWorker makes a proxy (conn.Conn.ProxyTo) move its bytes with
	// IORING_OP_SPLICE, which io_uring always runs on a kernel worker
	// thread, instead of splice(2) on the loop's thread once the ring
	// reports the socket ready (the default; for a direct descriptor on a
	// process fd installed for the proxy's lifetime). An A/B switch: the
	// worker hand-offs cost more CPU per byte (bench/README "Proxy").
	SpliceWorker bool

	// RecvBuffersMax bounds how far the io_uring backend grows its
	// provided-buffer ring when receives run out of buffers (ENOBUFS): it
	// starts with RecvBuffers buffers and doubles on exhaustion, at most once
	// per loop iteration, up to RecvBuffersMax (default 8 × RecvBuffers, at
	// most 32768; a power of two no smaller than RecvBuffers). A buffer costs
	// resident memory only once the kernel has written into it. The epoll
	// backend reads into an arena reset every iteration and never runs out.
	RecvBuffersMax int
}

// URingRecvMode is how the io_uring backend receives on stream connections
// (URingOptions.Recv).
type URingRecvMode uint8

const (
	// RecvMultishot arms one multishot IORING_OP_RECV per connection that
	// picks its buffers from the loop's provided-buffer ring
	// (Options.RecvBuffers): an idle connection holds no buffer, and one
	// submission serves many receives; each completion carries one buffer.
	// The default.
	RecvMultishot URingRecvMode = iota
	// RecvSingleShot submits one IORING_OP_RECV at a time into a buffer of
	// Options.RecvBufferSize owned by the connection while that receive is
	// armed, and re-arms it after every completion. A receive is armed
	// whenever the connection reads, so an idle connection holds a whole
	// buffer (16 KiB by default) in this mode.
	RecvSingleShot
	// RecvMultishotBundle is RecvMultishot taking bundles of buffers
	// (IORING_RECVSEND_BUNDLE): a completion carries up to four buffers, as
	// many as the socket has bytes for, which ReceiveData still gets one
	// buffer at a time, in order. Fewer completions for bulk streams (1.11×
	// the 64 KB echo). The engine falls back to RecvMultishot on kernels
	// without bundles (before 6.10) or without their per-completion cap,
	// and on 6.13.11 to 6.14.8, whose bundles can reorder a stream. Not the
	// default because a kernel's version does not tell which of its bundle
	// fixes it carries (README "io_uring feature A/B").
	RecvMultishotBundle
)

// String returns "multishot", "singleshot" or "multishot-bundle".
func (m URingRecvMode) String() string {
	switch m {
	case RecvMultishot:
		return "multishot"
	case RecvSingleShot:
		return "singleshot"
	case RecvMultishotBundle:
		return "multishot-bundle"
	}
	return fmt.Sprintf("URingRecvMode(%d)", uint8(m))
}

// URingSetupMode selects the io_uring_setup(2) flags that decide where and when
// the kernel runs completion work (URingOptions.Setup).
type URingSetupMode uint8

const (
	// SetupAuto takes the first the kernel accepts of SetupDeferTaskrun,
	// SetupCoopTaskrun and SetupNoTaskrunFlags (uring.New's choice). The
	// default.
	SetupAuto URingSetupMode = iota
	// SetupDeferTaskrun asks for IORING_SETUP_SINGLE_ISSUER |
	// IORING_SETUP_DEFER_TASKRUN (with TASKRUN_FLAG where accepted, Linux
	// 6.1): completion work runs only when the loop waits, and the ring fd
	// is registered. Where the kernel refuses it the io_uring backend does
	// not open (Run fails with Backend URing; Auto falls back to epoll).
	SetupDeferTaskrun
	// SetupCoopTaskrun asks for IORING_SETUP_COOP_TASKRUN |
	// IORING_SETUP_TASKRUN_FLAG (Linux 5.19): completion work does not
	// interrupt the loop thread but runs at its next kernel entry. Refused
	// like SetupDeferTaskrun.
	SetupCoopTaskrun
	// SetupNoTaskrunFlags asks for none of those flags: the kernel
	// interrupts the loop thread to post completions (task work with IPIs).
	SetupNoTaskrunFlags
)

// String returns "auto", "defer-taskrun", "coop-taskrun" or "none".
func (m URingSetupMode) String() string {
	switch m {
	case SetupAuto:
		return "auto"
	case SetupDeferTaskrun:
		return "defer-taskrun"
	case SetupCoopTaskrun:
		return "coop-taskrun"
	case SetupNoTaskrunFlags:
		return "none"
	}
	return fmt.Sprintf("URingSetupMode(%d)", uint8(m))
}

// URingSubmitMode is when the io_uring backend hands prepared SQEs to the kernel
// (URingOptions.Submit).
type URingSubmitMode uint8

const (
	// SubmitBatch submits everything an iteration prepared in the one
	// io_uring_enter that also waits for completions (or earlier when the
	// submission queue fills). The default.
	SubmitBatch URingSubmitMode = iota
	// SubmitPerOp gives every operation its own io_uring_enter: the SQE
	// queued last is submitted before the next one is prepared (linked
	// pairs go together), the last one with the wait. For measuring what
	// batching saves.
	SubmitPerOp
)

// String returns "batch" or "per-op".
func (m URingSubmitMode) String() string {
	switch m {
	case SubmitBatch:
		return "batch"
	case SubmitPerOp:
		return "per-op"
	}
	return fmt.Sprintf("URingSubmitMode(%d)", uint8(m))
}

// AcceptMode is how a [Group] server spreads connections over its loops.
type AcceptMode uint8

const (
	// AcceptReusePort gives every loop its own listening socket on the same
	// address with SO_REUSEPORT: the kernel hashes each new connection to
	// one of them, and no loop ever touches another's connections. It is the
	// default (measured faster: see the package documentation). Unix-domain
	// servers cannot share an address this way and use AcceptHandoff.
	AcceptReusePort AcceptMode = iota
	// AcceptHandoff has one listening socket on the group's first loop,
	// which hands each accepted connection to the loops in turn (itself
	// included): on io_uring in an IORING_OP_MSG_RING message to the
	// target's ring (Linux 5.18), otherwise, or when a message fails,
	// through the target's cross-goroutine queue and eventfd. An even
	// spread whatever the clients' addresses, for one extra wake-up per
	// connection. The socket starts accepting once every loop of the group
	// runs. A direct descriptor (see URingProcessFDs) moves into the
	// target's table; one the target cannot take at that moment (its
	// promised slots spent, its table full, the message failed) stays
	// with the first loop, which serves it.
	AcceptHandoff
)

// String returns "reuseport" or "handoff".
func (m AcceptMode) String() string {
	switch m {
	case AcceptReusePort:
		return "reuseport"
	case AcceptHandoff:
		return "handoff"
	}
	return fmt.Sprintf("AcceptMode(%d)", uint8(m))
}

// Defaults of the networking options.
const (
	DefaultRecvBufferSize = 16 << 10
	DefaultRecvBuffers    = 256
	DefaultListenBacklog  = 1024
)

// DefaultYieldEvery is Options.YieldEvery's default: a busy loop yields its P
// to the Go scheduler at most every 2 ms.
const DefaultYieldEvery = 2 * time.Millisecond

// validate checks o and fills defaults.
func (o *Options) validate() error {
	if o.Backend > Epoll {
		return fmt.Errorf("%w: %v", ErrInvalidBackend, o.Backend)
	}
	if o.PoolSize < 0 {
		return fmt.Errorf("loop: negative PoolSize %d", o.PoolSize)
	}
	if o.PoolSize == 0 {
		o.PoolSize = DefaultPoolSize
	}
	if o.YieldEvery == 0 {
		o.YieldEvery = DefaultYieldEvery
	}
	if o.MaxTimers < 0 {
		return fmt.Errorf("loop: negative MaxTimers %d", o.MaxTimers)
	}
	if o.RecvBufferSize < 0 || o.RecvBuffers < 0 || o.ListenBacklog < 0 {
		return fmt.Errorf("loop: negative RecvBufferSize, RecvBuffers or ListenBacklog")
	}
	if o.RecvBufferSize == 0 {
		o.RecvBufferSize = DefaultRecvBufferSize
	}
	if o.RecvBuffers == 0 {
		o.RecvBuffers = DefaultRecvBuffers
	}
	if o.RecvBuffers > 32768 || o.RecvBuffers&(o.RecvBuffers-1) != 0 {
		return fmt.Errorf("loop: RecvBuffers %d is not a power of two up to 32768", o.RecvBuffers)
	}
	if o.URing.RecvBuffersMax < 0 {
		return fmt.Errorf("loop: negative URing.RecvBuffersMax %d", o.URing.RecvBuffersMax)
	}
	if o.URing.RecvBuffersMax == 0 {
		o.URing.RecvBuffersMax = min(8*o.RecvBuffers, 32768)
	}
	if o.URing.RecvBuffersMax < o.RecvBuffers || o.URing.RecvBuffersMax > 32768 || o.URing.RecvBuffersMax&(o.URing.RecvBuffersMax-1) != 0 {
		return fmt.Errorf("loop: URing.RecvBuffersMax %d is not a power of two from RecvBuffers (%d) up to 32768", o.URing.RecvBuffersMax, o.RecvBuffers)
	}
	if o.Accept > AcceptHandoff {
		return fmt.Errorf("loop: invalid Accept mode %v", o.Accept)
	}
	if o.URing.Recv > RecvMultishotBundle {
		return fmt.Errorf("loop: invalid URing.Recv mode %v (want RecvMultishot, RecvSingleShot or RecvMultishotBundle)", o.URing.Recv)
	}
	if o.URing.SendZC < 0 {
		return fmt.Errorf("loop: negative URing.SendZC %d (0 disables zero-copy sends)", o.URing.SendZC)
	}
	if o.URing.Setup > SetupNoTaskrunFlags {
		return fmt.Errorf("loop: invalid URing.Setup mode %v", o.URing.Setup)
	}
	if o.URing.MinWait < 0 || o.URing.MinWaitBatch < 0 {
		return fmt.Errorf("loop: negative URing.MinWait %v or URing.MinWaitBatch %d", o.URing.MinWait, o.URing.MinWaitBatch)
	}
	if o.URing.Submit > SubmitPerOp {
		return fmt.Errorf("loop: invalid URing.Submit mode %v (want SubmitBatch or SubmitPerOp)", o.URing.Submit)
	}
	if o.Socket.ReadBuffer < 0 || o.Socket.WriteBuffer < 0 {
		return fmt.Errorf("loop: negative Socket.ReadBuffer %d or Socket.WriteBuffer %d", o.Socket.ReadBuffer, o.Socket.WriteBuffer)
	}
	if o.TLSHandshakeTimeout < 0 {
		return fmt.Errorf("loop: negative TLSHandshakeTimeout %v", o.TLSHandshakeTimeout)
	}
	if o.TLSHandshakeTimeout == 0 {
		o.TLSHandshakeTimeout = conn.DefaultTLSHandshakeTimeout
	}
	if o.ListenBacklog == 0 {
		o.ListenBacklog = DefaultListenBacklog
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	return nil
}

// requestedBackend applies the RINGMACHINE_BACKEND override to Auto.
func requestedBackend(b Backend) (Backend, error) {
	if b != Auto {
		return b, nil
	}
	env, err := ParseBackend(os.Getenv(EnvBackend))
	if err != nil {
		return Auto, fmt.Errorf("loop: %s: %w", EnvBackend, err)
	}
	return env, nil
}
