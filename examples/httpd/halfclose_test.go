package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

// TestHalfCloseKeepsReplies: 1,000 clients each send two pipelined requests
// and shut down their write side at once; both responses come back whole.
func TestHalfCloseKeepsReplies(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t)
		req := func(i int) []byte {
			return []byte(fmt.Sprintf("GET /a%d HTTP/1.1\r\nHost: x\r\n\r\nGET /b%d HTTP/1.1\r\nHost: x\r\n\r\n", i, i))
		}
		lost, why := testutil.HalfCloseClients(addr, 1000, 10*time.Second, req, func(i int, reply []byte) error {
			r := bufio.NewReader(bytes.NewReader(reply))
			for k := range 2 {
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					return fmt.Errorf("response %d: %w (reply %q)", k, err, reply)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(body) != helloBody {
					return fmt.Errorf("response %d: status %d body %q err %v", k, resp.StatusCode, body, err)
				}
			}
			if r.Buffered() > 0 {
				return fmt.Errorf("%d bytes after the responses", r.Buffered())
			}
			return nil
		})
		t.Logf("%d of 1000 replies lost", lost)
		assert.Zero(t, lost, "responses lost to the client's half-close: %v", why)
		require.NoError(t, stop())
	})
}
