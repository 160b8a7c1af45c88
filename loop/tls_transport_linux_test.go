package loop

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTLSTransportFraming: Read never hands out bytes past the record
// being read, whatever the buffer size, so that ciphertext not decrypted
// when the loop stops reading stays in the transport (held for Resume),
// not inside crypto/tls. It fails for a transport that fills the buffer.
func TestTLSTransportFraming(t *testing.T) {
	tr := newTLSTransport(nil, nil)
	tr.onLoop.Store(true)
	rec := func(n int, fill byte) []byte {
		b := []byte{23, 3, 3, byte(n >> 8), byte(n)}
		for range n {
			b = append(b, fill)
		}
		return b
	}
	// Two records and part of a third in one chunk, then the rest.
	stream := append(append(rec(300, 'a'), rec(0, 0)...), rec(70000&0xffff, 'b')...)
	tr.feed(stream[:700])
	buf := make([]byte, 1<<16)
	var got []int
	for {
		n, err := tr.Read(buf)
		if err != nil {
			assert.ErrorIs(t, err, errWouldBlock)
			break
		}
		got = append(got, n)
	}
	// Header, body, the empty record's header, the third's header, then its
	// body as far as it came.
	assert.Equal(t, []int{5, 300, 5, 5, 700 - 315}, got)
	tr.feed(stream[700:])
	n, err := tr.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, len(stream)-700, n, "the rest of the third record's body")
	_, err = tr.Read(buf)
	assert.ErrorIs(t, err, errWouldBlock)
	// A header split across feeds.
	tr.feed([]byte{23, 3})
	n, _ = tr.Read(buf)
	assert.Equal(t, 2, n)
	tr.feed([]byte{3, 0, 4, 'x', 'y', 'z', 'w', 23})
	n, _ = tr.Read(buf)
	assert.Equal(t, 3, n, "the header's rest")
	n, _ = tr.Read(buf)
	assert.Equal(t, 4, n, "the body")
	n, _ = tr.Read(buf)
	assert.Equal(t, 1, n, "the next header's first byte")
}
