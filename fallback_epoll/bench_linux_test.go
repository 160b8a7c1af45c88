package epoll_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	epoll "github.com/ringmachine/ringmachine/fallback_epoll"
)

// BenchmarkWake measures a Wake followed by the Wait it unblocks.
func BenchmarkWake(b *testing.B) {
	p := newPoller(b, epoll.Options{})
	dst := make([]epoll.Completion, 16)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Wake(); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Wait(-1, dst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/wake")
}

// BenchmarkEchoPingPong bounces 64 bytes over a socket pair: one side sends,
// the other echoes with a RecvMultishot and a Send, all on one Poller; one
// op is one round trip.
func BenchmarkEchoPingPong(b *testing.B) {
	p := newPoller(b, epoll.Options{})
	a, e := unixPair(b)
	const (
		clientRecv = iota + 1
		clientSend
		echoRecv
		echoSend
	)
	msg := make([]byte, 64)
	echo := make([]byte, 0, 64)
	require.NoError(b, p.RecvMultishot(a, clientRecv))
	require.NoError(b, p.RecvMultishot(e, echoRecv))
	dst := make([]epoll.Completion, 64)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	syscalls := p.Syscalls()
	for b.Loop() {
		require.NoError(b, p.Send(a, [][]byte{msg}, clientSend))
		got := 0
		for got < len(msg) {
			n, err := p.Wait(-1, dst)
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range dst[:n] {
				if c.Res < 0 {
					b.Fatal(c.UserData, c.Err())
				}
				switch c.UserData {
				case echoRecv:
					// The echo copies: Buf is only valid until the next Wait.
					echo = append(echo[:0], c.Buf...)
					if err := p.Send(e, [][]byte{echo}, echoSend); err != nil {
						b.Fatal(err)
					}
				case clientRecv:
					got += int(c.Res)
				}
			}
		}
	}
	b.ReportMetric(float64(p.Syscalls()-syscalls)/float64(b.N), "syscalls/op")
	for _, fd := range []int{a, e} {
		_, err := p.CancelFD(fd)
		require.NoError(b, err)
	}
	reap(b, p, 64, finals(clientRecv, echoRecv))
}
