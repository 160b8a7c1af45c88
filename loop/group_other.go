//go:build !linux

package loop

import (
	"net"
	"syscall"

	"github.com/ringmachine/ringmachine/conn"
)

// GroupServer is a server of a Group; off Linux none can be made.
type GroupServer struct{}

// StartServer returns an error matching errors.ErrUnsupported off Linux.
func (g *Group) StartServer(string, func(*Loop) conn.Handler) (*GroupServer, error) {
	return nil, errNoNet
}

// Addr returns nil off Linux.
func (gs *GroupServer) Addr() net.Addr { return nil }

// Stop does nothing off Linux.
func (gs *GroupServer) Stop() {}

func (gs *GroupServer) cleanup() {}

func (l *Loop) adoptConn(h handoff) { closeFD(h.fd) }

func closeFD(fd int) { _ = syscall.Close(fd) }

// topUpInbox does nothing off Linux: no loop takes direct descriptors.
func (l *Loop) topUpInbox() {}
