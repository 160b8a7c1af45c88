package conn_test

import (
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
)

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		in, network, address string
		ok                   bool
	}{
		{"127.0.0.1:80", "tcp", "127.0.0.1:80", true},
		{"127.0.0.1:0", "tcp", "127.0.0.1:0", true},
		{"[::1]:8080", "tcp", "[::1]:8080", true},
		{":10000", "tcp", ":10000", true},
		{"localhost:65535", "tcp", "localhost:65535", true},
		{"unix:/tmp/x.sock", "unix", "/tmp/x.sock", true},
		{"unix:@abstract", "unix", "@abstract", true},
		{"unix:rel/path", "unix", "rel/path", true},
		{"unix:", "", "", false},
		{"unix:@", "", "", false},
		{"unix:" + strings.Repeat("a", 108), "", "", false},
		{"unix:a\x00b", "", "", false},
		{"127.0.0.1", "", "", false},
		{"127.0.0.1:65536", "", "", false},
		{"127.0.0.1:-1", "", "", false},
		{"127.0.0.1:+1", "", "", false},
		{"127.0.0.1:http", "", "", false},
		{"::1:80", "", "", false},
		{"", "", "", false},
		{"a b:80", "", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			n, a, err := conn.ParseAddr(tc.in)
			if !tc.ok {
				require.ErrorIs(t, err, conn.ErrInvalidAddr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.network, n)
			assert.Equal(t, tc.address, a)
		})
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1:0", "[::1]:1", "unix:/x", "unix:@y", ":80", "unix:", "h:p"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, a, err := conn.ParseAddr(s)
		if err != nil {
			if !assert.ErrorIs(t, err, conn.ErrInvalidAddr) {
				return
			}
			return
		}
		switch n {
		case "unix":
			assert.Equal(t, "unix:"+a, s)
			assert.NotEmpty(t, a)
			assert.NotContains(t, a, "\x00")
		case "tcp":
			assert.Equal(t, s, a)
			_, _, err := net.SplitHostPort(a)
			assert.NoError(t, err)
		default:
			t.Fatalf("network %q", n)
		}
	})
}
