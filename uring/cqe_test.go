package uring

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"
)

func TestCQEMethods(t *testing.T) {
	c := CQE{Res: -int32(unix.ECONNRESET)}
	assert.ErrorIs(t, c.Err(), unix.ECONNRESET)
	assert.NoError(t, CQE{Res: 5}.Err())

	c = CQE{Flags: CQEFlagBuffer | CQEFlagMore | 7<<CQEBufferShift}
	id, ok := c.BufferID()
	assert.True(t, ok)
	assert.Equal(t, uint16(7), id)
	assert.True(t, c.More())
	assert.False(t, c.Notif())
	_, ok = CQE{Flags: 7 << CQEBufferShift}.BufferID()
	assert.False(t, ok)
	assert.True(t, CQE{Flags: CQEFlagNotif}.Notif())
	assert.True(t, CQE{Flags: CQEFlagSockNonempty}.SockNonempty())

	// errno values that x/sys maps to ErrUnsupported keep doing so.
	assert.ErrorIs(t, CQE{Res: -int32(unix.EOPNOTSUPP)}.Err(), errors.ErrUnsupported)
}

func TestCQEErrAllocs(t *testing.T) {
	c := CQE{Res: -int32(unix.ECANCELED)}
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = c.Err() }))
}

func FuzzCQEErr(f *testing.F) {
	for _, res := range []int32{0, 1, -1, -int32(unix.ECANCELED), -int32(unix.ENOBUFS), 1 << 30, -(1 << 31), -4095} {
		f.Add(res, uint32(0))
	}
	f.Fuzz(func(t *testing.T, res int32, flags uint32) {
		c := CQE{Res: res, Flags: flags}
		err := c.Err()
		if res >= 0 {
			if err != nil {
				t.Fatalf("Res %d: unexpected error %v", res, err)
			}
		} else {
			var errno unix.Errno
			if !errors.As(err, &errno) {
				t.Fatalf("Res %d: error %T is not an Errno", res, err)
			}
			if uint64(errno) != uint64(-int64(res)) {
				t.Fatalf("Res %d: errno %d", res, errno)
			}
			if !errors.Is(err, unix.Errno(-int64(res))) {
				t.Fatalf("Res %d: errors.Is fails", res)
			}
		}
		id, ok := c.BufferID()
		if ok != (flags&CQEFlagBuffer != 0) || (ok && id != uint16(flags>>16)) {
			t.Fatalf("flags %#x: BufferID = %d, %v", flags, id, ok)
		}
		if c.More() != (flags&CQEFlagMore != 0) || c.Notif() != (flags&CQEFlagNotif != 0) {
			t.Fatalf("flags %#x: More/Notif mismatch", flags)
		}
	})
}
