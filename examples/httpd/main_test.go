package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

var listening = regexp.MustCompile(`^httpd: listening on (\S+) \((uring|epoll), \d+ loops\)$`)

// start runs the server on an ephemeral port and returns its address and a
// function that stops it and returns run's error.
func start(t *testing.T, args ...string) (addr string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, pw, append([]string{"-addr", "127.0.0.1:0"}, args...))
		pw.Close()
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no listening line: %v (run: %v)", err, <-done)
	}
	m := listening.FindStringSubmatch(strings.TrimSuffix(line, "\n"))
	require.NotNil(t, m, "listening line %q", line)
	go io.Copy(io.Discard, pr)
	return m[1], func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("run did not return after cancel")
			return nil
		}
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	t.Cleanup(func() { c.Close() })
	return c
}

// readResponse reads one response and checks its shape; it returns the
// status code, the headers and the body.
func readResponse(t *testing.T, r *bufio.Reader, method string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.ReadResponse(r, &http.Request{Method: method})
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.Close { // ReadResponse moves "Connection: close" there
		resp.Header.Set("Connection", "close")
	}
	return resp.StatusCode, resp.Header, string(body)
}

var dateRE = regexp.MustCompile(`^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$`)

// TestHTTPDLoops: with -loops 2, concurrent keep-alive clients are all
// answered, with a valid Date from each loop's own clock.
func TestHTTPDLoops(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t, "-loops", "2")
		for range 16 {
			c := dial(t, addr)
			r := bufio.NewReader(c)
			for i := range 2 {
				_, err := fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
				require.NoError(t, err)
				code, h, body := readResponse(t, r, "GET")
				assert.Equal(t, 200, code)
				assert.Equal(t, "Hello, World!", body)
				assert.Regexp(t, dateRE, h.Get("Date"))
			}
			c.Close()
		}
		require.NoError(t, stop())
	})
}

