package loop

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/uring/engine"
	"golang.org/x/sys/unix"
)

// Child processes whose standard input and output are a connection
// (EventMachine's EM.popen and EM.system).
//
// The child's stdin and stdout are one end of a Unix stream socketpair, as
// in EventMachine; the loop's end is a connection like any other, so
// SendData, CloseWrite (the child's stdin reaches EOF, its output keeps
// coming), outbound limits and timeouts all work. The child is reaped
// through its pidfd: IORING_OP_WAITID on io_uring (Linux 6.7), the pidfd's
// readiness and waitid(2) on epoll or an older kernel. No goroutine waits
// for it.

// siginfo is waitid(2)'s siginfo_t.
type siginfo = unix.Siginfo

// child is a child process started by Popen: its pidfd's record (ps), and
// its connection's (cs) until the Unbind is delivered.
type child struct {
	pid       int
	ps        *sock // the pidfd: its wait (or poll) in flight until the exit
	cs        *sock // the connection
	termAfter time.Duration
	killAfter time.Duration

	info   siginfo
	pin    runtime.Pinner // info, while IORING_OP_WAITID may write it
	exited bool
	status conn.ExitStatus

	unbindDue bool  // the connection is closed: Unbind waits for the exit
	reason    error // its reason
	term      Timer // SIGTERM, then SIGKILL, after a local close
	stopAt    int64 // Stop: when the shutdown began to end the child
}

// Popen runs argv (argv[0] looked up in $PATH as os/exec does, no shell:
// use ShellCommand for one) with its standard input and output as a
// connection of the loop with handler h (EventMachine's EM.popen).
// PostInit runs before Popen returns, ReceiveData gets the child's output,
// SendData feeds its input, and CloseWrite gives it EOF on its input while
// its output keeps arriving. c.PID() is its process id and c.Signal sends
// it a signal.
//
// Unbind runs once, after the connection closed and the child was reaped,
// so c.ExitStatus() is there from Unbind on. Its reason is that of the
// connection (io.EOF when the child closed its output; an *conn.OpError
// wrapping EPIPE when the child exited, or closed its input, before
// reading everything sent, after all of its output was delivered), wrapped
// in a *conn.ExitError when the child did not exit with code 0. A child
// that closes its output and runs on is waited for; a connection closed by
// this side gives the child opts.TermAfter to exit, then SIGTERM, then
// opts.KillAfter later SIGKILL, without blocking the loop (EventMachine
// blocks in nanosleep meanwhile). Stop ends every child the same way
// within about 4 s, and returns once they are reaped: no zombie is left.
//
// The connection counts in ConnectionCount. It holds two process fds (the
// socket and the pidfd) while the child runs.
//
// Errors (no PostInit, no Unbind): ErrNilFunc for a nil h; ErrLoopStopped;
// an error for an empty argv; exec.LookPath's (wrapping exec.ErrNotFound
// for a missing program, fs.ErrPermission for one not executable) and
// os.Stat's for a Dir that is missing (fs.ErrNotExist) or not a directory
// (ENOTDIR), and os.StartProcess's, each naming argv[0]; socketpair's
// (EMFILE); one matching errors.ErrUnsupported on a kernel that gives no
// pidfd (before Linux 5.4). Call only from the loop goroutine.
func (l *Loop) Popen(argv []string, h conn.Handler, opts PopenOptions) (*conn.Conn, error) {
	if h == nil {
		return nil, ErrNilFunc
	}
	if len(argv) == 0 {
		return nil, errors.New("loop: Popen: empty argv")
	}
	if !l.running.Load() || l.stopping || l.be == nil {
		return nil, ErrLoopStopped
	}
	fd, ch, err := l.startChild(argv, opts)
	if err != nil {
		return nil, err
	}
	s := l.newSock(sockStream, fd, "unix")
	s.flow().child = ch
	ch.cs = s
	return l.openConn(s, h), nil
}

