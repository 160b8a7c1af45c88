package loop

import (
	"errors"
	"os"
	"time"

	"github.com/ringmachine/ringmachine/conn"
)

// Defaults of PopenOptions.
const (
	// DefaultTermAfter is how long a child may run on after its connection
	// was closed by this side before it gets SIGTERM (EventMachine's 0.5 s).
	DefaultTermAfter = 500 * time.Millisecond
	// DefaultKillAfter is how long it may run on after SIGTERM before it
	// gets SIGKILL (EventMachine's 1 s).
	DefaultKillAfter = time.Second
	// DefaultSystemMaxOutput bounds the output System collects.
	DefaultSystemMaxOutput = 64 << 20
)

// PopenOptions configures Popen and System. The zero value runs the
// program in this process's directory and environment, with its standard
// error going to this process's (as EventMachine's popen does).
type PopenOptions struct {
	// Dir is the child's working directory ("": this process's).
	Dir string
	// Env is the child's environment (nil: this process's).
	Env []string
	// MergeStderr sends the child's standard error into the connection
	// with its output (2>&1).
	MergeStderr bool
	// Stderr is the child's standard error when MergeStderr is false (nil:
	// this process's own). To read it from the loop, pass the write end of
	// an os.Pipe, and Attach its read end after Popen returns; close the
	// write end then.
	Stderr *os.File
	// TermAfter is how long the child may run on once its connection was
	// closed by this side (Close, CloseAfterWriting, a timeout, an error,
	// Stop) before it gets SIGTERM: 0 means DefaultTermAfter, a negative
	// value never (except at Stop). When the child itself closed its
	// output, the loop waits for its exit without signals.
	TermAfter time.Duration
	// KillAfter is how long it may run on after SIGTERM before SIGKILL (0:
	// DefaultKillAfter).
	KillAfter time.Duration
	// MaxOutput bounds the bytes System collects (0:
	// DefaultSystemMaxOutput); past it the child gets SIGKILL and the
	// Deferrable fails. Popen ignores it.
	MaxOutput int
}

// ShellCommand returns the argv that runs script with /bin/sh -c, for
// Popen and System: the shell parses it, so quote what comes from
// elsewhere.
func ShellCommand(script string) []string { return []string{"/bin/sh", "-c", script} }

// SystemResult is what System's Deferrable succeeds with (EventMachine's
// EM.system block arguments).
type SystemResult struct {
	// Output is everything the child wrote to its standard output (and
	// standard error, with MergeStderr).
	Output []byte
	// Status is how it ended.
	Status conn.ExitStatus
}

// ErrOutputLimit is the failure of a System whose child wrote more than its
// PopenOptions.MaxOutput.
var ErrOutputLimit = errors.New("loop: child output over the limit")
