//go:build !unix

package loop

import (
	"errors"
	"fmt"
)

// RaiseFileLimit returns an error matching errors.ErrUnsupported: there is
// no RLIMIT_NOFILE here.
func RaiseFileLimit(want uint64) (uint64, error) {
	return 0, fmt.Errorf("loop: RLIMIT_NOFILE: %w", errors.ErrUnsupported)
}
