package main

import (
	"bytes"
	"strconv"
)

// Limits of the request parser.
const (
	// maxBulkHard is Redis's proto-max-bulk-len: -max-bulk cannot exceed it.
	maxBulkHard = 512 << 20
	// maxQueryHard is Redis's client-query-buffer-limit: -max-query cannot
	// exceed it.
	maxQueryHard = 1 << 30
	// maxLine bounds an inline command and the "*N" / "$L" lines, like
	// Redis's PROTO_INLINE_MAX_SIZE.
	maxLine = 64 << 10
)

// protoError is a violation of the protocol; the connection is answered
// "-ERR Protocol error: ..." and closed.
type protoError struct{ msg string }

func (e *protoError) Error() string { return "Protocol error: " + e.msg }

var (
	errMultibulkLen  = &protoError{"invalid multibulk length"}
	errBulkLen       = &protoError{"invalid bulk length"}
	errInlineTooBig  = &protoError{"too big inline request"}
	errMbulkCountBig = &protoError{"too big mbulk count string"}
	errBulkCountBig  = &protoError{"too big bulk count string"}
	errBulkCRLF      = &protoError{"expected CRLF after bulk string"}
	errQueryTooBig   = &protoError{"command larger than the query buffer limit"}
	errQuotes        = &protoError{"unbalanced quotes in request"}
)

type span struct{ off, end int }

// respParser splits a RESP2 request stream into commands: arrays of bulk
// strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") or inline commands (a line of
// space-separated words, "PING\r\n", with Redis's double quotes for
// arguments holding spaces).
//
// It is resumable: when a command is incomplete, next remembers how far it
// got, and the following call (on the same bytes plus more) goes on from
// there, so a long command arriving in many reads is scanned once.
type respParser struct {
	maxBulk  int // longest bulk string
	maxArgs  int // most arguments in one command
	maxQuery int // most bytes one command may take

	// Progress in the current command, relative to its first byte still
	// in the caller's buffer (see rebase).
	pos   int // bytes parsed
	nargs int // announced by "*N"; 0 before the header is parsed
	bulk  int // length announced by the current "$L"; -1 before it
	spans []span
	args  [][]byte
	// kept are the arguments completed before a rebase, in the earlier
	// buffer, and base the bytes of the command that buffer held.
	kept [][]byte
	base int
}

func newRESPParser(maxBulk, maxArgs, maxQuery int) respParser {
	return respParser{maxBulk: maxBulk, maxArgs: maxArgs, maxQuery: maxQuery, bulk: -1}
}

// next parses the command at the start of buf. buf must start where the
// previous call's command started (same bytes, maybe more) when that call
// asked for more input, and at the next command otherwise.
//
//   - n > 0: a command of n bytes; args (maybe empty, for an empty inline
//     line or "*0") alias buf and the parser, valid until the next call.
//   - n == 0, err == nil: the command is incomplete.
//   - err != nil: a *protoError; the stream cannot be resynchronised.
//
// The outcome depends only on the bytes up to the decision, whatever the
// chunking. It does not allocate once its argument slices have grown.
func (p *respParser) next(buf []byte) (args [][]byte, n int, err error) {
	if len(buf) == 0 {
		return nil, 0, nil
	}
	if p.nargs == 0 && buf[0] != '*' { // (after a rebase buf starts mid-array)
		return p.inline(buf)
	}
	if p.nargs == 0 {
		end, err := findCR(buf, 1, errMbulkCountBig)
		if end < 0 || err != nil {
			return nil, 0, err
		}
		v, ok := parseInt(buf[1:end])
		if !ok || v > int64(p.maxArgs) || buf[end+1] != '\n' {
			return nil, 0, errMultibulkLen
		}
		if v <= 0 { // "*0", "*-1": ignored, as by Redis
			return nil, end + 2, nil
		}
		p.nargs, p.pos = int(v), end+2
		p.spans = p.spans[:0]
	}
	for len(p.kept)+len(p.spans) < p.nargs {
		if p.bulk < 0 {
			if p.pos >= len(buf) {
				return nil, 0, nil
			}
			if buf[p.pos] != '$' {
				err := &protoError{"expected '$', got '" + string(buf[p.pos:p.pos+1]) + "'"}
				p.reset()
				return nil, 0, err
			}
			end, err := findCR(buf, p.pos+1, errBulkCountBig)
			if err != nil {
				p.reset()
				return nil, 0, err
			}
			if end < 0 {
				return nil, 0, nil
			}
			v, ok := parseInt(buf[p.pos+1 : end])
			if !ok || v < 0 || v > int64(p.maxBulk) || buf[end+1] != '\n' {
				p.reset()
				return nil, 0, errBulkLen
			}
			if int64(p.base+end+2)+v+2 > int64(p.maxQuery) {
				p.reset()
				return nil, 0, errQueryTooBig
			}
			p.pos, p.bulk = end+2, int(v)
		}
		end := p.pos + p.bulk
		if len(buf) < end+2 {
			return nil, 0, nil
		}
		if buf[end] != '\r' || buf[end+1] != '\n' {
			p.reset()
			return nil, 0, errBulkCRLF
		}
		p.spans = append(p.spans, span{p.pos, end})
		p.pos, p.bulk = end+2, -1
	}
	n = p.pos
	args = p.build(buf)
	p.reset()
	return args, n, nil
}

