package loop_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// needOpenSSL skips t without the openssl command (.ci/run installs it).
func needOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (apt-get install openssl)")
	}
}

// lineEcho echoes and closes after writing once a whole line came.
type lineEcho struct {
	*handler
	cfg *tls.Config
}

func (h *lineEcho) PostInit(c *conn.Conn) {
	h.handler.PostInit(c)
	assert.NoError(h.t, c.StartTLS(h.cfg))
}

func (h *lineEcho) ReceiveData(c *conn.Conn, data []byte) {
	assert.NoError(h.t, c.SendData(data))
	if strings.Contains(string(data), "\n") {
		assert.NoError(h.t, c.CloseAfterWriting())
	}
}

// TestTLSOpenSSLClient: openssl s_client, verifying the chain and the
// name, talks to a TLS server of the loop.
func TestTLSOpenSSLClient(t *testing.T) {
	needOpenSSL(t)
	p := testutil.TestPKI(t)
	ca, _, _ := p.Files(t)
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		g := startLoop(t, b, loop.Options{})
		_, addr := g.startServer("127.0.0.1:0", func() conn.Handler {
			return &lineEcho{handler: newHandler(t), cfg: &tls.Config{Certificates: []tls.Certificate{p.Leaf}}}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", addr.String(), "-CAfile", ca,
			"-verify_return_error", "-servername", "localhost", "-quiet")
		cmd.Stdin = strings.NewReader("hello from openssl\n")
		out, err := cmd.Output()
		require.NoError(t, err, "openssl s_client: %s", out)
		assert.Equal(t, "hello from openssl\n", string(out))
		require.NoError(t, g.stop())
	})
}

// TestTLSOpenSSLServer: a client connection of the loop verifies openssl
// s_server's certificate and reads its -www page.
func TestTLSOpenSSLServer(t *testing.T) {
	needOpenSSL(t)
	p := testutil.TestPKI(t)
	_, cert, key := p.Files(t)
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		testutil.CheckLeaks(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		require.NoError(t, ln.Close())
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv := exec.CommandContext(ctx, "openssl", "s_server", "-accept", "127.0.0.1:"+strconv.Itoa(port),
			"-cert", cert, "-key", key, "-www", "-naccept", "1")
		stdout, err := srv.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, srv.Start())
		defer func() { cancel(); _ = srv.Wait() }()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && !strings.Contains(sc.Text(), "ACCEPT") {
		}
		require.NoError(t, sc.Err())

		g := startLoop(t, b, loop.Options{})
		h := newHandler(t)
		var page strings.Builder
		h.postInit = func(c *conn.Conn) {
			assert.NoError(t, c.StartTLS(&tls.Config{RootCAs: p.Pool}))
			assert.NoError(t, c.SendData([]byte("GET / HTTP/1.0\r\n\r\n")))
		}
		h.receive = func(c *conn.Conn, data []byte) { page.Write(data) }
		g.do(func(l *loop.Loop) {
			_, err := l.Connect("127.0.0.1:"+strconv.Itoa(port), h)
			assert.NoError(t, err)
		})
		expectKind(t, h.ev, "post_init")
		expectKind(t, h.ev, "completed")
		u := expectKind(t, h.ev, "unbind")
		assert.ErrorIs(t, u.err, io.EOF)
		g.do(func(*loop.Loop) {
			assert.Contains(t, page.String(), "HTTP/1.0 200 ok")
			assert.Contains(t, page.String(), "s_server")
		})
		require.NoError(t, g.stop())
	})
}