func TestHTTPD(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		addr, stop := start(t)

		t.Run("raw keep-alive", func(t *testing.T) {
			c := dial(t, addr)
			r := bufio.NewReader(c)
			for i := range 3 {
				_, err := fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
				require.NoError(t, err)
				code, h, body := readResponse(t, r, "GET")
				assert.Equal(t, 200, code)
				assert.Equal(t, "Hello, World!", body)
				assert.Equal(t, "RingMachine", h.Get("Server"))
				assert.Equal(t, "text/plain", h.Get("Content-Type"))
				assert.Equal(t, "13", h.Get("Content-Length"))
				assert.Regexp(t, dateRE, h.Get("Date"))
				d, err := http.ParseTime(h.Get("Date"))
				require.NoError(t, err)
				assert.WithinDuration(t, time.Now(), d, 5*time.Second)
			}
		})

		t.Run("exact bytes", func(t *testing.T) {
			c := dial(t, addr)
			_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			require.NoError(t, err)
			const head = "HTTP/1.1 200 OK\r\nServer: RingMachine\r\nDate: "
			const tail = " GMT\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
			got := make([]byte, len(head)+len(dateLayout)+len(tail)-4)
			_, err = io.ReadFull(c, got)
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(string(got), head), "%q", got)
			assert.True(t, strings.HasSuffix(string(got), tail), "%q", got)
		})

		t.Run("pipelined 100 in one write", func(t *testing.T) {
			c := dial(t, addr)
			var b strings.Builder
			for i := range 100 {
				if i%10 == 3 {
					fmt.Fprintf(&b, "POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", i)
				} else {
					fmt.Fprintf(&b, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
				}
			}
			b.WriteString("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			_, err := io.WriteString(c, b.String())
			require.NoError(t, err)
			r := bufio.NewReader(c)
			for i := range 100 {
				code, _, body := readResponse(t, r, "GET")
				require.Equal(t, 200, code, "response %d", i)
				require.Equal(t, "Hello, World!", body, "response %d", i)
			}
			code, h, body := readResponse(t, r, "HEAD")
			assert.Equal(t, 200, code)
			assert.Equal(t, "close", h.Get("Connection"))
			assert.Empty(t, body)
			rest, err := io.ReadAll(r)
			require.NoError(t, err, "the server closes after Connection: close")
			assert.Empty(t, rest)
		})

		t.Run("request split across writes", func(t *testing.T) {
			c := dial(t, addr)
			r := bufio.NewReader(c)
			for _, part := range []string{"GE", "T / HTTP/1.1\r\nHo", "st: x\r\nContent-Length: 4\r\n\r", "\nab", "cd"} {
				_, err := io.WriteString(c, part)
				require.NoError(t, err)
				time.Sleep(5 * time.Millisecond)
			}
			_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			require.NoError(t, err)
			for range 2 {
				code, _, body := readResponse(t, r, "GET")
				assert.Equal(t, 200, code)
				assert.Equal(t, "Hello, World!", body)
			}
		})

		t.Run("HTTP/1.0", func(t *testing.T) {
			c := dial(t, addr)
			_, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
			require.NoError(t, err)
			got, err := io.ReadAll(c)
			require.NoError(t, err, "closed after the response")
			assert.Contains(t, string(got), "\r\nConnection: close\r\n")
			assert.True(t, strings.HasSuffix(string(got), "\r\n\r\nHello, World!"))

			c = dial(t, addr)
			r := bufio.NewReader(c)
			for range 2 {
				_, err = io.WriteString(c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
				require.NoError(t, err)
				code, h, body := readResponse(t, r, "GET")
				assert.Equal(t, 200, code)
				assert.Equal(t, "keep-alive", h.Get("Connection"))
				assert.Equal(t, "Hello, World!", body)
			}
		})

		for _, tt := range []struct {
			name string
			req  string
			code int
		}{
			{"malformed request line", "GET/HTTP/1.1\r\n\r\n", 400},
			{"malformed header", "GET / HTTP/1.1\r\nHost x\r\n\r\n", 400},
			{"missing host", "GET / HTTP/1.1\r\n\r\n", 400},
			{"huge header", "GET / HTTP/1.1\r\nHost: x\r\nCookie: " + strings.Repeat("c", 10<<10) + "\r\n\r\n", 431},
			{"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
			{"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 505},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c := dial(t, addr)
				// The first request is answered, the bad one closes.
				_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"+tt.req)
				require.NoError(t, err)
				r := bufio.NewReader(c)
				code, _, _ := readResponse(t, r, "GET")
				assert.Equal(t, 200, code)
				code, h, _ := readResponse(t, r, "GET")
				assert.Equal(t, tt.code, code)
				assert.Equal(t, "close", h.Get("Connection"))
				_, err = r.ReadByte()
				if !errors.Is(err, io.EOF) {
					// The server may close with our input unread (431),
					// which resets the connection.
					assert.ErrorIs(t, err, syscall.ECONNRESET)
				}
			})
		}

		t.Run("net/http client", func(t *testing.T) {
			tr := &http.Transport{MaxIdleConnsPerHost: 4}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			conns := 0
			for i := range 50 {
				req, err := http.NewRequest("GET", "http://"+addr+"/plaintext", nil)
				require.NoError(t, err)
				if i%7 == 0 {
					req, err = http.NewRequest("POST", "http://"+addr+"/", strings.NewReader("some body"))
					require.NoError(t, err)
				}
				resp, err := client.Do(req)
				require.NoError(t, err)
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				assert.Equal(t, 200, resp.StatusCode)
				assert.Equal(t, "Hello, World!", string(body))
				assert.Equal(t, "HTTP/1.1", resp.Proto)
				if !resp.Close {
					conns++
				}
			}
			assert.Equal(t, 50, conns, "keep-alive throughout")
		})

		t.Run("Date ticks", func(t *testing.T) {
			c := dial(t, addr)
			r := bufio.NewReader(c)
			get := func() string {
				_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				require.NoError(t, err)
				_, h, _ := readResponse(t, r, "GET")
				return h.Get("Date")
			}
			first := get()
			require.Eventually(t, func() bool { return get() != first }, 5*time.Second, 100*time.Millisecond)
		})

		require.NoError(t, stop())
	})
}

func TestBadFlags(t *testing.T) {
	assert.Error(t, run(context.Background(), io.Discard, []string{"-nope"}))
	assert.Error(t, run(context.Background(), io.Discard, []string{"-loops", "-1"}))
}

func TestBadAddr(t *testing.T) {
	testutil.CheckLeaks(t)
	assert.Error(t, run(context.Background(), io.Discard, []string{"-addr", "not an address"}))
}
