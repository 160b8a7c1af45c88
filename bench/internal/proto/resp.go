package proto

import (
	"bytes"
	"strconv"
	"sync"
)

// DB is the keyspace. Lock is nil for single-loop servers (gnet) and a
// mutex for goroutine-per-connection ones.
type DB struct {
	Lock sync.Locker
	m    map[string][]byte
}

// NewDB returns an empty keyspace guarded by lock (nil: none).
func NewDB(lock sync.Locker) *DB { return &DB{Lock: lock, m: make(map[string][]byte)} }

// RESP is the state of one RESP connection.
type RESP struct {
	DB   *DB
	tail []byte
	args [][]byte
}

// Feed consumes data (valid only during the call) and appends the replies
// to every complete command in it to out. closing is set by QUIT and
// protocol errors.
func (s *RESP) Feed(data, out []byte) (_ []byte, closing bool) {
	buf := data
	if len(s.tail) > 0 {
		s.tail = append(s.tail, data...)
		buf = s.tail
	}
	for len(buf) > 0 {
		n, ok := s.parse(buf)
		if !ok {
			s.tail = s.tail[:0]
			return append(out, "-ERR Protocol error\r\n"...), true
		}
		if n == 0 {
			break
		}
		buf = buf[n:]
		var quit bool
		out, quit = s.exec(out)
		if quit {
			s.tail = s.tail[:0]
			return out, true
		}
	}
	s.tail = append(s.tail[:0], buf...)
	return out, false
}

// parse reads one command into s.args: bytes used (0: incomplete), ok.
func (s *RESP) parse(b []byte) (int, bool) {
	s.args = s.args[:0]
	if b[0] != '*' { // inline
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return 0, true
		}
		line := bytes.TrimRight(b[:i], "\r")
		for _, f := range bytes.Fields(line) {
			s.args = append(s.args, f)
		}
		return i + 1, true
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return 0, true
	}
	n, err := strconv.Atoi(string(bytes.TrimRight(b[1:i], "\r")))
	if err != nil || n < 0 || n > 1<<20 {
		return 0, false
	}
	p := i + 1
	for range n {
		if p >= len(b) {
			return 0, true
		}
		if b[p] != '$' {
			return 0, false
		}
		j := bytes.IndexByte(b[p:], '\n')
		if j < 0 {
			return 0, true
		}
		l, err := strconv.Atoi(string(bytes.TrimRight(b[p+1:p+j], "\r")))
		if err != nil || l < 0 || l > 512<<20 {
			return 0, false
		}
		p += j + 1
		if p+l+2 > len(b) {
			return 0, true
		}
		s.args = append(s.args, b[p:p+l])
		p += l + 2
	}
	return p, true
}

func bulk(out, v []byte) []byte {
	out = append(out, '$')
	out = strconv.AppendInt(out, int64(len(v)), 10)
	out = append(out, "\r\n"...)
	out = append(out, v...)
	return append(out, "\r\n"...)
}

func (s *RESP) exec(out []byte) ([]byte, bool) {
	a := s.args
	if len(a) == 0 {
		return out, false
	}
	cmd := a[0]
	switch {
	case bytes.EqualFold(cmd, []byte("PING")):
		if len(a) > 1 {
			return bulk(out, a[1]), false
		}
		return append(out, "+PONG\r\n"...), false
	case bytes.EqualFold(cmd, []byte("SET")) && len(a) >= 3:
		db := s.DB
		if db.Lock != nil {
			db.Lock.Lock()
		}
		if v, ok := db.m[string(a[1])]; ok && cap(v) >= len(a[2]) {
			db.m[string(a[1])] = append(v[:0], a[2]...)
		} else {
			db.m[string(a[1])] = append([]byte(nil), a[2]...)
		}
		if db.Lock != nil {
			db.Lock.Unlock()
		}
		return append(out, "+OK\r\n"...), false
	case bytes.EqualFold(cmd, []byte("GET")) && len(a) == 2:
		db := s.DB
		if db.Lock != nil {
			db.Lock.Lock()
		}
		v, ok := db.m[string(a[1])]
		if ok {
			out = bulk(out, v)
		} else {
			out = append(out, "$-1\r\n"...)
		}
		if db.Lock != nil {
			db.Lock.Unlock()
		}
		return out, false
	case bytes.EqualFold(cmd, []byte("ECHO")) && len(a) == 2:
		return bulk(out, a[1]), false
	case bytes.EqualFold(cmd, []byte("CONFIG")):
		if len(a) == 3 && bytes.EqualFold(a[1], []byte("GET")) &&
			(bytes.EqualFold(a[2], []byte("save")) || bytes.EqualFold(a[2], []byte("appendonly"))) {
			out = append(out, "*2\r\n"...)
			out = bulk(out, a[2])
			if bytes.EqualFold(a[2], []byte("save")) {
				return bulk(out, nil), false
			}
			return bulk(out, []byte("no")), false
		}
		return append(out, "*0\r\n"...), false
	case bytes.EqualFold(cmd, []byte("COMMAND")):
		return append(out, "*0\r\n"...), false
	case bytes.EqualFold(cmd, []byte("QUIT")):
		return append(out, "+OK\r\n"...), true
	}
	out = append(out, "-ERR unknown command '"...)
	out = append(out, cmd...)
	return append(out, "'\r\n"...), false
}
