package main

import "bytes"

// maxHeaderBytes caps the request line plus headers (and the blank line that
// ends them) of one request; beyond it the answer is 431.
const maxHeaderBytes = 8 << 10

// request is what the server needs of one parsed request head. method and
// target alias the parsed buffer.
type request struct {
	method        []byte
	target        []byte
	minor         int   // HTTP/1.minor: 0 or 1
	keepAlive     bool  // the connection stays open after the response
	contentLength int64 // body bytes that follow the head
}

// HTTP status codes the parser can decide.
const (
	statusOK                  = 200
	statusBadRequest          = 400
	statusHeaderTooLarge      = 431
	statusNotImplemented      = 501
	statusVersionNotSupported = 505
)

// parseRequest parses the head of the request at the start of b, looking at
// no more than max bytes of it. It does not allocate.
//
//   - n > 0, code == statusOK: a complete head of n bytes, described by r
//     (the body, r.contentLength bytes, follows it).
//   - n == 0, code == statusOK: the head is incomplete; call again with more.
//   - code != statusOK: the request is malformed (400), its head is longer
//     than max (431), it uses Transfer-Encoding (501, chunked bodies are not
//     supported) or an HTTP version other than 1.0 and 1.1 (505).
//
// The result depends only on the bytes up to the decision, so feeding the
// same stream in any chunking gives the same answers.
func parseRequest(b []byte, max int) (r request, n int, code int) {
	w := b
	if len(w) > max {
		w = w[:max]
	}
	pos := 0
	line := func() ([]byte, bool) {
		i := bytes.IndexByte(w[pos:], '\n')
		if i < 0 {
			return nil, false
		}
		l := w[pos : pos+i]
		pos += i + 1
		if len(l) > 0 && l[len(l)-1] == '\r' {
			l = l[:len(l)-1]
		}
		return l, true
	}
	more := func() (request, int, int) {
		if len(b) >= max {
			return request{}, 0, statusHeaderTooLarge
		}
		return request{}, 0, statusOK
	}

	// Request line, after any empty lines (RFC 9112 §2.2).
	var rl []byte
	for {
		l, ok := line()
		if !ok {
			return more()
		}
		if len(l) > 0 {
			rl = l
			break
		}
	}
	sp := bytes.IndexByte(rl, ' ')
	if sp <= 0 || !isToken(rl[:sp]) {
		return request{}, 0, statusBadRequest
	}
	r.method = rl[:sp]
	rest := rl[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return request{}, 0, statusBadRequest
	}
	r.target = rest[:sp]
	for _, c := range r.target {
		if c <= ' ' || c == 0x7f {
			return request{}, 0, statusBadRequest
		}
	}
	switch v := rest[sp+1:]; {
	case string(v) == "HTTP/1.1":
		r.minor = 1
	case string(v) == "HTTP/1.0":
		r.minor = 0
	case len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]):
		return request{}, 0, statusVersionNotSupported
	default:
		return request{}, 0, statusBadRequest
	}

	// Header fields up to the empty line.
	var (
		haveCL, haveTE, haveHost bool
		connClose, connKeep      bool
	)
	for {
		l, ok := line()
		if !ok {
			return more()
		}
		if len(l) == 0 {
			break
		}
		if l[0] == ' ' || l[0] == '\t' { // obs-fold
			return request{}, 0, statusBadRequest
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || !isToken(l[:colon]) {
			return request{}, 0, statusBadRequest
		}
		name, value := l[:colon], trimOWS(l[colon+1:])
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return request{}, 0, statusBadRequest
			}
		}
		switch {
		case equalFold(name, "content-length"):
			cl, ok := parseContentLength(value)
			if !ok || haveCL && cl != r.contentLength {
				return request{}, 0, statusBadRequest
			}
			haveCL, r.contentLength = true, cl
		case equalFold(name, "transfer-encoding"):
			haveTE = true
		case equalFold(name, "host"):
			if haveHost {
				return request{}, 0, statusBadRequest
			}
			haveHost = true
		case equalFold(name, "connection"):
			for len(value) > 0 {
				var tok []byte
				if i := bytes.IndexByte(value, ','); i >= 0 {
					tok, value = trimOWS(value[:i]), value[i+1:]
				} else {
					tok, value = trimOWS(value), nil
				}
				connClose = connClose || equalFold(tok, "close")
				connKeep = connKeep || equalFold(tok, "keep-alive")
			}
		}
	}
	switch {
	case haveTE && haveCL: // request smuggling shape (RFC 9112 §6.1)
		return request{}, 0, statusBadRequest
	case haveTE:
		return request{}, 0, statusNotImplemented
	case r.minor == 1 && !haveHost: // RFC 9112 §3.2
		return request{}, 0, statusBadRequest
	}
	r.keepAlive = !connClose && (r.minor == 1 || connKeep)
	return r, pos, statusOK
}

// parseContentLength parses 1*DIGIT, at most 18 digits so it fits an int64.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with the lower-case ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
