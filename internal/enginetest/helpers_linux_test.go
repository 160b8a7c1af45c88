package enginetest

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/uring/engine"
)

// deadline bounds every wait of a test: generous, since CI machines are
// slow and noisy, but a test fails rather than hangs.
const deadline = 20 * time.Second

// closeLater closes fds at the end of the test.
func closeLater(t testing.TB, fds ...int) {
	t.Helper()
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
}

// sockaddr returns the socket address ip:port and its address family.
func sockaddr(ip string, port int) (unix.Sockaddr, int) {
	a := netip.MustParseAddr(ip)
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: port}, unix.AF_INET
	}
	return &unix.SockaddrInet6{Addr: a.As16(), Port: port}, unix.AF_INET6
}

// family returns the address family of sa.
func family(sa unix.Sockaddr) int {
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// newSocket returns a non-blocking, close-on-exec socket of sa's family,
// closed at the end of the test.
func newSocket(t testing.TB, sa unix.Sockaddr, typ int) int {
	t.Helper()
	fd, err := unix.Socket(family(sa), typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err == unix.EAFNOSUPPORT {
		t.Skipf("no sockets of family %d: %v", family(sa), err)
	}
	require.NoError(t, err)
	closeLater(t, fd)
	return fd
}

// boundSocket returns a non-blocking socket bound to ip:0 and the address
// it got; it skips the test when ip cannot be used here (no IPv6).
func boundSocket(t testing.TB, ip string, typ int) (int, unix.Sockaddr) {
	t.Helper()
	sa, _ := sockaddr(ip, 0)
	fd := newSocket(t, sa, typ)
	if err := unix.Bind(fd, sa); err == unix.EADDRNOTAVAIL {
		t.Skipf("cannot bind %s: %v", ip, err)
	} else {
		require.NoError(t, err)
	}
	bound, err := unix.Getsockname(fd)
	require.NoError(t, err)
	return fd, bound
}

// listenTCP returns a non-blocking listening socket on ip:0 and its address.
func listenTCP(t testing.TB, ip string, backlog int) (int, unix.Sockaddr) {
	t.Helper()
	fd, sa := boundSocket(t, ip, unix.SOCK_STREAM)
	require.NoError(t, unix.Listen(fd, backlog))
	return fd, sa
}

// dialTCP returns a non-blocking socket whose connect(2) to sa has started.
func dialTCP(t testing.TB, sa unix.Sockaddr) int {
	t.Helper()
	fd := newSocket(t, sa, unix.SOCK_STREAM)
	if err := unix.Connect(fd, sa); err != unix.EINPROGRESS {
		require.NoError(t, err)
	}
	return fd
}

// pollFD blocks the calling goroutine until fd reports one of events, for
// at most d; it reports whether it did.
func pollFD(fd int, events int16, d time.Duration) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return false
		}
		n, err := unix.Poll(pfd, int(left/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n == 1
	}
}

// unixPair returns a non-blocking AF_UNIX stream socket pair.
func unixPair(t testing.TB) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	closeLater(t, fds[0], fds[1])
	return fds[0], fds[1]
}

// blackhole returns the address of a loopback listener whose accept queue
// is full and stays full (backlog 0, filled, never accepted): the kernel
// drops further SYNs, so a connect to it neither succeeds nor fails until
// its SYN retries run out, minutes later. It skips the test when the queue
// cannot be filled within a few connects.
func blackhole(t testing.TB, ip string) unix.Sockaddr {
	t.Helper()
	_, sa := listenTCP(t, ip, 0)
	for range 8 {
		fd := dialTCP(t, sa)
		if !pollFD(fd, unix.POLLOUT, 200*time.Millisecond) {
			return sa // this connect hangs: the queue is full
		}
	}
	t.Skip("could not fill a loopback listener's accept queue")
	return nil
}

// background runs f on a new goroutine and returns a channel that receives
// its result. The goroutine is told to stop (stop is closed) and waited for
// at the end of the test, so it never outlives it; f must watch stop.
func background(t testing.TB, f func(stop <-chan struct{}) error) <-chan error {
	t.Helper()
	stop := make(chan struct{})
	res := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res <- f(stop)
	}()
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
	return res
}

// result waits for a background goroutine's result, for at most deadline.
func result(t testing.TB, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		require.NoError(t, err)
	case <-time.After(deadline):
		t.Fatal("background goroutine did not finish")
	}
}

