//go:build !linux

package loop

import (
	"errors"
	"fmt"

	"github.com/ringmachine/ringmachine/conn"
)

// Popen returns an error matching errors.ErrUnsupported off Linux.
func (l *Loop) Popen(argv []string, h conn.Handler, opts PopenOptions) (*conn.Conn, error) {
	return nil, fmt.Errorf("loop: Popen: child processes need Linux: %w", errors.ErrUnsupported)
}

// System returns an error matching errors.ErrUnsupported off Linux.
func (l *Loop) System(argv []string, opts PopenOptions) (*Deferrable[SystemResult], error) {
	return nil, fmt.Errorf("loop: System: child processes need Linux: %w", errors.ErrUnsupported)
}