// startChild starts argv on one end of a socketpair and watches its exit:
// it returns the loop's end, non-blocking and close-on-exec.
func (l *Loop) startChild(argv []string, opts PopenOptions) (int, *child, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return -1, nil, fmt.Errorf("loop: Popen: %w", err)
	}
	if opts.Dir != "" {
		// Checked first: os.StartProcess would name the program instead.
		if fi, err := os.Stat(opts.Dir); err != nil {
			return -1, nil, fmt.Errorf("loop: Popen %s: directory: %w", argv[0], err)
		} else if !fi.IsDir() {
			return -1, nil, fmt.Errorf("loop: Popen %s: directory %s: %w", argv[0], opts.Dir, unix.ENOTDIR)
		}
	}
	if opts.TermAfter == 0 {
		opts.TermAfter = DefaultTermAfter
	}
	if opts.KillAfter <= 0 {
		opts.KillAfter = DefaultKillAfter
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("loop: Popen %s: %w", argv[0], os.NewSyscallError("socketpair", err))
	}
	ours, theirs := fds[0], os.NewFile(uintptr(fds[1]), "popen")
	defer theirs.Close() // the child has its copies
	if err := unix.SetNonblock(ours, true); err != nil {
		unix.Close(ours)
		return -1, nil, fmt.Errorf("loop: Popen %s: %w", argv[0], os.NewSyscallError("fcntl", err))
	}
	stderr := opts.Stderr
	if opts.MergeStderr {
		stderr = theirs
	} else if stderr == nil {
		stderr = os.Stderr
	}
	pidfd := -1
	p, err := os.StartProcess(path, argv, &os.ProcAttr{
		Dir:   opts.Dir,
		Env:   opts.Env,
		Files: []*os.File{theirs, theirs, stderr},
		Sys:   &syscall.SysProcAttr{PidFD: &pidfd},
	})
	if err != nil {
		unix.Close(ours)
		return -1, nil, fmt.Errorf("loop: Popen: %w", err)
	}
	if pidfd < 0 {
		// A kernel without CLONE_PIDFD (before 5.2): no way to reap the
		// child without blocking or a signal handler.
		_ = p.Kill()
		_, _ = p.Wait()
		unix.Close(ours)
		return -1, nil, fmt.Errorf("loop: Popen %s: the kernel gives no pidfd (Linux 5.4 needed): %w", argv[0], errors.ErrUnsupported)
	}
	ch := &child{pid: p.Pid, termAfter: opts.TermAfter, killAfter: opts.KillAfter}
	// The loop reaps the child through pidfd; os's own handle goes.
	_ = p.Release()
	ch.ps = l.newSock(sockChild, pidfd, "pidfd")
	ch.ps.flow().child = ch
	if err := l.waitChild(ch); err != nil {
		unix.Close(ours)
		killNow(pidfd)
		l.closeSock(ch.ps, nil)
		return -1, nil, fmt.Errorf("loop: Popen %s: %w", argv[0], err)
	}
	return ours, ch, nil
}

// killNow kills and reaps the child of pidfd at once: a Popen that failed
// after starting it leaves no zombie.
func killNow(pidfd int) {
	_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
	var info siginfo
	_ = unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED, nil)
}

// waitChild submits the wait for ch's exit: IORING_OP_WAITID where the
// backend has it, otherwise a poll of the pidfd (onChildReady reaps).
func (l *Loop) waitChild(ch *child) error {
	s := ch.ps
	ch.pin.Pin(&ch.info)
	err := l.be.waitid(s.fd, &ch.info, s.tok(opWaitid))
	if err == nil {
		s.ops++
		return nil
	}
	ch.pin.Unpin()
	if !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	if err := l.be.pollFD(s.fd, unix.POLLIN, s.tok(opPoll)); err != nil {
		return err
	}
	s.ops++
	return nil
}

// onChildWait handles the completion of a child's IORING_OP_WAITID.
func (l *Loop) onChildWait(s *sock, c *completion) {
	ch := s.fl.child
	ch.pin.Unpin()
	switch {
	case c.Res == 0:
		l.childExited(ch)
	case c.Res == -int32(unix.ECANCELED) && s.closed():
	default:
		// A wait that failed or was cancelled while the child runs: wait
		// for it by polling instead.
		if err := l.be.pollFD(s.fd, unix.POLLIN, s.tok(opPoll)); err != nil {
			l.report(fmt.Errorf("loop: child %d: wait: %w (after %w)", ch.pid, err, errnoOf(c.Res)))
			return
		}
		s.ops++
	}
}

