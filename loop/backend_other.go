//go:build !linux

package loop

import (
	"errors"
	"fmt"
)

// openBackend fails: RingMachine needs Linux (io_uring or epoll).
func openBackend(Backend, backendConfig) (backend, error) {
	return nil, fmt.Errorf("loop: RingMachine needs Linux: %w", errors.ErrUnsupported)
}

// URingAvailable reports that io_uring is unavailable: RingMachine needs
// Linux. The error matches errors.ErrUnsupported.
func URingAvailable() error {
	return fmt.Errorf("loop: io_uring needs Linux: %w", errors.ErrUnsupported)
}
