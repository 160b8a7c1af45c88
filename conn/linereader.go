package conn

import (
	"bytes"
	"errors"
)

// DefaultMaxLine is the longest line a LineReader accepts when its MaxLine
// is 0.
const DefaultMaxLine = 64 << 10

// ErrLineTooLong is returned by LineReader.Feed when a line (without its
// "\n" or "\r\n" terminator) is longer than the reader's MaxLine.
var ErrLineTooLong = errors.New("conn: line too long")

// LineReader splits a byte stream into lines, like EventMachine's
// LineText2 protocol: call Feed from ReceiveData with each chunk, and it
// calls back once per complete line, whatever the chunking.
//
// Lines end with "\n"; a "\r" just before it is stripped too, so "\r\n"
// and "\n" terminators both work. SetDelimiter chooses another terminator
// (LineText2's set_delimiter). The bytes after the last terminator are kept
// (copied, since ReceiveData's slice is only valid during the call) until
// the rest of their line arrives.
//
// Like LineText2, a LineReader switches between lines and raw bytes:
// SetBinaryMode(n, fn) hands the next n bytes of the stream to fn unsplit
// (set_binary_mode / set_text_mode, receive_binary_data), telling fn when
// the n-th arrives (receive_end_of_binary_data), and then goes back to
// lines; with n <= 0 every byte goes to fn until SetLineMode. Switching from
// inside a callback applies to the very next byte of the same Feed: a
// header line announcing a body of N bytes calls SetBinaryMode(N, ...)
// and the body follows, however it was chunked.
//
// The zero value is ready to use. A LineReader is not safe for concurrent
// use; one belongs to one connection's handler.
//
//	type lines struct {
//		conn.Base
//		r conn.LineReader
//	}
//
//	func (h *lines) ReceiveData(c *conn.Conn, data []byte) {
//		if err := h.r.Feed(data, func(line []byte) { c.SendData(line) }); err != nil {
//			c.Close()
//		}
//	}
type LineReader struct {
	// MaxLine is the longest line accepted, in bytes, not counting its
	// terminator (0: DefaultMaxLine). It bounds the memory one connection
	// can make the reader hold. Bytes in binary mode are never held, so it
	// does not bound them.
	MaxLine int

	buf   []byte // the partial line carried over from the previous Feed
	delim []byte // the terminator; nil: "\n" with an optional "\r" before it

	// Binary mode, when binFn is set: binLeft bytes still go to binFn
	// (binLeft < 0: until SetLineMode).
	binFn   func(data []byte, end bool)
	binLeft int64

	inLine bool // a line callback is running (r.buf may hold its line)
	refeed bool // the held bytes are to be split again (SetDelimiter)
}

// SetDelimiter makes delim the line terminator from now on (LineText2's
// set_delimiter): lines are split at every delim, which is removed, and
// "\r" is no longer stripped. A partial line already held is split again
// with the new delimiter. SetDelimiter("\n") restores the default
// behaviour of also stripping a "\r" before it. It returns an error for an
// empty delim.
func (r *LineReader) SetDelimiter(delim string) error {
	if delim == "" {
		return errors.New("conn: LineReader.SetDelimiter with an empty delimiter")
	}
	r.refeed = r.refeed || (len(r.buf) > 0 && !r.inLine)
	if delim == "\n" {
		r.delim = nil
		return nil
	}
	r.delim = []byte(delim)
	return nil
}

// SetBinaryMode hands the next n bytes of the stream to fn as they arrive,
// unsplit, instead of cutting them into lines (LineText2's set_binary_mode
// and set_text_mode). fn's data is valid only during the call; end is true
// on the call carrying the n-th byte, after which the reader is back in
// line mode. With n <= 0 every byte goes to fn, end always false, until
// SetLineMode. Bytes of a partial line already held when it is called are
// the first bytes handed to fn. It may be called from a line callback or
// from fn itself (to chain blocks); it panics on a nil fn, a programming
// error.
func (r *LineReader) SetBinaryMode(n int64, fn func(data []byte, end bool)) {
	if fn == nil {
		panic("conn: LineReader.SetBinaryMode with a nil function")
	}
	r.binFn = fn
	r.binLeft = n
	if n <= 0 {
		r.binLeft = -1
	}
}

// SetLineMode goes back to splitting lines (LineText2's set_line_mode),
// ending a binary mode early; fn is not told. It does nothing in line mode.
func (r *LineReader) SetLineMode() { r.binFn, r.binLeft = nil, 0 }

// Binary reports whether the reader is in binary mode.
func (r *LineReader) Binary() bool { return r.binFn != nil }

// keepCap is the largest buffer a LineReader keeps between lines: longer
// lines get a buffer of their own that is released once they are complete,
// so an idle connection does not hold on to the memory of its longest line.
const keepCap = 4 << 10