// onChildReady handles the poll of a child's pidfd: readable once the child
// has exited; waitid(2) reaps it.
func (l *Loop) onChildReady(s *sock, c *completion) {
	ch := s.fl.child
	if c.Res < 0 {
		if c.Res != -int32(unix.ECANCELED) || !s.closed() {
			l.report(fmt.Errorf("loop: child %d: poll: %w", ch.pid, errnoOf(c.Res)))
		}
		return
	}
	ch.info = siginfo{}
	err := unix.Waitid(unix.P_PIDFD, s.fd, &ch.info, unix.WEXITED|unix.WNOHANG, nil)
	if err == nil && ch.info.Signo == 0 {
		err = unix.EAGAIN // not exited after all: poll again
	}
	if err != nil {
		if err2 := l.be.pollFD(s.fd, unix.POLLIN, s.tok(opPoll)); err2 != nil {
			l.report(fmt.Errorf("loop: child %d: waitid: %w; poll: %w", ch.pid, err, err2))
			return
		}
		s.ops++
		return
	}
	l.childExited(ch)
}

// childExited records the status of a reaped child, ends its timers and its
// pidfd, and delivers its connection's Unbind if that was waiting.
func (l *Loop) childExited(ch *child) {
	ch.exited = true
	ch.status = exitStatus(&ch.info)
	ch.term.Cancel()
	l.closeSock(ch.ps, nil)
	if ch.unbindDue {
		l.unbindChild(ch)
	}
}

// si_code values of SIGCHLD (<asm-generic/siginfo.h>).
const (
	cldKilled = 2 // CLD_KILLED
	cldDumped = 3 // CLD_DUMPED
)

// exitStatus decodes waitid(2)'s siginfo of an exited child.
func exitStatus(info *siginfo) conn.ExitStatus {
	_, st := engine.WaitidStatus(info)
	switch info.Code {
	case cldKilled:
		return conn.ExitStatus{Code: -1, Signal: syscall.Signal(st)}
	case cldDumped:
		return conn.ExitStatus{Code: -1, Signal: syscall.Signal(st), CoreDumped: true}
	}
	return conn.ExitStatus{Code: st}
}

// childClosed is runCloses' step for a child's connection: its Unbind now
// if the child was reaped, otherwise once it is; a close by this side
// starts the child's countdown to SIGTERM.
func (l *Loop) childClosed(s *sock) {
	ch := s.fl.child
	ch.unbindDue = true
	ch.reason = s.reason
	if ch.exited {
		l.unbindChild(ch)
		return
	}
	if s.reason != io.EOF && ch.termAfter >= 0 && !l.stopping {
		l.armInternalTimer(&ch.term, ch.termAfter, func() { l.signalChild(ch, unix.SIGTERM) })
	}
}

// signalChild sends sig to ch (SIGTERM arms the SIGKILL after it).
func (l *Loop) signalChild(ch *child, sig unix.Signal) {
	if ch.exited {
		return
	}
	_ = unix.PidfdSendSignal(ch.ps.fd, sig, nil, 0) // ESRCH: exiting meanwhile
	if sig == unix.SIGTERM && !l.stopping {
		l.armInternalTimer(&ch.term, ch.killAfter, func() { l.signalChild(ch, unix.SIGKILL) })
	}
}

// unbindChild delivers the Unbind of ch's connection.
func (l *Loop) unbindChild(ch *child) {
	ch.unbindDue = false
	s := ch.cs
	r := ch.reason
	if !ch.status.Success() {
		r = &conn.ExitError{Status: ch.status, Err: r}
	}
	h, c := s.h, s.c
	l.call(func() { h.Unbind(c, r) })
}

