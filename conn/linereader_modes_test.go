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

// events runs a LineReader over chunks with a protocol of its own: a line
// "B<n>" (n a digit) announces n bytes of binary data, a line "RAW" binary
// data until a binary chunk contains "!" (then SetLineMode), a line
// "D<delim>" switches to that delimiter. It returns what it saw: "L:line",
// binary data as "B:bytes" (consecutive chunks of one block merged) and
// "E" at a block's end.
func events(t *testing.T, chunks [][]byte, maxLine int) ([]string, error) {
	r := conn.LineReader{MaxLine: maxLine}
	var out []string
	var bin []byte
	inBin := false
	flush := func() {
		if inBin {
			out = append(out, "B:"+string(bin))
			bin, inBin = nil, false
		}
	}
	onBin := func(data []byte, end bool) {
		inBin = true
		bin = append(bin, data...)
		if end {
			flush()
			out = append(out, "E")
		}
	}
	onLine := func(line []byte) {
		flush()
		out = append(out, "L:"+string(line))
		switch {
		case len(line) == 2 && line[0] == 'B' && '0' <= line[1] && line[1] <= '9':
			if n := int64(line[1] - '0'); n > 0 {
				r.SetBinaryMode(n, onBin)
			}
		case len(line) > 1 && line[0] == 'D':
			require.NoError(t, r.SetDelimiter(string(line[1:])))
		}
	}
	for _, c := range chunks {
		err := r.Feed(c, onLine)
		for i := range c {
			c[i] = 0xDB // the caller's buffer is reused after Feed
		}
		if err != nil {
			return out, err
		}
	}
	flush()
	return out, nil
}

// reference is events computed one byte at a time with no LineReader.
func reference(in []byte) []string {
	var out []string
	delim := []byte("\n")
	var line, bin []byte
	binLeft := 0
	for _, b := range in {
		if binLeft > 0 {
			bin = append(bin, b)
			if binLeft--; binLeft == 0 {
				out = append(out, "B:"+string(bin), "E")
				bin = nil
			}
			continue
		}
		line = append(line, b)
		if !bytes.HasSuffix(line, delim) {
			continue
		}
		l := line[:len(line)-len(delim)]
		if string(delim) == "\n" {
			l = bytes.TrimSuffix(l, []byte("\r"))
		}
		out = append(out, "L:"+string(l))
		switch {
		case len(l) == 2 && l[0] == 'B' && '0' <= l[1] && l[1] <= '9':
			binLeft = int(l[1] - '0')
		case len(l) > 1 && l[0] == 'D':
			delim = append([]byte(nil), l[1:]...)
		}
		line = nil
	}
	if len(bin) > 0 { // a block cut short by the end of the input
		out = append(out, "B:"+string(bin))
	}
	return out
}

func chunked(in, cuts []byte) [][]byte {
	var chunks [][]byte
	rest := in
	for _, c := range cuts {
		n := min(int(c), len(rest))
		chunks = append(chunks, bytes.Clone(rest[:n]))
		rest = rest[n:]
	}
	return append(chunks, bytes.Clone(rest))
}

// FuzzLineReaderModes checks delimiters and sized binary blocks: any
// chunking yields the events of reading the whole input byte by byte.
func FuzzLineReaderModes(f *testing.F) {
	f.Add([]byte("B5\nhelloNEXT\r\nD\r\n\r\nab\r\n\r\nB3\r\n\r\nxyzdone\r\n\r\n"), []byte{1, 3, 7, 2})
	f.Add([]byte("D||\na|b||c|||B2||||tail||"), []byte{4, 1, 1})
	f.Add([]byte("B9\n123456789B0\nx\n"), []byte{})
	f.Fuzz(func(t *testing.T, in, cuts []byte) {
		want := reference(in)
		got, err := events(t, chunked(in, cuts), 1<<20)
		require.NoError(t, err)
		if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
			t.Fatalf("chunks %q:\n got %q\nwant %q", chunked(in, cuts), got, want)
		}
	})
}

