package uring

import "golang.org/x/sys/unix"

// Err returns the operation's error: unix.Errno(-Res) when Res < 0, nil otherwise. The
// result matches errno values with errors.Is (errors.Is(c.Err(), unix.ECANCELED)). It does
// not allocate.
func (c CQE) Err() error {
	if c.Res < 0 {
		return unix.Errno(-int64(c.Res)) // int64: -math.MinInt32 overflows int32
	}
	return nil
}

// More reports IORING_CQE_F_MORE: the SQE that produced c (a multishot operation, or a
// zero-copy send awaiting its notification) will post more CQEs. The final CQE of an
// operation is the one without it.
func (c CQE) More() bool { return c.Flags&CQEFlagMore != 0 }

// BufferID returns the provided buffer the kernel picked (IORING_CQE_F_BUFFER) and whether
// there is one. The buffer belongs to the caller until it is recycled.
func (c CQE) BufferID() (uint16, bool) {
	if c.Flags&CQEFlagBuffer == 0 {
		return 0, false
	}
	return uint16(c.Flags >> CQEBufferShift), true
}

// Notif reports IORING_CQE_F_NOTIF: c is the notification of a zero-copy send, posted when
// the kernel no longer uses the send buffer.
func (c CQE) Notif() bool { return c.Flags&CQEFlagNotif != 0 }

// SockNonempty reports IORING_CQE_F_SOCK_NONEMPTY: the socket had more data to read.
func (c CQE) SockNonempty() bool { return c.Flags&CQEFlagSockNonempty != 0 }
