// Command redis is an in-memory key-value server on RingMachine speaking
// RESP2, the Redis protocol, so redis-cli and redis-benchmark can talk to it.
//
//	go run ./examples/redis                          # listens on 127.0.0.1:6379
//	go run ./examples/redis -addr 127.0.0.1:0        # any free port
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
// -max-args (1Mi arguments per command, like Redis), -max-query (1 GiB per
// command, like client-query-buffer-limit), and 64 KiB for an inline command.
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
// from one thread for the same reason. The hot path does not allocate (but for new keys and values): commands
// are parsed in place in the received bytes, only an incomplete command is
// copied, and replies go into a per-connection buffer sent once per read.
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
	db     *db
	p      respParser
	tail   []byte // copy of an incomplete command from earlier reads
	closed bool   // QUIT or a protocol error: ignore the rest
}

// feed consumes data (valid only during the call), appends the replies to
// out and returns it, and whether the connection must close once they are
// written.
func (s *session) feed(data []byte, out []byte) ([]byte, bool) {
	if s.closed {
		return out, true
	}
	buf := data
	if len(s.tail) > 0 {
		s.tail = append(s.tail, data...)
		buf = s.tail
	}
	for len(buf) > 0 {
		args, n, err := s.p.next(buf)
		if err != nil {
			s.closed = true
			s.tail = nil
			return appendError(out, "ERR "+err.Error()), true
		}
		if n == 0 {
			break
		}
		if len(args) > 0 {
			var quit bool
			out, quit = s.db.exec(args, out)
			if quit {
				s.closed = true
				s.tail = nil
				return out, true
			}
		}
		buf = buf[n:]
	}
	// Keep the incomplete command, in a buffer of reasonable size once a
	// huge command is done. buf may alias s.tail: append copies with
	// memmove semantics, and setting s.tail to nil leaves buf intact.
	if cap(s.tail) > keepBuffer && len(buf) <= keepBuffer/4 {
		s.tail = nil
	}
	s.tail = append(s.tail[:0], buf...)
	return out, false
}

// handler is one connection: its session and its reusable reply buffer.
type handler struct {
	conn.Base
	s   session
	out []byte
}

func (h *handler) ReceiveData(c *conn.Conn, data []byte) {
	out, closing := h.s.feed(data, h.out[:0])
	if len(out) > 0 {
		_ = c.SendData(out) // copies
	}
	if cap(out) <= keepBuffer {
		h.out = out
	} else {
		h.out = nil
	}
	if closing {
		_ = c.CloseAfterWriting()
	}
}

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("redis", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:6379", "listen on `host:port` (or unix:/path)")
	loops := fs.Int("loops", 1, "number of reactors: must be 1 (one loop owns the keyspace)")
	maxBulk := fs.Int("max-bulk", 64<<20, "longest bulk string in `bytes` (at most 512 MiB)")
	maxArgs := fs.Int("max-args", 1<<20, "most arguments in one command")
	maxQuery := fs.Int("max-query", 1<<30, "most `bytes` in one command")
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
	case *maxQuery < 1024:
		return fmt.Errorf("-max-query %d: must be at least 1024", *maxQuery)
	}
	var startErr error
	err := loop.Run(func(l *loop.Loop) {
		stopOnDone(ctx, l)
		d := newDB(monotonicClock())
		if _, err := l.AddPeriodicTimer(100*time.Millisecond, func() { d.sweep(time.Millisecond) }); err != nil {
			startErr = err
			l.Stop()
			return
		}
		srv, err := l.StartServer(*addr, func() conn.Handler {
			return &handler{s: session{db: d, p: newRESPParser(*maxBulk, *maxArgs, *maxQuery)}}
		})
		if err != nil {
			startErr = err
			l.Stop()
			return
		}
		fmt.Fprintf(stdout, "redis: listening on %s (%s)\n", srv.Addr(), l.Backend())
	})
	return errors.Join(startErr, err)
}

// stopOnDone stops l when ctx is cancelled (SIGINT, SIGTERM).
func stopOnDone(ctx context.Context, l *loop.Loop) {
	stop := context.AfterFunc(ctx, l.Stop)
	_ = l.AddShutdownHook(func() { stop() })
}