// need reports how many bytes the command in progress is known to take,
// from its first byte to the end of the bulk string being read (0 while
// no bulk length is pending).
func (p *respParser) need() int {
	if p.nargs > 0 && p.bulk >= 0 {
		return p.pos + p.bulk + 2
	}
	return 0
}

// rebase lets the caller move the rest of a command to another buffer: it
// keeps the arguments completed so far (slices of buf, which the caller
// must leave untouched until the command is done), and the next call's
// buffer starts at what was buf[p.pos:]. Call it only between arguments
// (p.nargs > 0, p.bulk < 0).
func (p *respParser) rebase(buf []byte) {
	for _, s := range p.spans {
		p.kept = append(p.kept, buf[s.off:s.end:s.end])
	}
	p.spans = p.spans[:0]
	p.base += p.pos
	p.pos = 0
}

func (p *respParser) reset() {
	clear(p.kept) // do not hold on to earlier buffers
	p.kept, p.base = p.kept[:0], 0
	p.pos, p.nargs, p.bulk = 0, 0, -1
	if cap(p.spans) > 1024 { // do not hold on to a huge command's slices
		p.spans, p.args = nil, nil
	}
}

func (p *respParser) build(buf []byte) [][]byte {
	p.args = append(p.args[:0], p.kept...)
	for _, s := range p.spans {
		p.args = append(p.args, buf[s.off:s.end:s.end])
	}
	return p.args
}

// inline parses a command sent as a line of words, as telnet users type.
func (p *respParser) inline(buf []byte) ([][]byte, int, error) {
	w := buf[p.pos:min(len(buf), maxLine)]
	i := bytes.IndexByte(w, '\n')
	if i < 0 {
		if len(buf) >= maxLine {
			p.reset()
			return nil, 0, errInlineTooBig
		}
		p.pos = len(buf)
		return nil, 0, nil
	}
	n := p.pos + i + 1
	line := buf[:n-1]
	p.reset()
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	p.spans = p.spans[:0]
	// Words separated by blanks; "..." may hold blanks and \" \\ \n \r \t
	// \xHH escapes, decoded in place (the result is never longer, so the
	// write index never passes the read index).
	r, wr := 0, 0
	for {
		for r < len(line) && isBlank(line[r]) {
			r++
		}
		if r == len(line) {
			break
		}
		start := wr
		if line[r] == '"' {
			r++
			closed := false
			for r < len(line) {
				c := line[r]
				r++
				if c == '"' {
					closed = true
					break
				}
				if c == '\\' && r < len(line) {
					e := line[r]
					r++
					switch e {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'x':
						if r+1 < len(line) && isHex(line[r]) && isHex(line[r+1]) {
							c = unhex(line[r])<<4 | unhex(line[r+1])
							r += 2
						} else {
							c = 'x'
						}
					default:
						c = e
					}
				}
				line[wr] = c
				wr++
			}
			if !closed || r < len(line) && !isBlank(line[r]) {
				return nil, 0, errQuotes
			}
		} else {
			for r < len(line) && !isBlank(line[r]) {
				line[wr] = line[r]
				wr, r = wr+1, r+1
			}
		}
		p.spans = append(p.spans, span{start, wr})
		if len(p.spans) > p.maxArgs {
			return nil, 0, errMultibulkLen
		}
	}
	return p.build(buf), n, nil
}

// findCR finds the '\r' of a "\r\n" ending a line that starts at from,
// looking at no more than maxLine bytes. It returns -1 when more input is
// needed, tooBig when the line is too long.
func findCR(buf []byte, from int, tooBig error) (int, error) {
	w := buf[from:min(len(buf), from+maxLine)]
	i := bytes.IndexByte(w, '\r')
	switch {
	case i < 0 && len(buf)-from >= maxLine:
		return -1, tooBig
	case i < 0 || from+i+1 >= len(buf):
		return -1, nil
	}
	return from + i, nil
}

// parseInt parses a decimal int64 the way Redis's string2ll does: an
// optional '-', no '+', no leading zeros, no blanks.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if u > (1<<64-1-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u), true // -(1<<63) wraps to itself, as wanted
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// Reply encoders: each appends one RESP2 value to out.

func appendSimple(out []byte, s string) []byte {
	out = append(out, '+')
	out = append(out, s...)
	return append(out, '\r', '\n')
}

func appendError(out []byte, msg string) []byte {
	out = append(out, '-')
	out = append(out, msg...)
	return append(out, '\r', '\n')
}

func appendInt(out []byte, v int64) []byte {
	out = append(out, ':')
	out = strconv.AppendInt(out, v, 10)
	return append(out, '\r', '\n')
}

func appendBulk(out, b []byte) []byte {
	out = append(out, '$')
	out = strconv.AppendInt(out, int64(len(b)), 10)
	out = append(out, '\r', '\n')
	out = append(out, b...)
	return append(out, '\r', '\n')
}

func appendBulkString(out []byte, s string) []byte {
	out = append(out, '$')
	out = strconv.AppendInt(out, int64(len(s)), 10)
	out = append(out, '\r', '\n')
	out = append(out, s...)
	return append(out, '\r', '\n')
}

func appendNil(out []byte) []byte { return append(out, "$-1\r\n"...) }

func appendArray(out []byte, n int) []byte {
	out = append(out, '*')
	out = strconv.AppendInt(out, int64(n), 10)
	return append(out, '\r', '\n')
}