var errStopped = errors.New("stopped by the end of the test")

// writeChunks writes data to the non-blocking fd in chunks whose sizes
// cycle through sizes, waiting for writability on EAGAIN. It gives up when
// stop is closed or after deadline.
func writeChunks(fd int, data []byte, sizes []int, stop <-chan struct{}) error {
	end := time.Now().Add(deadline)
	for i := 0; len(data) > 0; {
		n := min(sizes[i%len(sizes)], len(data))
		w, err := unix.Write(fd, data[:n])
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			pollFD(fd, unix.POLLOUT, 50*time.Millisecond)
		case err != nil:
			return fmt.Errorf("write: %w", err)
		default:
			data = data[w:]
			if w == n {
				i++
			}
		}
		select {
		case <-stop:
			return errStopped
		default:
		}
		if time.Now().After(end) {
			return fmt.Errorf("write: %d bytes left at the deadline", len(data))
		}
	}
	return nil
}

// readN reads from the non-blocking fd until it has n bytes, end of stream
// or an error, reading at most chunk bytes at a time. It gives up when stop
// is closed or after deadline.
func readN(fd, n, chunk int, stop <-chan struct{}) ([]byte, error) {
	end := time.Now().Add(deadline)
	got := make([]byte, 0, n)
	buf := make([]byte, chunk)
	for len(got) < n {
		r, err := unix.Read(fd, buf)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			pollFD(fd, unix.POLLIN, 50*time.Millisecond)
		case err != nil:
			return got, fmt.Errorf("read: %w", err)
		case r == 0:
			return got, nil
		default:
			got = append(got, buf[:r]...)
		}
		select {
		case <-stop:
			return got, errStopped
		default:
		}
		if time.Now().After(end) {
			return got, fmt.Errorf("read: %d of %d bytes at the deadline", len(got), n)
		}
	}
	return got, nil
}

// reap calls Wait (dst of dstLen) until done holds for the completions so
// far, copying each Buf (valid only until the next Wait); it fails the test
// at the deadline.
func reap(t testing.TB, e eng, dstLen int, done func([]completion) bool) []completion {
	t.Helper()
	end := time.Now().Add(deadline)
	dst := make([]completion, dstLen)
	var all []completion
	for !done(all) {
		require.True(t, time.Now().Before(end), "timed out; completions so far: %s", describe(all))
		n, err := e.Wait(50*time.Millisecond, dst)
		require.NoError(t, err)
		for _, c := range dst[:n] {
			c.Buf = bytes.Clone(c.Buf)
			all = append(all, c)
		}
	}
	return all
}

// finals returns a done function for reap that holds once every one of uds
// has had its final completion.
func finals(uds ...uint64) func([]completion) bool {
	return func(cs []completion) bool {
		for _, ud := range uds {
			if !slices.ContainsFunc(cs, func(c completion) bool { return c.UserData == ud && c.final() }) {
				return false
			}
		}
		return true
	}
}

// finalOf returns ud's final completion in cs, failing the test unless there
// is exactly one and it is ud's last completion.
func finalOf(t testing.TB, cs []completion, ud uint64) completion {
	t.Helper()
	var last, fin []completion
	for _, c := range cs {
		if c.UserData == ud {
			last = append(last[:0], c)
			if c.final() {
				fin = append(fin, c)
			}
		}
	}
	require.Len(t, fin, 1, "final completions of %#x in %s", ud, describe(cs))
	require.Equal(t, fin[0], last[0], "completions of %#x after its final one: %s", ud, describe(cs))
	return fin[0]
}

// of returns ud's completions in cs.
func of(cs []completion, ud uint64) []completion {
	var out []completion
	for _, c := range cs {
		if c.UserData == ud {
			out = append(out, c)
		}
	}
	return out
}

// dataOf concatenates the bytes of ud's completions.
func dataOf(cs []completion, ud uint64) []byte {
	var b []byte
	for _, c := range of(cs, ud) {
		if c.Res > 0 {
			b = append(b, c.Buf...)
		}
	}
	return b
}

