//go:build unix

package loop

import (
	"errors"
	"fmt"
	"syscall"
)

// RaiseFileLimit raises the process's open-files limit (RLIMIT_NOFILE), like
// EventMachine's set_descriptor_table_size, and returns the soft limit in
// force afterwards: the most descriptors, hence connections, the process
// may hold. Each connection costs one descriptor (two when both ends are in
// the process).
//
// want 0 means "as many as allowed": the soft limit goes up to the hard
// limit. A larger want also tries to raise the hard limit, which needs
// privilege (CAP_SYS_RESOURCE) and stays within the kernel's fs.nr_open;
// without it the soft limit stops at the hard limit and no error is
// returned: compare the result with want. A want below the current soft
// limit lowers nothing. Go programs already start with the soft limit raised
// to the hard one (since Go 1.19), so RaiseFileLimit(0) mostly reports it.
// It returns the error of getrlimit(2) or setrlimit(2) otherwise. Safe for
// concurrent use (it changes the whole process).
func RaiseFileLimit(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("loop: getrlimit(RLIMIT_NOFILE): %w", err)
	}
	cur, hard := uint64(lim.Cur), uint64(lim.Max)
	if want == 0 {
		want = hard
	}
	if want <= cur {
		return cur, nil
	}
	if want > hard {
		up := syscall.Rlimit{Cur: want, Max: want}
		err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up)
		if err == nil {
			return want, nil
		}
		if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EINVAL) {
			return cur, fmt.Errorf("loop: setrlimit(RLIMIT_NOFILE, %d): %w", want, err)
		}
		want = hard // unprivileged, or beyond fs.nr_open
	}
	if want <= cur {
		return cur, nil
	}
	lim.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return cur, fmt.Errorf("loop: setrlimit(RLIMIT_NOFILE, %d): %w", want, err)
	}
	return want, nil
}
