// Package loop is RingMachine's reactor: EventMachine's programming model
// (EM.run, timers, next_tick, defer, servers and connections) on one
// goroutine locked to one OS thread, over io_uring or, where io_uring is
// missing or disabled, epoll.
//
//	err := loop.Run(func(l *loop.Loop) {
//		l.AddPeriodicTimer(time.Second, func() { fmt.Println("Tick ...") })
//		l.AddTimer(5*time.Second, func() {
//			fmt.Println("BOOM")
//			l.Stop()
//		})
//	})
//
// A server whose setup can fail and that stops on Ctrl-C is a context and
// [RunContext]; a setup error stops the loop and comes back from it:
//
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
//	defer stop()
//	err := loop.RunContext(ctx, func(l *loop.Loop) error {
//		_, err := l.StartServer("127.0.0.1:10000", func() conn.Handler { return echo{} })
//		return err
//	})
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
//     all its queued bytes), submit pending operations and wait — not at all if ticks
//     are pending, otherwise until the earliest timer or a wake-up (an
//     eventfd that NextTick, Defer results and Stop write, once per
//     wake-up) — then dispatch the completions.
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
// [Group.StartServer] serves one address on every loop: with [AcceptReusePort] (the default)
// each loop has its own SO_REUSEPORT listener and the kernel spreads the
// connections; with [AcceptHandoff] (and always for unix sockets) loop 0
// accepts and hands each connection to the loops in turn. On io_uring the
// connection travels in an IORING_OP_MSG_RING message that loop 0 submits
// on its own ring to the target's — a direct descriptor moved into the
// target's table (IORING_MSG_SEND_FD), or a process fd's number
// (IORING_MSG_DATA): the kernel posts a CQE on the target ring, waking its
// thread, and the target adopts the connection when it dispatches that CQE
// — no eventfd write, no lock, and the submit rides on the acceptor's next
// io_uring_enter. A process fd whose message fails (the target ring is
// gone, its CQ is full) falls back to the target's cross-goroutine queue
// and eventfd, which epoll always uses; a direct descriptor stays with loop
// 0, which serves it. A target that is stopping
// closes what it receives, and fds whose message dies with a closing ring
// are closed with it (handoff.go). BenchmarkGroupEcho measured reuse-port,
// MSG_RING hand-off and queue hand-off equal within noise on a 2-core VM,
// both for ping-pong over established connections and for connection
// churn ("connect/": connect, one round trip, close): the hand-off is
// cheap next to a TCP accept. MSG_RING is the io_uring hand-off by default
// because it costs fewer system calls at the same measured speed;
// reuse-port stays the default accept mode because it has no single
// acceptor. A connection, its handler and its timers stay on one loop
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
// (ENOBUFS), up to Options.RecvBuffersMax; a receive that ran out is simply
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
// A panic in any callback is recovered. With Options.ErrorHandler set it is
// reported there as a *[PanicError] (with the stack) and the loop goes on;
// without one the loop stops cleanly (shutdown hooks run, the pool and
// backend close) and Run returns the *PanicError.
package loop
