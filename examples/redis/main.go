// Command redis is an in-memory key-value server on RingMachine speaking
// RESP2, the Redis protocol, so redis-cli and redis-benchmark can talk to it.
//
//	go run ./examples/redis                          # listens on 127.0.0.1:6379
//	go run ./examples/redis -addr 127.0.0.1:0        # any free port
//	go run ./examples/redis -max-query 1073741824 -idle-timeout 0
//	redis-benchmark -p 6379 -t ping,set,get -P 16 -q
//
// Commands: PING [msg], ECHO, SET key value [NX|XX] [EX s|PX ms|KEEPTTL]
// [GET], GET, DEL/UNLINK key..., EXISTS key..., INCR, DECR, INCRBY, DECRBY,
// MGET, MSET, EXPIRE, PEXPIRE, TTL, PTTL, PERSIST, DBSIZE, FLUSHALL/FLUSHDB,
// SELECT 0, COMMAND (an empty array: enough for redis-cli), CONFIG GET
// (save and appendonly, as redis-benchmark asks; an empty array otherwise)
// and QUIT. Values are strings only, so WRONGTYPE never happens.
//
// Requests are RESP arrays of bulk strings or inline commands ("PING\r\n",
// with double-quoted arguments), pipelined freely: all the commands of one
// read are answered with one send. Command errors are "-ERR ..." replies
// (unknown command, wrong number of arguments, syntax error, value is not
// an integer or out of range); a protocol error is answered
// "-ERR Protocol error: ..." and the connection closed. Limits: -max-bulk
// (64 MiB by default, at most 512 MiB like Redis's proto-max-bulk-len),
// -max-args (1Mi arguments per command, like Redis), -max-query (128 MiB
// per command by default, room for an MSET of two maximal values; at most
// 1 GiB, Redis's client-query-buffer-limit), and 64 KiB for an inline
// command.
//
// A large command costs time linear in its size: the parser resumes where
// it stopped, the bulk length announced in the header sizes the buffer
// (like redis-server, within a budget of 256 MiB for all connections so
// that clients announcing values they never send cannot make the server
// allocate them; beyond it the buffer doubles as bytes arrive), a value of
// 1 MiB or more is stored in the buffer it arrived in rather than copied,
// and the large arguments already complete stay where they are when the
// rest of the command needs a new buffer (MSET). Other clients are served
// between its reads.
//
// Hostile and slow clients:
//
//   - A client that pipelines commands without reading the replies holds
//     at most about 256 KiB of them (plus one reply, which may be a large
//     value): above that (the high watermark of
//     conn.Conn.SetOutboundLimits) the server stops reading from it, and
//     the commands already received wait unanswered until the queue drains
//     to 64 KiB (Drained). Every reply is still delivered once the client
//     reads, also when the client shut down its sending side meanwhile: the
//     connection closes after the last reply.
//   - -request-timeout (default 30s): a connection whose command stays
//     incomplete that long is closed (slowloris); the time does not run
//     while the server itself is not reading.
//   - -idle-timeout (default 300s; Redis's timeout is 0, never): a
//     connection with no traffic either way for that long is closed. 0
//     disables either timeout.
//   - Errors no connection can take, such as accept failing with EMFILE
//     when out of file descriptors, are printed to stderr ("redis: ...")
//     and the server goes on (the loop retries the accept).
//
// Keys expire lazily, when a command touches them, and in a sweep ten times
// a second that samples keys with an expiry, as Redis's active expiry does.
//
// One loop owns the keyspace, so nothing is locked. -loops > 1 is refused,
// by design: with one map per loop a client would see the keys of whichever
// loop the kernel gave its connection, and MULTI-less pipelines, INCR, EXPIRE
// and the active expiry sweep would need cross-loop hops (or locks) for every
// key not owned locally. Sharding the keyspace by key hash with a Post to the
// owner loop per foreign key is possible but costs a cross-thread round trip
// on most commands of a multi-loop server, more than the second core gives
// back on this single-threaded protocol; Redis itself serves the keyspace
// from one thread for the same reason. The hot path does not allocate (but
// for new keys and values): commands are parsed in place in the received
// bytes, only an incomplete command (or a backlog held while the client
// does not read) is copied, and replies go into a per-connection buffer
// handed to SendData every 16 KiB or so.
//
// It prints one line once listening ("redis: listening on ADDR (BACKEND)")
// and stops gracefully on SIGINT or SIGTERM. The backend follows
// RINGMACHINE_BACKEND (uring or epoll; io_uring when available otherwise).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/loop"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "redis:", err)
		os.Exit(1)
	}
}

