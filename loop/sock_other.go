//go:build !linux

package loop

import (
	"errors"
	"fmt"
	"net"

	"github.com/ringmachine/ringmachine/conn"
)

// siginfo is waitid(2)'s siginfo_t (Linux only).
type siginfo struct{}

// netState is empty off Linux: the loop never opens a backend there.
type netState struct{}

var errNoNet = fmt.Errorf("loop: networking needs Linux: %w", errors.ErrUnsupported)

func (l *Loop) dispatch(*completion)     {}
func (l *Loop) useBackendChunks(backend) {}
func (l *Loop) runCloses()               {}
func (l *Loop) flushSends()              {}
func (l *Loop) closesPending() bool      { return false }
func (l *Loop) stopServers() error       { return nil }
func (l *Loop) shutdownConns() error     { return nil }
func (l *Loop) closePipes()              {}
func (l *Loop) report(err error)         { l.handlePanic(err) }

// ConnectionCount reports the open connections: always 0 off Linux.
func (l *Loop) ConnectionCount() int { return 0 }

// Server is a listening socket; off Linux none can be made.
type Server struct{}

// Addr returns nil off Linux.
func (srv *Server) Addr() net.Addr { return nil }

// Stop does nothing off Linux.
func (srv *Server) Stop() error { return nil }

// StartServer returns an error matching errors.ErrUnsupported off Linux.
func (l *Loop) StartServer(string, func() conn.Handler) (*Server, error) { return nil, errNoNet }

// Connect returns an error matching errors.ErrUnsupported off Linux.
func (l *Loop) Connect(string, conn.Handler) (*conn.Conn, error) { return nil, errNoNet }

// OpenDatagram returns an error matching errors.ErrUnsupported off Linux.
func (l *Loop) OpenDatagram(string, conn.Handler) (*conn.Conn, error) { return nil, errNoNet }
