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
// and "\n" terminators both work. The bytes after the last "\n" are kept
// (copied, since ReceiveData's slice is only valid during the call) until
// the rest of their line arrives.
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
	// can make the reader hold.
	MaxLine int

	buf []byte // the partial line carried over from the previous Feed
}

// keepCap is the largest buffer a LineReader keeps between lines: longer
// lines get a buffer of their own that is released once they are complete,
// so an idle connection does not hold on to the memory of its longest line.
const keepCap = 4 << 10

// Feed appends data to the stream and calls fn for every line it completes,
// in order, without the terminator. The line slice is valid only during fn
// (it may point into data or into the reader's buffer): copy what you keep.
// data itself is not retained.
//
// When a line exceeds MaxLine, Feed returns ErrLineTooLong without calling
// fn for it or for anything after it, and resets the reader; a protocol
// handler usually closes the connection then. Lines completed before the
// long one have already been delivered.
func (r *LineReader) Feed(data []byte, fn func(line []byte)) error {
	limit := r.maxLine()
	for len(data) > 0 {
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
		fn(line)
		if cap(r.buf) > keepCap {
			r.buf = nil
		} else {
			r.buf = r.buf[:0]
		}
	}
	return nil
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
// its "\n".
func (r *LineReader) Buffered() int { return len(r.buf) }

// Reset discards the partial line, if any.
func (r *LineReader) Reset() {
	if cap(r.buf) > keepCap {
		r.buf = nil
	} else {
		r.buf = r.buf[:0]
	}
}

func (r *LineReader) maxLine() int {
	if r.MaxLine > 0 {
		return r.MaxLine
	}
	return DefaultMaxLine
}
