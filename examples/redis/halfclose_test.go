package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

// TestHalfCloseKeepsReplies: 1,000 clients each pipeline SET, GET and PING
// and shut down their write side at once (redis-cli < file does the same);
// all three replies come back whole.
func TestHalfCloseKeepsReplies(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t)
		req := func(i int) []byte {
			k, v := fmt.Sprintf("key:%d", i), fmt.Sprintf("value-%d", i)
			return []byte(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\nPING\r\n",
				len(k), k, len(v), v, len(k), k))
		}
		lost, why := testutil.HalfCloseClients(addr, 1000, 10*time.Second, req, func(i int, reply []byte) error {
			v := fmt.Sprintf("value-%d", i)
			if want := fmt.Sprintf("+OK\r\n$%d\r\n%s\r\n+PONG\r\n", len(v), v); string(reply) != want {
				return fmt.Errorf("reply %q, want %q", reply, want)
			}
			return nil
		})
		t.Logf("%d of 1000 replies lost", lost)
		assert.Zero(t, lost, "replies lost to the client's half-close: %v", why)
		require.NoError(t, stop())
	})
}
