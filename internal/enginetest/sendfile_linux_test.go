package enginetest

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// spliceAll splices from the file in, starting at off (< 0: the file
// position), up to n bytes to the socket out, resubmitting after short
// completions until n bytes are sent or a completion reports end of file
// (Res 0). It returns the bytes sent.
func spliceAll(t testing.TB, e eng, out, in int, off int64, n int, ud uint64) int {
	t.Helper()
	sent := 0
	for sent < n {
		at := off
		if off >= 0 {
			at = off + int64(sent)
		}
		require.NoError(t, e.Splice(out, in, at, n-sent, ud))
		c := finalOf(t, reap(t, e, 4, finals(ud)), ud)
		require.GreaterOrEqual(t, c.Res, int32(0), "splice: %v", c.Err())
		if c.Res == 0 {
			break
		}
		sent += int(c.Res)
	}
	return sent
}

// TestSplice sends a 5 MB file to an accepted connection: whole, from an
// offset, past the end of the file (short, then Res 0), and from the file
// position (offset -1, which advances the position). A reader on the peer
// checks every byte.
func TestSplice(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		const size = 5 << 20
		data := pattern(size, 55)
		path := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(path, data, 0o600))
		in, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		closeLater(t, in)
		b, a := enginePair(t, e, "127.0.0.1") // a, the engine's, sends to b

		ud := uint64(0)
		for _, c := range []struct {
			name    string
			off     int64 // < 0: from the file position, set to pos first
			pos     int64
			n, want int // bytes asked for, bytes expected
		}{
			{"whole file", 0, 0, size, size},
			{"offset", 12345, 0, 1<<20 + 3, 1<<20 + 3},
			{"past the end", size - 1000, 0, 1 << 20, 1000},
			{"at the end", size, 0, 10, 0},
			{"file position", -1, 100, 100000, 100000},
		} {
			ud++
			start := c.off
			if c.off < 0 {
				_, err := unix.Seek(in, c.pos, 0)
				require.NoError(t, err)
				start = c.pos
			}
			want := data[start : start+int64(c.want)]
			var got []byte
			r := background(t, func(stop <-chan struct{}) (err error) {
				got, err = readN(b, len(want), 65536, stop)
				return err
			})
			sent := spliceAll(t, e, a, in, c.off, c.n, ud)
			require.Equal(t, c.want, sent, "%s: bytes spliced", c.name)
			result(t, r)
			assert.Equal(t, sha256.Sum256(want), sha256.Sum256(got), "%s: sha256", c.name)
			requireBytes(t, want, got, c.name)
			if c.off < 0 {
				pos, err := unix.Seek(in, 0, 1)
				require.NoError(t, err)
				assert.Equal(t, c.pos+int64(sent), pos, "%s: the file position must advance", c.name)
			}
		}
		assert.Zero(t, e.InFlight())
	})
}
