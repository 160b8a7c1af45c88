// Package loop is RingMachine's reactor: EventMachine's programming model
// (EM.run, timers, next_tick, defer, servers and connections) on one
// goroutine locked to one OS thread, over io_uring or, where io_uring is
// missing or disabled, epoll.
//
// # A server
//
// A server is a handler type (package conn), a context that ends on Ctrl-C,
// and [RunContext]. A setup error, such as an address in use, stops the
// loop and comes back from RunContext, naming the address; when the context
// ends the loop stops gracefully (queued output is flushed, every Unbind
// runs):
//
//	type echo struct{ conn.Base }
//
//	func (echo) ReceiveData(c *conn.Conn, data []byte) { c.SendData(data) }
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
//		defer stop()
//		err := loop.RunContext(ctx, func(l *loop.Loop) error {
//			_, err := l.StartServer("127.0.0.1:10000", func() conn.Handler { return echo{} })
//			return err
//		})
//		if err != nil {
//			log.Fatal(err)
//		}
//	}
//
// [Loop.StartServer] takes "host:port" (TCP), "unix:/path" or
// "unix:@abstract"; [Loop.OpenDatagram] opens a UDP socket. A handler
// reaches its loop with [Of], for timers, NextTick or more connections.
//
// # A client
//
// [Loop.Connect] returns the connection at once; the handler's
// ConnectionCompleted runs when it is established, or Unbind with the
// reason when it fails (refused, unreachable, connect timeout):
//
//	type hello struct{ conn.Base }
//
//	func (hello) ConnectionCompleted(c *conn.Conn) { c.SendData([]byte("hello\n")) }
//	func (hello) ReceiveData(c *conn.Conn, data []byte) { fmt.Printf("%s", data); c.Close() }
//	func (hello) Unbind(c *conn.Conn, reason error) { loop.Of(c).Stop() }
//
//	err := loop.Run(func(l *loop.Loop) {
//		if _, err := l.Connect("127.0.0.1:10000", hello{}); err != nil {
//			log.Print(err)
//			l.Stop()
//		}
//	})
//
// # Timers, ticks and blocking work
//
//	err := loop.Run(func(l *loop.Loop) {
//		l.AddPeriodicTimer(time.Second, func() { fmt.Println("Tick ...") })
//		l.AddTimer(5*time.Second, func() {
//			fmt.Println("BOOM")
//			l.Stop()
//		})
//	})
//
// [Loop.NextTick] runs a function in the next iteration (and is the way in
// from other goroutines); [Defer] runs blocking work on a worker pool and
// its result on the loop.
//
// # Backpressure
//
// A connection's SendData never blocks: it queues. A server bounds memory
// for a peer that does not read with conn.Conn.SetOutboundLimits (reading
// pauses above the high watermark, Drained at the low one, an optional hard
// cap); a proxy that forwards through its handlers pauses the connection
// it reads from and resumes it with conn.Conn.NotifyDrained on the other
// side (examples/proxy -copy).
//
// # Proxying
//
// conn.Conn.ProxyTo sends everything a connection receives on to another
// of the same loop without calling its handler: the kernel splices the
// bytes from socket to socket through a pipe of the loop's pool (on
// io_uring, the ring polls and the loop calls splice(2); under TLS they are
// copied). The target's queue bounds it: past the buffer size the source
// is not read, so its peer waits in TCP. ProxyToN stops after n bytes
// (conn.ProxyCompleter), StopProxy at once, and the target's close ends it
// (conn.ProxyTargetWatcher); the bytes on their way are never lost
// (proxy_linux.go).
//
// # TLS and socket options
//
// conn.Conn.StartTLS switches a connection to crypto/tls, as a server or a
// client, at once or after a plaintext exchange (STARTTLS); the handler
// keeps reading and writing plaintext. The handshake runs on a goroutine of
// its own, bounded by Options.TLSHandshakeTimeout; the records are
// encrypted and decrypted on the loop (tls_linux.go). Options.Socket sets
// the socket options of every TCP connection (TCP_NODELAY, keep-alive,
// buffer sizes); conn.Conn.SetNoDelay, SetKeepAlive, SetSockOpt and Control
// change one connection's. [Loop.BindConnect] connects from a chosen local
// address and [Loop.Reconnect] dials again for an ended client.
//
// # One loop iteration
//
// [Loop.Run] repeats three phases until [Loop.Stop]; after each phase come
// the closes it caused (connections closed during the phase get Unbind then,
// never inside Close itself, exactly once):
//
//  1. Ticks (runTicks): run the NextTick queue as it stood when the phase
//     began, finished Defer callbacks first, then ticks queued from any
//     goroutine. Ticks queued meanwhile run in the next iteration, so a
//     self-rescheduling tick cannot starve I/O or timers.
//  2. I/O (pollIO): flush pending sends (one send per connection carrying
//     all its queued bytes), yield the goroutine's P to the Go scheduler if
//     the loop has been busy for Options.YieldEvery, submit pending
//     operations and wait — not at all if ticks are pending, otherwise
//     until the earliest timer or a wake-up (an eventfd that NextTick,
//     Defer results and Stop write, once per wake-up) — then dispatch the
//     completions, the first of which refreshes the cached time (a wait
//     without completions refreshes it on return). The wait's timeout is
//     measured from the time the timer phase read, or from a fresh read if
//     a tick or timer callback ran since: two clock reads per iteration.
//  3. Timers (runTimers): refresh the loop's cached time ([Loop.Now]) and run
//     every timer due by then, in deadline order, ties in insertion order. A
//     timer added during this phase (even with delay 0), and a periodic timer
//     re-armed after its callback, wait for the next iteration.
//
// So, from the Run callback, NextTick work runs before AddTimer(0) work; a
// tick queued by a tick runs after the timers that are due by then.
//
// # Goroutines
//
// Everything runs on the loop goroutine: the Run callback, ticks, timers,
// Defer callbacks, connection handlers. None of them ever runs concurrently
// with another of the same loop, so they need no locks between them. Methods
// are to be called from the loop goroutine unless their documentation says
// "Safe for concurrent use" (Stop, NextTick, Running, Backend). Blocking work
// belongs in [Defer], which runs it on a pool of Options.PoolSize workers
// (20 by default, like EventMachine's thread pool).
//
// # Processes
//
// [Loop.Popen] runs a program whose standard input and output are a
// connection: ReceiveData gets its output, SendData feeds it, CloseWrite
// closes its input, and Unbind comes once it has exited, with its status
// (Conn.ExitStatus). [Loop.System] collects a program's output and status
// in a [Deferrable]. The loop reaps its children through their pidfds,
// without a goroutine per child, and Stop leaves none running.
//
//	d, err := l.System(loop.ShellCommand("uname -r"), loop.PopenOptions{})
//	if err != nil {
//		return err // a missing program
//	}
//	d.Callback(func(r loop.SystemResult) { fmt.Printf("%s%v\n", r.Output, r.Status) })
//
// [Loop.WatchProcess] calls a [ProcessWatcher] when a process exits, any
// process, through a pidfd the loop polls like a socket; it leaves reaping
// a child to whoever started it.
//
// # Files
//
// [Loop.WatchFile] tells a [FileWatcher] when a file or directory is
// modified, moved or deleted (EventMachine's watch_file), and, for a
// directory, which entry changed. Every watch of a loop shares one inotify
// instance, read on the ring like a socket (readiness and read(2) on
// epoll).
//
// # Descriptors made elsewhere
//
// [Loop.Attach] and [Loop.AttachServer] serve a connected or listening
// stream socket made outside the loop (inherited, socket activation) as
// the loop's own; Attach also takes a pipe or FIFO end, which it reads or
// writes as its access mode allows. Conn.Detach goes the other way: a
// stream connection hands its descriptor back unclosed, after delivering
// what the loop had already read. [Loop.Watch] polls any descriptor for
// its owner, who reads and writes it: a [WatchHandler] hears when it is
// readable or writable.
//
// # Lightweight concurrency
//
// EventMachine's toolkit for coordinating callbacks, all running on the loop
// goroutine (each type's documentation says which methods other goroutines
// may call, and where it differs from EventMachine):
//
//   - [Deferrable] (EM::Deferrable, embeddable; [NewDeferrable] is
//     DefaultDeferrable): a result that succeeds or fails later, with
//     callbacks, errbacks and a timeout.
//   - [Spawn] (EM.spawn): a function run once per [Spawned.Notify], in a later
//     tick; Notify is safe from any goroutine.
//   - [Queue] (EM::Queue): a FIFO that any goroutine pushes to and the loop
//     pops from with callbacks that wait while it is empty.
//   - [Channel] (EM::Channel): publish/subscribe fan-out to every subscriber.
//   - [Iterator] with [Iterator.Each], [Map] and [Inject] (EM::Iterator): an
//     asynchronous walk over a slice with a concurrency limit.
//   - [Loop.TickLoop] (EM.tick_loop): a function called once per iteration
//     until it returns [TickStop].
//
// A panic in any of their callbacks is handled like a panic in any loop
// callback, and the remaining callbacks of the same batch (a Deferrable's
// callbacks, a Channel's subscribers, a Queue's waiting pops) still run.
//
// # Loop groups: one reactor per core
//
// A [Group] runs N loops ([NewGroup]; N <= 0 means runtime.GOMAXPROCS(0)),
// each a complete [Loop] with its own backend, OS thread, timers, NextTick
// queue and Defer pool; [Group.Run] is [Loop.Run] for a group.
// [Group.StartServer] serves one address on every loop: with
// [AcceptReusePort] (the default) each loop has its own SO_REUSEPORT
// listener and the kernel spreads the connections; with [AcceptHandoff]
// (and always for unix sockets) loop 0 accepts and hands each connection to
// the loops in turn (on io_uring in an IORING_OP_MSG_RING message; see
// handoff.go). A connection, its handler and its timers stay on one loop
// for life; work crosses loops with [Loop.Post] or [Group.Each]. The group
// runs and stops as a unit: [Group.Stop], [Loop.Stop] on any member, or a
// panic without ErrorHandler stops every loop gracefully, and [Group.Run]
// returns the loops' errors joined.
//
// # Limits and back-pressure
//
// [RaiseFileLimit] raises RLIMIT_NOFILE (EventMachine's
// set_descriptor_table_size). A server out of descriptors (EMFILE, ENFILE)
// pauses accepting, retrying after 5 ms, doubling up to 1 s, and resets once
// an accept succeeds; existing connections are served meanwhile and new
// ones wait in the listen backlog. (io_uring's accept reads RLIMIT_NOFILE
// when it is armed: a limit changed while a server runs applies to its
// accept after the next EMFILE re-arms it; TestStressFDExhaustion.) The io_uring provided-buffer ring starts
// with Options.RecvBuffers buffers and doubles when receives run out
// (ENOBUFS), up to URingOptions.RecvBuffersMax; a receive that ran out is simply
// re-armed, its bytes waiting in the socket, so nothing is lost or
// reordered. A full submission queue is submitted and reused; completions
// beyond the CQ wait in the kernel's overflow list (IORING_FEAT_NODROP).
//
// # Backends
//
// Options.Backend chooses the backend: [Auto] (io_uring when the kernel has
// what the loop needs, epoll otherwise; the RINGMACHINE_BACKEND environment
// variable, "uring" or "epoll", overrides it), [URing] or [Epoll]. The two
// engines are packages of their own (uring/engine and fallback_epoll) with
// one method set and one engine-level conformance table, and the loop runs
// the same tests over both; [Loop.Backend] tells which one runs.
//
// # Errors and panics
//
// Functions return errors wrapped with the operation and, for sockets, the
// address ("conn: listen 127.0.0.1:10000 (uring): bind: address already
// in use", a *conn.OpError); compare with errors.Is against the sentinels of this package and
// of conn, or the errno. A connection's failures reach its handler's Unbind
// as a *conn.OpError. A panic in any callback is recovered. With Options.ErrorHandler set it is
// reported there as a *[PanicError] (with the stack) and the loop goes on;
// without one the loop stops cleanly (shutdown hooks run, the pool and
// backend close) and Run returns the *PanicError.
package loop
