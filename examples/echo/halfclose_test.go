package main

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

// TestHalfCloseKeepsReplies: 1,000 clients each send a message and shut down
// their write side at once; every echo comes back whole.
func TestHalfCloseKeepsReplies(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t)
		msg := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("message %d;", i)), 100) }
		lost, why := testutil.HalfCloseClients(addr, 1000, 10*time.Second, msg, func(i int, reply []byte) error {
			if !bytes.Equal(reply, msg(i)) {
				return fmt.Errorf("%d of %d bytes echoed", len(reply), len(msg(i)))
			}
			return nil
		})
		t.Logf("%d of 1000 replies lost", lost)
		assert.Zero(t, lost, "echoes lost to the client's half-close: %v", why)
		require.NoError(t, stop())
	})
}
