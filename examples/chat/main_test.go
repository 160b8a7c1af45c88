package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

var listening = regexp.MustCompile(`^chat: listening on (\S+) \((uring|epoll)\)$`)

// start runs the server on an ephemeral port and returns its address; it
// is stopped, and run's error checked, when the test ends.
func start(t *testing.T, args ...string) string {
	t.Helper()
	addr, stop := testutil.StartProgram(t, run, listening, args...)
	t.Cleanup(func() { assert.NoError(t, stop()) })
	return addr
}

// user is one chat client.
type user struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func join(t *testing.T, addr string) *user {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	return &user{t: t, c: c, r: bufio.NewReader(c)}
}

func (u *user) say(line string) {
	u.t.Helper()
	_, err := io.WriteString(u.c, line+"\n")
	require.NoError(u.t, err)
}

// expect reads the next line and checks it.
func (u *user) expect(want string) {
	u.t.Helper()
	got, err := u.r.ReadString('\n')
	require.NoError(u.t, err, "waiting for %q", want)
	require.Equal(u.t, want+"\n", got)
}

// expectEOF checks the server closed the connection after nothing more.
func (u *user) expectEOF() {
	u.t.Helper()
	rest, err := io.ReadAll(u.r)
	require.NoError(u.t, err, "closed by the server, not by the deadline")
	require.Empty(u.t, string(rest))
}

func TestChat(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr := start(t)
		a := join(t, addr)
		a.expect("* welcome, guest1: /nick NAME to rename, /quit to leave")
		b := join(t, addr)
		b.expect("* welcome, guest2: /nick NAME to rename, /quit to leave")
		a.expect("* guest2 joined")
		a.say("hello")
		b.expect("guest1: hello")
		b.say("/nick bob")
		a.expect("* guest2 is now bob")
		b.say("/nick two words")
		b.expect("* a name is 1 to 32 characters, no spaces")
		b.say("hi, split")
		a.expect("bob: hi, split")
		b.say("/quit")
		b.expect("* bye")
		b.expectEOF()
		a.expect("* bob left")
		// a never heard its own lines: the next thing it reads is this.
		c := join(t, addr)
		c.expect("* welcome, guest3: /nick NAME to rename, /quit to leave")
		a.expect("* guest3 joined")
		require.NoError(t, c.c.Close())
		a.expect("* guest3 left")
	})
}

// TestChatSlowReader: a client that never reads is disconnected once its
// queue passes 4 × -queue, and the room is told; the server never queues
// more than that for it. Without the cap, the 64 MiB the talker sends would
// all be queued for the silent client and the announcement never come.
func TestChatSlowReader(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr := start(t, "-queue", "16384")
		talker := join(t, addr)
		talker.expect("* welcome, guest1: /nick NAME to rename, /quit to leave")
		silent := join(t, addr)
		talker.expect("* guest2 joined")
		stop := make(chan struct{})
		wrote := make(chan int64, 1)
		go func() {
			line := []byte(strings.Repeat("x", 1023) + "\n")
			var n int64
			defer func() { wrote <- n }()
			for n < 64<<20 {
				select {
				case <-stop:
					return
				default:
				}
				k, err := talker.c.Write(line)
				n += int64(k)
				if err != nil {
					return
				}
			}
		}()
		got, err := talker.r.ReadString('\n')
		close(stop)
		require.NoError(t, err, "the room hears about the slow reader")
		assert.Equal(t, "* guest2 was disconnected (slow reader)\n", got)
		assert.Less(t, <-wrote, int64(64<<20))
		// The silent client finds the connection closed after what was
		// queued for it: the welcome, then whole lines of x.
		all, _ := io.ReadAll(silent.r) // a reset is fine: it was dropped
		welcome := "* welcome, guest2: /nick NAME to rename, /quit to leave\n"
		require.True(t, strings.HasPrefix(string(all), welcome), "%.80q", all)
		body := all[len(welcome):]
		line := "guest1: " + strings.Repeat("x", 1023) + "\n"
		assert.True(t, bytes.Equal(body, bytes.Repeat([]byte(line), len(body)/len(line))[:len(body)]), "whole lines of the talker, in order")
	})
}

func TestChatLineTooLong(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr := start(t, "-max-line", "100")
		a := join(t, addr)
		a.expect("* welcome, guest1: /nick NAME to rename, /quit to leave")
		_, err := a.c.Write(bytes.Repeat([]byte("y"), 200))
		require.NoError(t, err)
		a.expect("* line too long")
		a.expectEOF()
	})
}

func TestChatIdle(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr := start(t, "-idle", "200ms")
		a := join(t, addr)
		a.expect("* welcome, guest1: /nick NAME to rename, /quit to leave")
		a.expectEOF()
	})
}

func TestChatBadFlags(t *testing.T) {
	var flagErr bytes.Buffer
	oldStderr := stderr
	stderr = &flagErr
	defer func() { stderr = oldStderr }()
	for _, args := range [][]string{{"-nope"}, {"-queue", "0"}, {"-idle", "-1s"}, {"extra"}} {
		assert.Error(t, run(context.Background(), io.Discard, args), "%q", args)
	}
	assert.Contains(t, flagErr.String(), "flag provided but not defined: -nope")
	err := run(context.Background(), io.Discard, []string{"-addr", "127.0.0.1:99999"})
	assert.ErrorContains(t, err, "127.0.0.1:99999", "the address is named")
}