// keepBuffer is the largest buffer a connection keeps between reads; a
// bigger one (a huge command or reply) is dropped once used.
const keepBuffer = 1 << 20

// session is the protocol state of one connection, independent of the
// network so that tests and the fuzz target can drive it directly.
type session struct {
	db *db
	p  respParser
	in inbuf // received and not consumed: an incomplete command, or a backlog
	// limit > 0 makes feed stop answering once it appended more than limit
	// bytes to out; the rest of the input waits in in (see backlog).
	limit int
	// budget, shared by the sessions of a loop, is how many bytes may be
	// allocated ahead for announced bulk strings; reserved is this
	// session's part of it.
	budget   *int
	reserved int
	keptCap  int    // capacity of the buffers holding arguments the parser kept
	backlog  bool   // in may hold complete commands: call feed again
	closed   bool   // QUIT or a protocol error: ignore the rest
	done     uint64 // commands consumed
}

// feed consumes data (valid only during the call), appends the replies to
// out and returns it, and whether the connection must close once they are
// written. With s.limit set, it stops once it appended more than the limit
// and keeps the unanswered commands (s.backlog): feed(nil, ...) goes on.
func (s *session) feed(data []byte, out []byte) ([]byte, bool) {
	if s.closed {
		return out, true
	}
	buffered := s.in.len() > 0
	var more []byte // parsed in place once the buffered command is done
	if buffered && len(data) > 0 {
		if k := s.p.need() - s.in.len(); k > 0 && k < len(data) {
			// Buffer up to the end of the bulk string in progress only:
			// the buffer was sized for it.
			data, more = data[:k], data[k:]
		}
		s.add(data)
	}
	buf := data
	if buffered {
		buf = s.in.pending()
		s.db.lendCap = max(cap(s.in.b), s.keptCap)
	}
	defer func() { s.db.lendCap, s.db.lent = 0, false }()
	s.backlog = false
	done := 0 // bytes of buf consumed
	for start := len(out); done < len(buf); {
		if s.limit > 0 && len(out)-start > s.limit {
			s.backlog = true
			break
		}
		args, n, err := s.p.next(buf[done:])
		if err != nil {
			s.close()
			return appendError(out, "ERR "+err.Error()), true
		}
		if n == 0 {
			break
		}
		if len(args) > 0 {
			var quit bool
			out, quit = s.db.exec(args, out)
			if quit {
				s.close()
				return out, true
			}
		}
		done += n
		s.done++
		s.release()
	}
	if buffered {
		s.in.consume(done, keepBuffer)
		if s.db.lent {
			s.db.lent = false
			s.in.detach()
		}
	} else if done < len(buf) {
		s.add(buf[done:])
	}
	if len(more) > 0 {
		return s.feed(more, out)
	}
	return out, false
}

// add buffers data. A bulk string announced longer than what the buffer
// holds gets its whole size allocated at once (one copy of each byte, as
// redis-server does) while the loop's budget allows; otherwise the buffer
// doubles as bytes arrive, so that clients announcing large values they
// never send cannot make the server allocate them.
func (s *session) add(data []byte) {
	if s.p.nargs > 0 && s.p.bulk < 0 && s.p.pos >= s.db.big && s.in.len() >= s.p.pos && s.in.len()+len(data) > cap(s.in.b)-s.in.off {
		// The buffer is full and its start holds large complete arguments
		// (the first values of an MSET): leave them where they are rather
		// than copy them into a larger buffer. The parser keeps them.
		old, k := s.in.pending(), s.p.pos
		s.p.rebase(old)
		s.keptCap = max(s.keptCap, cap(s.in.b))
		s.in = inbuf{copied: s.in.copied}
		s.in.add(old[k:], 0, false)
	}
	need := s.p.need()
	exact := false
	if want := s.in.len() + len(data); need > want && need > cap(s.in.b) && s.budget != nil && need-s.reserved <= *s.budget {
		*s.budget -= need - s.reserved
		s.reserved = need
		exact = true
	}
	s.in.add(data, need, exact)
}

// release gives back the session's part of the preallocation budget, once
// the command it was for is done.
func (s *session) release() {
	s.keptCap = 0
	if s.reserved > 0 {
		*s.budget += s.reserved
		s.reserved = 0
	}
}

// close ends the session and drops what it holds.
func (s *session) close() {
	s.closed = true
	s.backlog = false
	s.in = inbuf{}
	s.release()
}

// incomplete reports whether part of a command was received and not all
// of it (a backlog of complete commands is not incomplete).
func (s *session) incomplete() bool { return !s.closed && !s.backlog && s.in.len() > 0 }