// TestLineReaderModesEveryCut feeds a protocol transcript cut at every
// pair of positions.
func TestLineReaderModesEveryCut(t *testing.T) {
	in := []byte("B5\nhelloNEXT\r\nD||\nab||B3||x\r\nDx||qxrx")
	want := reference(in)
	require.Equal(t, []string{"L:B5", "B:hello", "E", "L:NEXT", "L:D||", "L:ab", "L:B3", "B:x\r\n", "E", "L:Dx", "L:q", "L:r"}, want)
	for i := 0; i <= len(in); i++ {
		for j := i; j <= len(in); j++ {
			got, err := events(t, [][]byte{bytes.Clone(in[:i]), bytes.Clone(in[i:j]), bytes.Clone(in[j:])}, 0)
			require.NoError(t, err)
			require.Equal(t, want, got, "cuts %d, %d", i, j)
		}
	}
}

func TestLineReaderUnboundedBinary(t *testing.T) {
	var r conn.LineReader
	var lines, bin []string
	onLine := func(l []byte) { lines = append(lines, string(l)) }
	require.NoError(t, r.Feed([]byte("head\npart"), onLine))
	assert.Equal(t, 4, r.Buffered())
	// Between Feeds, with "part" held: it is the first binary data.
	r.SetBinaryMode(0, func(data []byte, end bool) {
		assert.False(t, end, "never ends by itself")
		bin = append(bin, string(data))
		if strings.Contains(string(data), "!") {
			r.SetLineMode()
		}
	})
	assert.True(t, r.Binary())
	require.NoError(t, r.Feed([]byte("ial\nraw"), onLine))
	require.NoError(t, r.Feed([]byte("more!"), onLine))
	assert.False(t, r.Binary())
	require.NoError(t, r.Feed([]byte("tail\n"), onLine))
	assert.Equal(t, []string{"head", "tail"}, lines)
	assert.Equal(t, []string{"partial\nraw", "more!"}, bin)
	assert.Panics(t, func() { r.SetBinaryMode(3, nil) })
}

func TestLineReaderDelimiter(t *testing.T) {
	var r conn.LineReader
	assert.Error(t, r.SetDelimiter(""))
	var lines []string
	onLine := func(l []byte) { lines = append(lines, string(l)) }
	require.NoError(t, r.SetDelimiter("|"))
	require.NoError(t, r.Feed([]byte("a\r|b|c"), onLine))
	assert.Equal(t, []string{"a\r", "b"}, lines, "no \\r stripping with another delimiter")
	// Back to "\n" with "c" held: split again, "\r" stripped again.
	require.NoError(t, r.SetDelimiter("\n"))
	require.NoError(t, r.Feed([]byte("d\r\n"), onLine))
	assert.Equal(t, []string{"a\r", "b", "cd"}, lines)
	// A held partial line that contains the new delimiter is split again.
	require.NoError(t, r.Feed([]byte("x;y;z"), onLine))
	require.NoError(t, r.SetDelimiter(";"))
	require.NoError(t, r.Feed([]byte(";"), onLine))
	assert.Equal(t, []string{"a\r", "b", "cd", "x", "y", "z"}, lines)

	// MaxLine with a delimiter split across Feeds.
	r2 := conn.LineReader{MaxLine: 4}
	require.NoError(t, r2.SetDelimiter("\r\n\r\n"))
	var got []string
	require.NoError(t, r2.Feed([]byte("abcd\r\n"), func(l []byte) { got = append(got, string(l)) }))
	require.NoError(t, r2.Feed([]byte("\r\n"), func(l []byte) { got = append(got, string(l)) }))
	assert.Equal(t, []string{"abcd"}, got)
	assert.ErrorIs(t, r2.Feed([]byte("abcde\r\n\r\n"), func([]byte) {}), conn.ErrLineTooLong)
	assert.ErrorIs(t, r2.Feed([]byte("abcdefgh"), func([]byte) {}), conn.ErrLineTooLong, "too long before any delimiter")
}
