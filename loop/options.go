package loop

import (
	"fmt"
	"os"
	"time"
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

	// MaxTimers caps the number of pending timers; 0 means unlimited.
	// Beyond it AddTimer and AddPeriodicTimer return ErrTooManyTimers.
	MaxTimers int

	// ErrorHandler, when set, receives every panic recovered from a callback
	// (as a *PanicError carrying the stack) and the loop goes on, like
	// EventMachine's EM.error_handler. When nil, the first panic stops the loop
	// cleanly and Run returns it. The handler runs on the loop goroutine; a
	// panic inside it stops the loop.
	//
	// It also receives the errors no callback can take, as *conn.OpError:
	// a server's accept failing (EMFILE, ENFILE, ...; the server retries
	// after 100 ms). Those do not stop the loop and are dropped when the
	// handler is nil.
	ErrorHandler func(err error)

	// StopTimeout bounds how long Stop waits for connections to flush their
	// queued output (default DefaultStopTimeout; negative means do not wait).
	StopTimeout time.Duration

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

	// ReusePort sets SO_REUSEPORT on servers' sockets, so several loops can
	// listen on one address and the kernel spreads connections among them.
	// Group.StartServer sets it itself when it needs it.
	ReusePort bool

	// RecvBuffersMax bounds how far the io_uring backend grows its
	// provided-buffer ring when receives run out of buffers (ENOBUFS): it
	// starts with RecvBuffers buffers and doubles on exhaustion, at most once
	// per loop iteration, up to RecvBuffersMax (default 8 × RecvBuffers, at
	// most 32768; a power of two no smaller than RecvBuffers). A buffer costs
	// resident memory only once the kernel has written into it. The epoll
	// backend reads into an arena reset every iteration and never runs out.
	RecvBuffersMax int

	// Accept chooses how servers started with Group.StartServer spread
	// connections over the loops (default AcceptReusePort). Loops outside a
	// group ignore it.
	Accept AcceptMode
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
	// included) through their cross-goroutine queue and eventfd: an even
	// spread whatever the clients' addresses, for one extra wake-up per
	// connection.
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

// Option changes Options; used with the package-level Run.
type Option func(*Options)

// WithOptions replaces all options with o.
func WithOptions(o Options) Option { return func(dst *Options) { *dst = o } }

// WithBackend selects the backend.
func WithBackend(b Backend) Option { return func(o *Options) { o.Backend = b } }

// WithPoolSize sets the number of Defer workers.
func WithPoolSize(n int) Option { return func(o *Options) { o.PoolSize = n } }

// WithMaxTimers caps the number of pending timers.
func WithMaxTimers(n int) Option { return func(o *Options) { o.MaxTimers = n } }

// WithErrorHandler installs the panic handler (see Options.ErrorHandler).
func WithErrorHandler(fn func(error)) Option { return func(o *Options) { o.ErrorHandler = fn } }

// WithStopTimeout sets Options.StopTimeout.
func WithStopTimeout(d time.Duration) Option { return func(o *Options) { o.StopTimeout = d } }

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
	if o.RecvBuffersMax < 0 {
		return fmt.Errorf("loop: negative RecvBuffersMax %d", o.RecvBuffersMax)
	}
	if o.RecvBuffersMax == 0 {
		o.RecvBuffersMax = min(8*o.RecvBuffers, 32768)
	}
	if o.RecvBuffersMax < o.RecvBuffers || o.RecvBuffersMax > 32768 || o.RecvBuffersMax&(o.RecvBuffersMax-1) != 0 {
		return fmt.Errorf("loop: RecvBuffersMax %d is not a power of two from RecvBuffers (%d) up to 32768", o.RecvBuffersMax, o.RecvBuffers)
	}
	if o.Accept > AcceptHandoff {
		return fmt.Errorf("loop: invalid Accept mode %v", o.Accept)
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
