package uring

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Sockaddr holds a socket address in the kernel's raw form (struct sockaddr_storage and
// its length), ready for [SQE.PrepConnect]. It owns its bytes, so keeping the Sockaddr
// alive keeps the address alive.
type Sockaddr struct {
	raw [128]byte // sizeof(struct sockaddr_storage)
	n   uint32
}

// errSockaddr is wrapped by Set for address types it does not encode.
var errSockaddr = errors.New("uring: unsupported socket address type")

// Set encodes sa: *unix.SockaddrInet4, *unix.SockaddrInet6 or *unix.SockaddrUnix. A Unix
// name starting with '@' is an abstract address (the '@' becomes a leading NUL). Other types
// return an error (wrapping unix.EAFNOSUPPORT); a Unix name too long returns one wrapping
// unix.EINVAL.
func (s *Sockaddr) Set(sa unix.Sockaddr) error {
	*s = Sockaddr{}
	ne := binary.NativeEndian
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		if a == nil {
			break
		}
		// struct sockaddr_in: family, port (big endian), addr, zero[8].
		ne.PutUint16(s.raw[0:], afInet)
		binary.BigEndian.PutUint16(s.raw[2:], uint16(a.Port))
		copy(s.raw[4:8], a.Addr[:])
		s.n = 16
		return nil
	case *unix.SockaddrInet6:
		if a == nil {
			break
		}
		// struct sockaddr_in6: family, port, flowinfo, addr[16], scope_id.
		ne.PutUint16(s.raw[0:], afInet6)
		binary.BigEndian.PutUint16(s.raw[2:], uint16(a.Port))
		copy(s.raw[8:24], a.Addr[:])
		ne.PutUint32(s.raw[24:], a.ZoneId)
		s.n = 28
		return nil
	case *unix.SockaddrUnix:
		if a == nil {
			break
		}
		// struct sockaddr_un: family, path[108]. A path is NUL-terminated (counted in the
		// length, as x/sys does); an abstract name is not.
		name := a.Name
		if len(name) >= 108 {
			return fmt.Errorf("uring: unix socket name of %d bytes: %w", len(name), unix.EINVAL)
		}
		ne.PutUint16(s.raw[0:], afUnix)
		copy(s.raw[2:], name)
		s.n = 2
		if len(name) > 0 {
			if name[0] == '@' {
				s.raw[2] = 0
				s.n += uint32(len(name))
			} else {
				s.n += uint32(len(name)) + 1
			}
		}
		return nil
	}
	return fmt.Errorf("%w %T: %w", errSockaddr, sa, unix.EAFNOSUPPORT)
}

// Len returns the length of the encoded address (socklen_t), 0 before Set.
func (s *Sockaddr) Len() uint32 { return s.n }

// Bytes returns the encoded address. The slice aliases s.
func (s *Sockaddr) Bytes() []byte { return s.raw[:s.n] }