// Outbound watermarks of every connection (conn.Conn.SetOutboundLimits):
// reading from a client pauses while more than outHigh bytes of replies
// wait for it, and resumes at outLow. A client that pipelines without
// reading its replies thus holds at most about outHigh bytes of replies
// (plus one reply, which may be a large value) and what the loop had
// already received.
const (
	outLow  = 64 << 10
	outHigh = 256 << 10
	// step bounds the output of one feed call (see handler.ReceiveData).
	step = conn.OutboundChunkSize
)

// handler is one connection: its session, its reusable reply buffer and
// its timeouts.
type handler struct {
	s   session
	out []byte
	l   *loop.Loop
	cfg *config

	since time.Time   // when the incomplete command started
	seen  uint64      // s.done when since was set
	eof   bool        // the client sent its last byte (ReceiveEOF)
	timer *loop.Timer // checks the request timeout; nil when not armed
	fire  func()
}

// config is what run's flags set for every connection.
type config struct {
	maxBulk, maxArgs, maxQuery  int
	requestTimeout, idleTimeout time.Duration
}

func (h *handler) PostInit(c *conn.Conn) {
	_ = c.SetOutboundLimits(outLow, outHigh, 0)
	if h.cfg.idleTimeout > 0 {
		_ = c.SetInactivityTimeout(h.cfg.idleTimeout)
	}
}

func (*handler) ConnectionCompleted(*conn.Conn) {}

func (h *handler) ReceiveData(c *conn.Conn, data []byte) {
	// Answer in steps of about 16 KiB, so that SendData queues the replies
	// in the loop's recycled chunks and the reply buffer stays small, until
	// the input is consumed or the client is not keeping up (above the high
	// watermark reading pauses, and Drained goes on).
	for {
		h.s.limit = step
		out, closing := h.s.feed(data, h.out[:0])
		data = nil
		if len(out) > 0 {
			_ = c.SendData(out) // copies
		}
		if cap(out) <= keepBuffer {
			h.out = out
		} else {
			h.out = nil // a large reply: do not keep its buffer
		}
		if closing {
			_ = c.CloseAfterWriting()
			return
		}
		if !h.s.backlog || c.OutboundSize() > outHigh {
			break
		}
	}
	if h.eof && !h.s.backlog {
		_ = c.CloseAfterWriting()
		return
	}
	if observe != nil {
		observe(c.OutboundSize(), h.s.in.len())
	}
	h.watch(c)
}

// observe, when set (by tests, before the server starts), sees after each
// read the bytes queued for the client and the bytes received and not
// consumed yet.
var observe func(queued, buffered int)

// Drained answers the commands left waiting while the client was not
// reading its replies.
func (h *handler) Drained(c *conn.Conn) {
	if h.s.backlog {
		h.ReceiveData(c, nil)
	}
}

// ReceiveEOF: the client sends nothing more. The connection closes once the
// commands already received are answered, which may wait for Drained: left
// to the loop, the EOF would close the connection with them unanswered.
func (h *handler) ReceiveEOF(c *conn.Conn) {
	h.eof = true
	if !h.s.backlog {
		_ = c.CloseAfterWriting()
	}
}

func (h *handler) Unbind(*conn.Conn, error) {
	h.s.close()
	h.timer.Cancel()
	h.timer = nil
}

// watch arms the request timeout when a command is incomplete. One timer
// per connection at most: when it fires it closes the connection if the
// command then in progress started a full timeout ago, and otherwise
// re-arms for the rest of that command's time.
func (h *handler) watch(c *conn.Conn) {
	if h.cfg.requestTimeout <= 0 {
		return
	}
	if !h.s.incomplete() {
		h.since = time.Time{}
		return
	}
	if h.since.IsZero() || h.seen != h.s.done {
		// A new command is in progress; it started with this read, near
		// enough.
		h.since, h.seen = h.l.Now(), h.s.done
	}
	if h.timer.Pending() {
		return
	}
	if h.fire == nil {
		h.fire = func() { h.check(c) }
	}
	h.timer, _ = h.l.AddTimer(max(h.since.Add(h.cfg.requestTimeout).Sub(h.l.Now()), 0), h.fire)
}

func (h *handler) check(c *conn.Conn) {
	h.timer = nil
	if c.Closing() || !h.s.incomplete() || h.since.IsZero() {
		return
	}
	if c.Paused() {
		// Not reading because the client is not reading its replies: the
		// idle timeout deals with a client stuck there.
		h.since = h.l.Now()
	}
	if left := h.since.Add(h.cfg.requestTimeout).Sub(h.l.Now()); left > 0 {
		h.timer, _ = h.l.AddTimer(left, h.fire)
		return
	}
	_ = c.Close()
}

