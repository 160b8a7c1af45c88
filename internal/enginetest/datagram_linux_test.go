package enginetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// canBind reports whether a UDP socket can be bound to ip here (::1 needs
// IPv6 on the loopback device).
func canBind(ip string) bool {
	sa, fam := sockaddr(ip, 0)
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Bind(fd, sa) == nil
}

// TestDatagram sends datagrams with SendTo and receives them with RecvFrom
// over UDP on 127.0.0.1 and ::1: each keeps its boundaries and bytes (an
// empty one included), lands in the caller's buffer, and From is the
// sender's address.
func TestDatagram(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e eng) {
		ud := uint64(0)
		for _, ip := range []string{"127.0.0.1", "::1"} {
			if !canBind(ip) {
				t.Logf("skipping %s: cannot bind a UDP socket to it", ip)
				continue
			}
			a, aAddr := boundSocket(t, ip, unix.SOCK_DGRAM)
			b, bAddr := boundSocket(t, ip, unix.SOCK_DGRAM)
			for i, size := range []int{1200, 1, 0, 65000, 300} {
				ud += 2
				recvUD, sendUD := ud, ud+1
				buf := make([]byte, 65536)
				// The receive is armed before the datagram is sent for the
				// even rounds, after it for the odd ones.
				if i%2 == 0 {
					require.NoError(t, e.RecvFrom(b, buf, recvUD))
				}
				msg := pattern(size, uint32(100+i))
				require.NoError(t, e.SendTo(a, msg, bAddr, sendUD))
				var cs []completion
				if i%2 == 1 {
					cs = reap(t, e, 4, finals(sendUD))
					require.NoError(t, e.RecvFrom(b, buf, recvUD))
				}
				cs = append(cs, reap(t, e, 4, func(more []completion) bool {
					return finals(recvUD, sendUD)(append(cs, more...))
				})...)
				c := finalOf(t, cs, sendUD)
				require.Equal(t, int32(size), c.Res, "%s: SendTo of %d bytes", ip, size)
				r := finalOf(t, cs, recvUD)
				require.Equal(t, int32(size), r.Res, "%s: RecvFrom of a %d-byte datagram", ip, size)
				requireBytes(t, msg, r.Buf, ip+": completion Buf")
				requireBytes(t, msg, buf[:size], ip+": caller's buffer")
				require.NotNil(t, r.From, "%s: From of a %d-byte datagram", ip, size)
				assert.Equal(t, addrPort(aAddr).String(), addrPort(r.From).String(), "%s: From", ip)
			}
			// A datagram larger than the buffer is cut to it; the rest is
			// gone, and the next datagram is whole.
			ud += 2
			big, small := pattern(5000, 1), pattern(10, 2)
			require.NoError(t, e.SendTo(a, big, bAddr, ud))
			require.NoError(t, e.SendTo(a, small, bAddr, ud+1))
			reap(t, e, 4, finals(ud, ud+1))
			buf := make([]byte, 100)
			require.NoError(t, e.RecvFrom(b, buf, ud))
			r := finalOf(t, reap(t, e, 4, finals(ud)), ud)
			require.Equal(t, int32(100), r.Res, "%s: truncated datagram", ip)
			requireBytes(t, big[:100], r.Buf, ip+": truncated datagram")
			require.NoError(t, e.RecvFrom(b, buf, ud+1))
			r = finalOf(t, reap(t, e, 4, finals(ud+1)), ud+1)
			requireBytes(t, small, r.Buf, ip+": datagram after a truncated one")
		}
		assert.Zero(t, e.InFlight())
	})
}
