package conn_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/conn"
)

// feedAll feeds chunks to r and returns the lines (copied) and the first
// error.
func feedAll(r *conn.LineReader, chunks ...[]byte) ([]string, error) {
	var got []string
	for _, c := range chunks {
		if err := r.Feed(c, func(line []byte) { got = append(got, string(line)) }); err != nil {
			return got, err
		}
	}
	return got, nil
}

func TestLineReader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		chunks   []string
		want     []string
		buffered int
	}{
		{"empty", []string{""}, nil, 0},
		{"one line", []string{"hello\n"}, []string{"hello"}, 0},
		{"crlf", []string{"hello\r\n"}, []string{"hello"}, 0},
		{"only one cr stripped", []string{"a\r\r\n"}, []string{"a\r"}, 0},
		{"cr elsewhere kept", []string{"a\rb\n"}, []string{"a\rb"}, 0},
		{"empty lines", []string{"\n\r\n\n"}, []string{"", "", ""}, 0},
		{"several in one chunk", []string{"a\nbb\r\nccc\n"}, []string{"a", "bb", "ccc"}, 0},
		{"partial tail", []string{"a\nbc"}, []string{"a"}, 2},
		{"split line", []string{"he", "ll", "o\nwor", "ld\n"}, []string{"hello", "world"}, 0},
		{"crlf split", []string{"hi\r", "\n"}, []string{"hi"}, 0},
		{"lone cr chunk", []string{"hi", "\r", "\n", "x"}, []string{"hi"}, 1},
		{"newline alone", []string{"abc", "\n"}, []string{"abc"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r conn.LineReader
			chunks := make([][]byte, len(tc.chunks))
			for i, c := range tc.chunks {
				chunks[i] = []byte(c)
			}
			got, err := feedAll(&r, chunks...)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.buffered, r.Buffered())
		})
	}
}

// TestLineReaderCopiesTail checks that the partial line is copied: the
// caller (ReceiveData) may reuse its buffer as soon as Feed returns.
func TestLineReaderCopiesTail(t *testing.T) {
	var r conn.LineReader
	buf := []byte("abc")
	got, err := feedAll(&r, buf)
	require.NoError(t, err)
	assert.Empty(t, got)
	copy(buf, "XYZ") // what DebugPoisonReceive would do
	got, err = feedAll(&r, []byte("def\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"abcdef"}, got)
}

func TestLineReaderMaxLine(t *testing.T) {
	t.Run("exactly MaxLine", func(t *testing.T) {
		r := conn.LineReader{MaxLine: 4}
		got, err := feedAll(&r, []byte("abcd\nabcd\r\n"))
		require.NoError(t, err)
		assert.Equal(t, []string{"abcd", "abcd"}, got)
	})
	t.Run("cr of a partial line not counted", func(t *testing.T) {
		r := conn.LineReader{MaxLine: 4}
		got, err := feedAll(&r, []byte("abcd\r"), []byte("\n"))
		require.NoError(t, err)
		assert.Equal(t, []string{"abcd"}, got)
	})
	t.Run("complete line too long", func(t *testing.T) {
		r := conn.LineReader{MaxLine: 4}
		got, err := feedAll(&r, []byte("ok\nabcde\nnever\n"))
		require.ErrorIs(t, err, conn.ErrLineTooLong)
		assert.Equal(t, []string{"ok"}, got, "lines before the long one are delivered, none after")
		assert.Zero(t, r.Buffered(), "reset after the error")
	})
	t.Run("partial line too long", func(t *testing.T) {
		r := conn.LineReader{MaxLine: 4}
		_, err := feedAll(&r, []byte("abc"), []byte("de"))
		require.ErrorIs(t, err, conn.ErrLineTooLong, "detected before the newline arrives")
		assert.Zero(t, r.Buffered())
	})
	t.Run("usable after error", func(t *testing.T) {
		r := conn.LineReader{MaxLine: 4}
		_, err := feedAll(&r, []byte("abcdefgh"))
		require.ErrorIs(t, err, conn.ErrLineTooLong)
		got, err := feedAll(&r, []byte("ok\n"))
		require.NoError(t, err)
		assert.Equal(t, []string{"ok"}, got)
	})
	t.Run("default 64 KiB", func(t *testing.T) {
		var r conn.LineReader
		line := bytes.Repeat([]byte("x"), conn.DefaultMaxLine)
		got, err := feedAll(&r, line[:1000], line[1000:], []byte("\n"))
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Len(t, got[0], conn.DefaultMaxLine)
		_, err = feedAll(&r, line, []byte("x"))
		assert.ErrorIs(t, err, conn.ErrLineTooLong)
	})
}

func TestLineReaderReset(t *testing.T) {
	var r conn.LineReader
	_, err := feedAll(&r, []byte("partial"))
	require.NoError(t, err)
	assert.Equal(t, 7, r.Buffered())
	r.Reset()
	assert.Zero(t, r.Buffered())
	got, err := feedAll(&r, []byte("new\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"new"}, got)
}

func TestLineReaderAllocs(t *testing.T) {
	var r conn.LineReader
	data := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		_ = r.Feed(data, func([]byte) { n++ })
	})
	assert.Zero(t, allocs, "whole lines in one chunk are not copied")
}

// splitLines is the reference: the lines of the whole input, and whether
// some line (complete or not) exceeds limit.
func splitLines(in []byte, limit int) (lines []string, tooLong bool) {
	parts := strings.Split(string(in), "\n")
	for i, p := range parts {
		last := i == len(parts)-1
		s := p
		if !last || strings.HasSuffix(p, "\r") {
			s = strings.TrimSuffix(p, "\r")
		}
		if len(s) > limit {
			return lines, true
		}
		if last {
			break
		}
		lines = append(lines, s)
	}
	return lines, false
}

// FuzzLineReader checks that any chunking of the input yields the same
// lines as splitting the whole input at once.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("hello\nworld\r\n"), []byte{1, 3, 5}, uint8(8))
	f.Add([]byte("a\r\r\n\n\rb\nc"), []byte{0, 2}, uint8(2))
	f.Add([]byte("abcd\r\nxyz"), []byte{5}, uint8(4))
	f.Add([]byte("\n\n\n"), []byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, in, cuts []byte, maxLine uint8) {
		limit := int(maxLine)
		if limit == 0 {
			limit = conn.DefaultMaxLine
		}
		want, wantErr := splitLines(in, limit)

		var chunks [][]byte
		rest := in
		for _, c := range cuts {
			n := min(int(c), len(rest))
			chunks = append(chunks, bytes.Clone(rest[:n]))
			rest = rest[n:]
		}
		chunks = append(chunks, bytes.Clone(rest))

		r := conn.LineReader{MaxLine: int(maxLine)}
		var got []string
		var err error
		for _, c := range chunks {
			err = r.Feed(c, func(line []byte) { got = append(got, string(line)) })
			for i := range c {
				c[i] = 0xDB // the caller's buffer is reused after Feed
			}
			if err != nil {
				break
			}
		}
		if wantErr {
			if err == nil {
				t.Fatalf("no ErrLineTooLong for %q (max %d)", in, limit)
			}
		} else if err != nil {
			t.Fatalf("unexpected %v for %q (max %d)", err, in, limit)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
			t.Fatalf("chunks %q: got %q, want %q", chunks, got, want)
		}
		if err == nil {
			tail := in[bytes.LastIndexByte(in, '\n')+1:]
			if r.Buffered() != len(tail) {
				t.Fatalf("Buffered() = %d, want %d", r.Buffered(), len(tail))
			}
		}
	})
}