// Feed appends data to the stream and calls fn for every line it completes,
// in order, without the terminator, or hands bytes to the binary-mode
// function while SetBinaryMode is in effect. The line slice is valid only
// during fn (it may point into data or into the reader's buffer): copy what
// you keep. data itself is not retained.
//
// When a line exceeds MaxLine, Feed returns ErrLineTooLong without calling
// fn for it or for anything after it, and resets the reader; a protocol
// handler usually closes the connection then. Lines completed before the
// long one have already been delivered.
func (r *LineReader) Feed(data []byte, fn func(line []byte)) error {
	if len(r.buf) > 0 && (r.binFn != nil || r.refeed) {
		// Switched to binary mode, or to another delimiter, between Feeds
		// with a partial line held: those bytes are the stream's next.
		data = append(append([]byte(nil), r.buf...), data...)
		r.Reset()
	}
	r.refeed = false
	limit := r.maxLine()
	for len(data) > 0 {
		if r.binFn != nil {
			data = r.binary(data)
			continue
		}
		if r.delim != nil {
			var line []byte
			var ok bool
			var err error
			if line, data, ok, err = r.splitDelim(data, limit); err != nil {
				return err
			}
			if !ok {
				return nil
			}
			r.deliver(fn, line)
			continue
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if tooLong(len(r.buf)+len(data), data[len(data)-1] == '\r', limit) {
				r.Reset()
				return ErrLineTooLong
			}
			r.buf = append(r.buf, data...)
			return nil
		}
		var cr bool // does the line end with "\r"?
		switch {
		case i > 0:
			cr = data[i-1] == '\r'
		case len(r.buf) > 0:
			cr = r.buf[len(r.buf)-1] == '\r'
		}
		if tooLong(len(r.buf)+i, cr, limit) {
			r.Reset()
			return ErrLineTooLong
		}
		line := data[:i] // the common case: no copy
		if len(r.buf) > 0 {
			r.buf = append(r.buf, line...)
			line = r.buf
		}
		if cr {
			line = line[:len(line)-1]
		}
		data = data[i+1:]
		r.deliver(fn, line)
	}
	return nil
}

// deliver calls fn with a line, then drops the held bytes.
func (r *LineReader) deliver(fn func(line []byte), line []byte) {
	r.inLine = true
	defer func() { r.inLine = false }()
	fn(line)
	r.release()
}

// binary hands the head of data to the binary-mode function and returns
// the rest (bytes past the end of a sized block).
func (r *LineReader) binary(data []byte) []byte {
	fn := r.binFn
	if r.binLeft < 0 {
		fn(data, false)
		return nil
	}
	n := int(min(r.binLeft, int64(len(data))))
	r.binLeft -= int64(n)
	end := r.binLeft == 0
	if end {
		r.binFn = nil // back to lines, unless fn switches again
	}
	fn(data[:n], end)
	return data[n:]
}

// splitDelim finds the next line ending in r.delim in the held bytes and
// data. It returns the line (aliasing data or r.buf), the data after its
// delimiter and ok; or, with no delimiter yet, holds data and returns
// ok false.
func (r *LineReader) splitDelim(data []byte, limit int) (line, rest []byte, ok bool, err error) {
	d := r.delim
	// A delimiter split across the held bytes and data.
	for k := min(len(d)-1, len(r.buf)); k >= 1; k-- {
		if bytes.HasSuffix(r.buf, d[:k]) && bytes.HasPrefix(data, d[k:]) {
			if len(r.buf)-k > limit {
				r.Reset()
				return nil, nil, false, ErrLineTooLong
			}
			return r.buf[:len(r.buf)-k], data[len(d)-k:], true, nil
		}
	}
	i := bytes.Index(data, d)
	if i < 0 {
		// The held bytes may end in part of a delimiter: allow for it.
		if len(r.buf)+len(data)-(len(d)-1) > limit {
			r.Reset()
			return nil, nil, false, ErrLineTooLong
		}
		r.buf = append(r.buf, data...)
		return nil, nil, false, nil
	}
	if len(r.buf)+i > limit {
		r.Reset()
		return nil, nil, false, ErrLineTooLong
	}
	line = data[:i]
	if len(r.buf) > 0 {
		r.buf = append(r.buf, line...)
		line = r.buf
	}
	return line, data[i+len(d):], true, nil
}

// release empties the held bytes after a line was delivered, dropping a
// large buffer.
func (r *LineReader) release() {
	if cap(r.buf) > keepCap {
		r.buf = nil
	} else {
		r.buf = r.buf[:0]
	}
}

// tooLong reports whether a line of n bytes so far is already longer than
// limit; a final "\r" (crLast) may still turn out to be part of the
// terminator.
func tooLong(n int, crLast bool, limit int) bool {
	if crLast {
		n--
	}
	return n > limit
}

// Buffered returns the number of bytes held: the partial line waiting for
// its terminator.
func (r *LineReader) Buffered() int { return len(r.buf) }

// Reset discards the partial line, if any. The delimiter and the mode stay.
func (r *LineReader) Reset() { r.release() }

func (r *LineReader) maxLine() int {
	if r.MaxLine > 0 {
		return r.MaxLine
	}
	return DefaultMaxLine
}
