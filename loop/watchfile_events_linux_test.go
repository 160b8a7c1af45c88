package loop

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// appendInotifyEvent appends a struct inotify_event as the kernel lays it
// out: the name NUL-padded to pad bytes.
func appendInotifyEvent(b []byte, wd int32, mask uint32, name string, pad int) []byte {
	b = binary.NativeEndian.AppendUint32(b, uint32(wd))
	b = binary.NativeEndian.AppendUint32(b, mask)
	b = binary.NativeEndian.AppendUint32(b, 0) // cookie
	b = binary.NativeEndian.AppendUint32(b, uint32(pad))
	b = append(b, name...)
	return append(b, make([]byte, pad-len(name))...)
}

// TestInotifyEvents: events with and without names decode in order; a
// buffer that ends inside an event's header or name is an error, never a
// panic.
func TestInotifyEvents(t *testing.T) {
	var b []byte
	b = appendInotifyEvent(b, 1, unix.IN_MODIFY, "", 0)
	b = appendInotifyEvent(b, 2, unix.IN_CREATE, "entry", 16)
	b = appendInotifyEvent(b, 3, unix.IN_DELETE_SELF, "", 0)
	want := []inotifyEvent{{1, unix.IN_MODIFY, ""}, {2, unix.IN_CREATE, "entry"}, {3, unix.IN_DELETE_SELF, ""}}
	var got []inotifyEvent
	for rest := b; len(rest) > 0; {
		ev, r, err := nextInotifyEvent(rest)
		require.NoError(t, err)
		got, rest = append(got, ev), r
	}
	assert.Equal(t, want, got)

	for _, n := range []int{1, 15, 16 + 8, len(b) - 1} {
		rest := b[:n]
		var err error
		for len(rest) > 0 && err == nil {
			_, rest, err = nextInotifyEvent(rest)
		}
		assert.ErrorIs(t, err, errInotifyShort, "cut at %d", n)
	}
}

// FuzzInotifyEvents: any bytes decode without a panic, each event taking
// at least a header, and events the fuzzer builds decode as built.
func FuzzInotifyEvents(f *testing.F) {
	f.Add(appendInotifyEvent(nil, 1, unix.IN_MODIFY, "x", 16), int32(7), uint32(unix.IN_MOVED_TO), "name", uint8(3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, int32(-1), uint32(unix.IN_Q_OVERFLOW), "", uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, wd int32, mask uint32, name string, pad uint8) {
		for rest := raw; len(rest) > 0; {
			before := len(rest)
			_, r, err := nextInotifyEvent(rest)
			if err != nil {
				break
			}
			if before-len(r) < unix.SizeofInotifyEvent {
				t.Fatalf("an event of %d bytes", before-len(r))
			}
			rest = r
		}
		for i := 0; i < len(name); i++ {
			if name[i] == 0 {
				name = name[:i]
				break
			}
		}
		b := appendInotifyEvent(nil, wd, mask, name, len(name)+int(pad))
		ev, rest, err := nextInotifyEvent(append(b, raw...))
		if err != nil || ev != (inotifyEvent{wd, mask, name}) || len(rest) != len(raw) {
			t.Fatalf("decoded %+v, %d bytes left, %v", ev, len(rest), err)
		}
	})
}