// preallocBudget bounds the bytes allocated ahead, all connections
// together, for bulk strings announced and not yet received (see
// session.add).
const preallocBudget = 256 << 20

// Defaults of the flags that protect the server from slow or idle clients.
const (
	defaultMaxQuery       = 128 << 20
	defaultRequestTimeout = 30 * time.Second
	defaultIdleTimeout    = 300 * time.Second
)

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("redis", flag.ContinueOnError)
	fs.SetOutput(stderr) // usage and flag errors
	addr := fs.String("addr", "127.0.0.1:6379", "listen on `host:port` (or unix:/path)")
	loops := fs.Int("loops", 1, "number of reactors: must be 1 (one loop owns the keyspace)")
	maxBulk := fs.Int("max-bulk", 64<<20, "longest bulk string in `bytes` (at most 512 MiB)")
	maxArgs := fs.Int("max-args", 1<<20, "most arguments in one command")
	maxQuery := fs.Int("max-query", defaultMaxQuery, "most `bytes` in one command (at most 1 GiB)")
	reqTimeout := fs.Duration("request-timeout", defaultRequestTimeout, "close a connection whose command stays incomplete this long (0: never)")
	idleTimeout := fs.Duration("idle-timeout", defaultIdleTimeout, "close a connection after this long without traffic (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case *loops > 1:
		return errors.New("-loops > 1: one loop owns the keyspace (see the package documentation)")
	case *loops < 1:
		return fmt.Errorf("-loops %d: must be 1", *loops)
	case *maxBulk < 1 || *maxBulk > maxBulkHard:
		return fmt.Errorf("-max-bulk %d: must be between 1 and %d", *maxBulk, maxBulkHard)
	case *maxArgs < 1:
		return fmt.Errorf("-max-args %d: must be at least 1", *maxArgs)
	case *maxQuery < 1024 || *maxQuery > maxQueryHard:
		return fmt.Errorf("-max-query %d: must be between 1024 and %d", *maxQuery, maxQueryHard)
	case *reqTimeout < 0:
		return fmt.Errorf("-request-timeout %v: must not be negative", *reqTimeout)
	case *idleTimeout < 0:
		return fmt.Errorf("-idle-timeout %v: must not be negative", *idleTimeout)
	}
	cfg := &config{maxBulk: *maxBulk, maxArgs: *maxArgs, maxQuery: *maxQuery,
		requestTimeout: *reqTimeout, idleTimeout: *idleTimeout}
	var startErr, panicErr error
	var running *loop.Loop
	// Accept failures (EMFILE, ...) are printed and the server goes on (the
	// loop retries the accept); a panic in a handler stops the server and
	// run returns it. The handler runs on the loop goroutine.
	onError := func(err error) {
		if pe := (*loop.PanicError)(nil); errors.As(err, &pe) {
			if panicErr == nil {
				panicErr = err
			}
			running.Stop()
			return
		}
		fmt.Fprintln(stderr, "redis:", err)
	}
	l, err := loop.New(loop.Options{ErrorHandler: onError})
	if err != nil {
		return err
	}
	err = l.Run(func(l *loop.Loop) {
		running = l
		stopOnDone(ctx, l)
		d := newDB(monotonicClock())
		budget := preallocBudget
		if _, err := l.AddPeriodicTimer(100*time.Millisecond, func() { d.sweep(time.Millisecond) }); err != nil {
			startErr = err
			l.Stop()
			return
		}
		srv, err := l.StartServer(*addr, func() conn.Handler {
			return &handler{s: session{db: d, p: newRESPParser(cfg.maxBulk, cfg.maxArgs, cfg.maxQuery), budget: &budget}, l: l, cfg: cfg}
		})
		if err != nil {
			startErr = err
			l.Stop()
			return
		}
		fmt.Fprintf(stdout, "redis: listening on %s (%s)\n", srv.Addr(), l.Backend())
	})
	return errors.Join(startErr, panicErr, err)
}

// stderr receives the errors the server reports and survives (a variable
// for the tests).
var stderr io.Writer = os.Stderr

// stopOnDone stops l when ctx is cancelled (SIGINT, SIGTERM).
func stopOnDone(ctx context.Context, l *loop.Loop) {
	stop := context.AfterFunc(ctx, l.Stop)
	_ = l.AddShutdownHook(func() { stop() })
}