// describe summarises completions for failure messages.
func describe(cs []completion) string {
	var b bytes.Buffer
	b.WriteString("[")
	for i, c := range cs {
		if i == 20 {
			fmt.Fprintf(&b, " ... %d more", len(cs)-i)
			break
		}
		fmt.Fprintf(&b, " {ud=%#x res=%d more=%v len=%d}", c.UserData, c.Res, c.More, len(c.Buf))
	}
	b.WriteString(" ]")
	return b.String()
}

// pattern returns n deterministic pseudo-random bytes; different seeds give
// different streams, so misrouted bytes are caught.
func pattern(n int, seed uint32) []byte {
	b := make([]byte, n)
	x := seed | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// requireBytes compares got with want byte for byte, reporting the first
// difference rather than two huge dumps.
func requireBytes(t testing.TB, want, got []byte, what string) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	t.Fatalf("%s: got %d bytes, want %d; first difference at offset %d", what, len(got), len(want), i)
}

// fdCount returns the number of open file descriptors of the process.
func fdCount(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries) - 1 // the directory's own fd
}

// mustReturnWithin is the backstop for a call that cannot be bounded any
// other way (Close, or a Wait with no other way out): if stop is not called
// within d, it crashes the test binary with every goroutine's stack, which
// beats hanging until go test's own timeout.
func mustReturnWithin(d time.Duration, what string) (stop func()) {
	timer := time.AfterFunc(d, func() {
		debug.SetTraceback("all")
		panic(fmt.Sprintf("enginetest: %s did not return within %v", what, d))
	})
	return func() { timer.Stop() }
}

// ownedFD is a descriptor the test closes itself (or hands to CloseFD); the
// cleanup closes it only if that did not happen, so a number the process
// has reused since is never closed by mistake.
type ownedFD struct {
	fd     int
	closed bool
}

// own registers fd as an ownedFD of the test.
func own(t testing.TB, fd int) *ownedFD {
	o := &ownedFD{fd: fd}
	t.Cleanup(func() { o.close() })
	return o
}

// close closes the descriptor unless it is closed already.
func (o *ownedFD) close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	return unix.Close(o.fd)
}

// quiet waits d for completions and fails the test if any arrives: nothing
// may complete while nothing has happened.
func quiet(t testing.TB, e eng, d time.Duration) {
	t.Helper()
	dst := make([]completion, 8)
	end := time.Now().Add(d)
	for left := d; left > 0; left = time.Until(end) {
		n, err := e.Wait(left, dst)
		require.NoError(t, err)
		require.Zero(t, n, "unexpected completions: %s", describe(dst[:n]))
	}
}

// addrPort returns sa as a netip.AddrPort, for comparisons.
func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// acceptUD is the token of the multishot accept with which enginePair takes
// its connections, and closeUD that of the CloseFD with which the end of a
// test closes an accepted direct descriptor: both far from the small tokens
// the tests use.
const (
	acceptUD = 0xACCE_0000_0001
	closeUD  = 0xC105_E000_0001
)

// acceptedFD is a connection the engine accepted: a process fd, or on the
// direct rows a direct descriptor (engine.IsDirect). Unless the test closed
// it (closed set), it is closed at the end of the test, before the engine
// is: a process fd with close(2), a direct descriptor with CloseFD, whose
// completion is reaped. (After a failure a direct descriptor is left to
// the engine's Close, which empties the table: operations may still be in
// flight on it.)
type acceptedFD struct {
	fd     int
	closed bool
}

// closeAccepted registers fd, accepted by e, as an acceptedFD of the test.
func closeAccepted(t testing.TB, e eng, fd int) *acceptedFD {
	a := &acceptedFD{fd: fd}
	t.Cleanup(func() {
		if a.closed {
			return
		}
		a.closed = true
		if !engine.IsDirect(fd) {
			unix.Close(fd)
			return
		}
		if t.Failed() {
			return
		}
		if err := e.CloseFD(fd, closeUD); err != nil {
			if !errors.Is(err, e.errClosed()) {
				t.Errorf("CloseFD of the accepted direct descriptor %#x: %v", fd, err)
			}
			return
		}
		dst := make([]completion, 4)
		for end := time.Now().Add(deadline); ; {
			if time.Now().After(end) {
				t.Errorf("no completion for the CloseFD of the accepted direct descriptor %#x", fd)
				return
			}
			n, err := e.Wait(50*time.Millisecond, dst)
			if err != nil {
				t.Errorf("Wait for the CloseFD of %#x: %v", fd, err)
				return
			}
			for _, c := range dst[:n] {
				if c.UserData != closeUD || c.More {
					t.Errorf("completion at the end of the test: %s", describe(dst[:n]))
					continue
				}
				if c.Res != 0 {
					t.Errorf("CloseFD of the accepted direct descriptor %#x: %v", fd, c.Err())
				}
				return
			}
		}
	})
	return a
}

