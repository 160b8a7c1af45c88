//go:build !linux

package loop

import (
	"errors"
	"fmt"
)

// inotifyState is empty off Linux: no watch is ever made there.
type inotifyState struct{}

// WatchFile returns an error matching errors.ErrUnsupported off Linux.
func (l *Loop) WatchFile(path string, h FileWatcher) (*FileWatch, error) {
	return nil, fmt.Errorf("loop: WatchFile %s: file watches need Linux: %w", path, errors.ErrUnsupported)
}

// Stop does nothing off Linux.
func (w *FileWatch) Stop() {}
