//go:build !linux

package connio

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// The event loop runs on Linux only; elsewhere the options are refused
// (errors.ErrUnsupported).

var errNoSockOpt = fmt.Errorf("conn: socket options: %w", errors.ErrUnsupported)

func SetReadBuffer(fd, n int) error                      { return errNoSockOpt }
func SetWriteBuffer(fd, n int) error                     { return errNoSockOpt }
func SetInt(fd, level, name, v int) error                { return errNoSockOpt }
func GetInt(fd, level, name int) (int, error)            { return 0, errNoSockOpt }
func SetNoDelay(fd int, noDelay bool) error              { return errNoSockOpt }
func SetKeepAlive(fd int, cfg net.KeepAliveConfig) error { return errNoSockOpt }
func SetLinger(fd int, d time.Duration) error            { return errNoSockOpt }