// enginePair returns a connected TCP pair over ip whose server side the
// engine accepted (AcceptMultishot): a process fd, or on the direct rows a
// direct descriptor. Tests make system calls on the client only, and go
// through the engine for the server.
func enginePair(t testing.TB, e eng, ip string) (client, server int) {
	t.Helper()
	c, s := enginePairOwned(t, e, ip)
	return c.fd, s.fd
}

// enginePairOwned is enginePair with a client and a server the test may
// close itself.
func enginePairOwned(t testing.TB, e eng, ip string) (client *ownedFD, server *acceptedFD) {
	t.Helper()
	ln, sa := listenTCP(t, ip, 16)
	fd, err := unix.Socket(family(sa), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	client = own(t, fd)
	require.NoError(t, e.AcceptMultishot(ln, acceptUD))
	if err := unix.Connect(fd, sa); err != unix.EINPROGRESS {
		require.NoError(t, err)
	}
	cs := reap(t, e, 4, func(cs []completion) bool { return len(cs) > 0 })
	if c := cs[0]; c.UserData == acceptUD && c.Res >= 0 {
		server = closeAccepted(t, e, int(c.Res))
	}
	require.Len(t, cs, 1, "completions of the accept: %s", describe(cs))
	require.Equal(t, uint64(acceptUD), cs[0].UserData)
	require.GreaterOrEqual(t, cs[0].Res, int32(0), "accept: %v", cs[0].Err())
	require.True(t, cs[0].More, "the accept ended with its first connection")
	requireAcceptedKind(t, e, server.fd)
	require.NoError(t, e.Cancel(acceptUD))
	cs = reap(t, e, 4, finals(acceptUD))
	require.Len(t, cs, 1, "completions after the accept's cancel: %s", describe(cs))
	require.Equal(t, -int32(unix.ECANCELED), cs[0].Res, "the accept's cancel: %v", cs[0].Err())
	require.True(t, pollFD(fd, unix.POLLOUT, deadline), "connect timed out")
	return client, server
}

// requireAcceptedKind checks that fd, accepted by e, is a direct
// descriptor of e's table on the direct rows and a process fd elsewhere.
func requireAcceptedKind(t testing.TB, e eng, fd int) {
	t.Helper()
	if n := e.directFiles(); n > 0 {
		require.True(t, engine.IsDirect(fd), "the direct row accepted %d, a process fd", fd)
		require.Less(t, fd-engine.DirectBase, n, "accepted %#x: a slot beyond the table of %d", fd, n)
	} else {
		require.False(t, engine.IsDirect(fd), "accepted %#x, a direct descriptor, without a table", fd)
	}
}

// recvN receives from the stream socket fd with Recv operations of at most
// chunk bytes (token ud) until it has n bytes or end of stream, and returns
// them. Any other completion fails the test.
func recvN(t testing.TB, e eng, fd, n, chunk int, ud uint64) []byte {
	t.Helper()
	var got []byte
	for len(got) < n {
		require.NoError(t, e.Recv(fd, make([]byte, min(chunk, n-len(got))), ud))
		cs := reap(t, e, 4, finals(ud))
		require.Len(t, cs, 1, "completions of a Recv: %s", describe(cs))
		c := cs[0]
		require.GreaterOrEqual(t, c.Res, int32(0), "recv after %d of %d bytes: %v", len(got), n, c.Err())
		if c.Res == 0 {
			break
		}
		got = append(got, c.Buf...)
	}
	return got
}

// waitAcked waits until the peer of the TCP socket fd has acknowledged
// every byte written to fd (SIOCOUTQ 0): the bytes are in the peer's
// receive queue, which the test cannot poll when it is a direct descriptor.
func waitAcked(t testing.TB, fd int) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
		require.NoError(t, err)
		if n == 0 {
			return
		}
		require.True(t, time.Now().Before(end), "%d bytes not acknowledged at the deadline", n)
		time.Sleep(time.Millisecond)
	}
}
