// Command chat is a line-based chat server: what one client types, every
// other client reads, prefixed with the sender's name.
//
//	go run ./examples/chat -addr 127.0.0.1:10002
//	nc 127.0.0.1 10002   # in two terminals
//
// A client gets a guest name; "/nick NAME" changes it, "/quit" leaves. The
// room is a loop.Channel: each connection subscribes to it in PostInit and
// unsubscribes in Unbind, and a line is pushed to it once.
//
// What makes it a server people can run:
//
//   - A client that does not read cannot grow the server's memory without
//     bound: above -queue bytes waiting for it, the server stops reading
//     from it, and past 4 × -queue it is disconnected ("slow reader"), as
//     IRC servers drop a client whose send queue is full.
//   - A line longer than -max-line bytes disconnects its sender.
//   - A client silent for -idle is disconnected.
//
// It stops gracefully on SIGINT or SIGTERM. The backend follows
// RINGMACHINE_BACKEND.
package main

import (
	"bytes"
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
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// stderr receives the usage text and flag errors (a variable for the tests).
var stderr io.Writer = os.Stderr

// message is one line said in the room.
type message struct {
	from *client // nil for the server's own announcements
	text []byte  // the whole line to send, "\n" included
}

// room is what the clients share: the channel they talk on and the limits.
type room struct {
	ch      *loop.Channel[message]
	guests  int // names handed out so far
	queue   int
	maxLine int
	idle    time.Duration
}

// client is the handler of one connection.
type client struct {
	conn.Base
	room  *room
	lines conn.LineReader
	name  string
	sub   loop.SubscriberID
	left  bool // said /quit or was dropped: no "left" announcement twice
}

func (h *client) PostInit(c *conn.Conn) {
	r := h.room
	r.guests++
	h.name = fmt.Sprintf("guest%d", r.guests)
	h.lines.MaxLine = r.maxLine
	_ = c.SetInactivityTimeout(r.idle)
	// Reading pauses above queue; SendData fails past 4 × queue.
	if err := c.SetOutboundLimits(r.queue/2, r.queue, 4*r.queue); err != nil {
		_ = c.Close()
		return
	}
	h.sub = r.ch.Subscribe(func(m message) {
		if m.from == h || c.Closing() {
			return
		}
		if err := c.SendData(m.text); errors.Is(err, conn.ErrOutboundFull) {
			h.left = true
			_ = c.Close()
			r.say(nil, fmt.Sprintf("* %s was disconnected (slow reader)\n", h.name))
		}
	})
	_ = c.SendData(fmt.Appendf(nil, "* welcome, %s: /nick NAME to rename, /quit to leave\n", h.name))
	r.say(h, fmt.Sprintf("* %s joined\n", h.name))
}

func (h *client) ReceiveData(c *conn.Conn, data []byte) {
	err := h.lines.Feed(data, func(line []byte) {
		if c.Closing() {
			return
		}
		switch {
		case bytes.Equal(line, []byte("/quit")):
			h.left = true
			_ = c.SendData([]byte("* bye\n"))
			_ = c.CloseAfterWriting()
			h.room.say(h, fmt.Sprintf("* %s left\n", h.name))
		case bytes.HasPrefix(line, []byte("/nick ")):
			name := string(bytes.TrimSpace(line[len("/nick "):]))
			if name == "" || len(name) > 32 || bytes.ContainsAny([]byte(name), " \t") {
				_ = c.SendData([]byte("* a name is 1 to 32 characters, no spaces\n"))
				return
			}
			h.room.say(h, fmt.Sprintf("* %s is now %s\n", h.name, name))
			h.name = name
		case len(line) > 0:
			h.room.say(h, fmt.Sprintf("%s: %s\n", h.name, line))
		}
	})
	if err != nil { // conn.ErrLineTooLong
		h.left = true
		_ = c.SendData([]byte("* line too long\n"))
		_ = c.CloseAfterWriting()
		h.room.say(h, fmt.Sprintf("* %s was disconnected (line too long)\n", h.name))
	}
}

func (h *client) Unbind(c *conn.Conn, reason error) {
	h.room.ch.Unsubscribe(h.sub)
	if !h.left {
		h.room.say(h, fmt.Sprintf("* %s left\n", h.name))
	}
}

// say pushes one line to every client but its sender.
func (r *room) say(from *client, text string) {
	r.ch.Push(message{from: from, text: []byte(text)})
}

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr) // usage and flag errors
	addr := fs.String("addr", "127.0.0.1:10002", "listen on `host:port` (or unix:/path)")
	queue := fs.Int("queue", 64<<10, "stop reading from a client with more than this many `bytes` waiting for it; disconnect it past 4×")
	maxLine := fs.Int("max-line", 4096, "disconnect a client that sends a line longer than this many `bytes`")
	idle := fs.Duration("idle", 10*time.Minute, "disconnect a client silent this long (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *queue <= 0 || *maxLine <= 0 || *idle < 0 {
		return fmt.Errorf("-queue %d, -max-line %d must be positive and -idle %v not negative", *queue, *maxLine, *idle)
	}
	return loop.RunContext(ctx, func(l *loop.Loop) error {
		r := &room{ch: loop.NewChannel[message](l), queue: *queue, maxLine: *maxLine, idle: *idle}
		srv, err := l.StartServer(*addr, func() conn.Handler { return &client{room: r} })
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "chat: listening on %s (%s)\n", srv.Addr(), l.Backend())
		return nil
	})
}