// stopChildren signals, during Stop, the children still running as their
// shutdown's clock asks: SIGTERM after min(TermAfter, 1 s), SIGKILL after
// min(KillAfter, 2 s) more; Stop's wait for its records' operations (5 s)
// then sees them reaped.
func (l *Loop) stopChildren() {
	now := time.Now().UnixNano()
	for _, s := range l.net.socks {
		if s == nil || s.kind != sockChild || s.closed() {
			continue
		}
		ch := s.fl.child
		if ch.stopAt == 0 {
			ch.stopAt = now
		}
		term := min(ch.termAfter, time.Second)
		if term < 0 {
			term = time.Second
		}
		switch el := time.Duration(now - ch.stopAt); {
		case el >= term+min(ch.killAfter, 2*time.Second):
			_ = unix.PidfdSendSignal(s.fd, unix.SIGKILL, nil, 0)
		case el >= term:
			_ = unix.PidfdSendSignal(s.fd, unix.SIGTERM, nil, 0)
		}
	}
}

// Child reports the child of a Popen connection (connio.Driver).
func (s *sock) Child() (int, any) {
	if s.fl == nil || s.fl.child == nil {
		return 0, nil
	}
	ch := s.fl.child
	if !ch.exited {
		return ch.pid, nil
	}
	return ch.pid, ch.status
}

// SignalChild sends sig to the child of a Popen connection (connio.Driver).
func (s *sock) SignalChild(sig syscall.Signal) error {
	if s.fl == nil || s.fl.child == nil {
		return conn.ErrNotChild
	}
	ch := s.fl.child
	if ch.exited {
		return fmt.Errorf("loop: signal child %d: %w", ch.pid, os.ErrProcessDone)
	}
	if err := unix.PidfdSendSignal(ch.ps.fd, sig, nil, 0); err != nil {
		if err == unix.ESRCH {
			return fmt.Errorf("loop: signal child %d: %w", ch.pid, os.ErrProcessDone)
		}
		return fmt.Errorf("loop: signal child %d: %w", ch.pid, os.NewSyscallError("pidfd_send_signal", err))
	}
	return nil
}

// System runs argv as Popen does, with its standard input closed at once,
// and returns a Deferrable that succeeds with its output and exit status
// once it has exited and closed its output (EventMachine's EM.system):
// whatever the status, so a non-zero exit is a success with that Status.
// The Deferrable fails with an error wrapping ErrOutputLimit past
// opts.MaxOutput bytes (the child gets SIGKILL), or with the connection's
// error (an *conn.OpError).
//
// Errors: those of Popen. Call only from the loop goroutine.
func (l *Loop) System(argv []string, opts PopenOptions) (*Deferrable[SystemResult], error) {
	limit := opts.MaxOutput
	if limit <= 0 {
		limit = DefaultSystemMaxOutput
	}
	d := NewDeferrable[SystemResult](l)
	h := &systemHandler{d: d, max: limit}
	c, err := l.Popen(argv, h, opts)
	if err != nil {
		return nil, err
	}
	_ = c.CloseWrite()
	return d, nil
}

// systemHandler collects a System child's output.
type systemHandler struct {
	conn.Base
	d    *Deferrable[SystemResult]
	out  []byte
	max  int
	over bool
}

func (h *systemHandler) ReceiveData(c *conn.Conn, data []byte) {
	if h.over {
		return
	}
	if len(h.out)+len(data) > h.max {
		h.over = true
		_ = c.Signal(syscall.SIGKILL)
		_ = c.Close()
		return
	}
	h.out = append(h.out, data...)
}

func (h *systemHandler) Unbind(c *conn.Conn, reason error) {
	st, _ := c.ExitStatus()
	var oe *conn.OpError
	switch {
	case h.over:
		h.d.Fail(fmt.Errorf("%w: more than %d bytes from pid %d", ErrOutputLimit, h.max, c.PID()))
	case errors.As(reason, &oe) && !errors.Is(oe, syscall.EPIPE):
		h.d.Fail(reason)
	default:
		h.d.Succeed(SystemResult{Output: h.out, Status: st})
	}
}
