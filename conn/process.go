package conn

import (
	"errors"
	"strconv"
	"syscall"
)

// ExitStatus is how a child process ended (a connection made by the loop's
// Popen, EventMachine's get_status): its exit code, or the signal that
// killed it.
type ExitStatus struct {
	// Code is the exit code, or -1 when a signal killed the process.
	Code int
	// Signal is the signal that killed the process, 0 when it exited.
	Signal syscall.Signal
	// CoreDumped reports that the signal left a core dump.
	CoreDumped bool
}

// Exited reports whether the process exited (rather than being killed).
func (s ExitStatus) Exited() bool { return s.Signal == 0 }

// Success reports whether the process exited with code 0.
func (s ExitStatus) Success() bool { return s.Signal == 0 && s.Code == 0 }

// String describes the status as os.ProcessState does: "exit status 3",
// "signal: killed", "signal: aborted (core dumped)".
func (s ExitStatus) String() string {
	if s.Signal == 0 {
		return "exit status " + strconv.Itoa(s.Code)
	}
	str := "signal: " + s.Signal.String()
	if s.CoreDumped {
		str += " (core dumped)"
	}
	return str
}

// ExitError is the Unbind reason of a child process's connection (the
// loop's Popen) whose child did not exit with code 0. Err is the reason the
// connection itself ended (nil after a local Close, io.EOF when the child
// closed its output, an *OpError), so errors.Is(reason, io.EOF) still
// works through it.
type ExitError struct {
	Status ExitStatus
	Err    error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return "conn: child process: " + e.Status.String()
	}
	return "conn: child process: " + e.Status.String() + " (" + e.Err.Error() + ")"
}

// Unwrap returns Err.
func (e *ExitError) Unwrap() error { return e.Err }

// ErrNotChild is returned by Signal on a connection that does not talk to a
// child process.
var ErrNotChild = errors.New("conn: not a child process's connection")

// PID returns the process id of the child a Popen connection talks to
// (EventMachine's get_pid), 0 for any other connection. It stays valid
// after the child exits.
func (c *Conn) PID() int {
	pid, _ := c.d.Child()
	return pid
}

// ExitStatus returns the child's exit status (EventMachine's get_status)
// once it has been reaped: from Unbind on, which the loop delays until the
// child has exited, and afterwards. ok is false before, and for any
// connection that is not a child's.
func (c *Conn) ExitStatus() (st ExitStatus, ok bool) {
	_, v := c.d.Child()
	st, ok = v.(ExitStatus)
	return st, ok
}

// Signal sends sig to the child a Popen connection talks to, through its
// pidfd, so it never reaches another process that reused the pid.
//
// Errors: ErrNotChild on any other connection; one wrapping
// os.ErrProcessDone once the child has exited; pidfd_send_signal's
// otherwise (EPERM, EINVAL for a bad signal).
func (c *Conn) Signal(sig syscall.Signal) error { return c.d.SignalChild(sig) }
