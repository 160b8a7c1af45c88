package uring

import (
	"bytes"
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

// Storage returns the start of s's buffer (struct sockaddr_storage) and its size, for
// the kernel to write an address into: a receive's msg_name and msg_namelen. Decode
// reads it back. The pointer aliases s: keep s reachable and pinned while the kernel may
// write.
func (s *Sockaddr) Storage() (*byte, uint32) { return &s.raw[0], uint32(len(s.raw)) }

// Decode returns the address the kernel wrote into [Sockaddr.Storage], n bytes long (the
// msg_namelen it set): a *unix.SockaddrInet4, *unix.SockaddrInet6 or *unix.SockaddrUnix
// (an abstract name starts with '@'). n = 0 (an unnamed sender) gives nil, nil. Errors
// wrap unix.EINVAL for a length too short for its family or beyond the buffer, and
// unix.EAFNOSUPPORT for another family.
func (s *Sockaddr) Decode(n uint32) (unix.Sockaddr, error) {
	if n == 0 {
		return nil, nil
	}
	if n < 2 || n > uint32(len(s.raw)) {
		return nil, fmt.Errorf("uring: socket address of %d bytes: %w", n, unix.EINVAL)
	}
	s.n = n
	ne := binary.NativeEndian
	switch fam := ne.Uint16(s.raw[0:]); fam {
	case afInet:
		if n < 16 {
			return nil, fmt.Errorf("uring: inet address of %d bytes: %w", n, unix.EINVAL)
		}
		a := &unix.SockaddrInet4{Port: int(binary.BigEndian.Uint16(s.raw[2:]))}
		copy(a.Addr[:], s.raw[4:8])
		return a, nil
	case afInet6:
		if n < 28 {
			return nil, fmt.Errorf("uring: inet6 address of %d bytes: %w", n, unix.EINVAL)
		}
		a := &unix.SockaddrInet6{Port: int(binary.BigEndian.Uint16(s.raw[2:])), ZoneId: ne.Uint32(s.raw[24:])}
		copy(a.Addr[:], s.raw[8:24])
		return a, nil
	case afUnix:
		name := s.raw[2:n]
		if len(name) > 0 && name[0] == 0 {
			return &unix.SockaddrUnix{Name: "@" + string(name[1:])}, nil
		}
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		return &unix.SockaddrUnix{Name: string(name)}, nil
	default:
		return nil, fmt.Errorf("%w family %d: %w", errSockaddr, fam, unix.EAFNOSUPPORT)
	}
}
