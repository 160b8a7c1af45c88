package main

import (
	"strconv"
	"time"
)

// entry is one key's value. Only strings exist, so Redis's WRONGTYPE error
// cannot arise.
type entry struct {
	key      string // the map key, shared with db.volatile
	val      []byte
	expireAt int64 // db.now() after which the key is gone; 0: never
}

// db is the keyspace. It belongs to the loop goroutine: every command runs
// there, so it needs no locks.
type db struct {
	m        map[string]*entry
	volatile map[string]*entry // the keys with an expiry, for the sweep
	// now returns monotonic nanoseconds (time.Since a fixed start). It is
	// read only when a key with an expiry is involved.
	now func() int64

	// lendCap > 0 says that the arguments of the command being executed
	// lie in a session's input buffer of that capacity, which the db may
	// keep: a value of at least bigValue bytes and at least a quarter of
	// the buffer (so a kept value holds on to at most 4 times its size) is
	// then stored in place instead of copied, and lent is set (the session
	// then leaves that buffer to the db).
	lendCap int
	lent    bool
	big     int // bigValue; smaller in tests
}

// bigValue is the smallest value SET and MSET may keep in the buffer it
// arrived in.
const bigValue = 1 << 20

// setValue stores v (valid only during the command) as e's value.
func (d *db) setValue(e *entry, v []byte) {
	if d.lendCap > 0 && len(v) >= d.big && 4*len(v) >= d.lendCap {
		e.val = v[:len(v):len(v)]
		d.lent = true
		return
	}
	setValue(e, v)
}

func newDB(now func() int64) *db {
	return &db{m: make(map[string]*entry), volatile: make(map[string]*entry), now: now, big: bigValue}
}

// monotonicClock returns now for a db: nanoseconds since it was made.
// The loop's cached time (Loop.Now) is not used: it is read before the loop
// waits for I/O, so it can be stale by the whole idle time when a command
// arrives.
func monotonicClock() func() int64 {
	start := time.Now()
	return func() int64 { return int64(time.Since(start)) + 1 } // never 0
}

// lookup returns the live entry of key, deleting it if it has expired.
func (d *db) lookup(key []byte) *entry {
	e := d.m[string(key)] // no allocation: the compiler converts in place
	if e != nil && e.expireAt != 0 && e.expireAt <= d.now() {
		d.remove(e)
		return nil
	}
	return e
}

func (d *db) remove(e *entry) {
	delete(d.m, e.key)
	if e.expireAt != 0 {
		delete(d.volatile, e.key)
	}
}

// create adds an entry for a key that lookup did not find.
func (d *db) create(key []byte) *entry {
	e := &entry{key: string(key)}
	d.m[e.key] = e
	return e
}

func (d *db) setExpiry(e *entry, at int64) {
	switch {
	case at != 0:
		d.volatile[e.key] = e
	case e.expireAt != 0:
		delete(d.volatile, e.key)
	}
	e.expireAt = at
}

// setValue stores v in e, reusing e's buffer unless it is much too big.
func setValue(e *entry, v []byte) {
	if cap(e.val) > 2*len(v)+64 {
		e.val = nil
	}
	e.val = append(e.val[:0], v...)
}

// sweep is the active expiry, Redis's activeExpireCycle in small: look at
// up to 20 keys with an expiry, drop the expired ones, and go on while more
// than a quarter of them were, for at most budget.
func (d *db) sweep(budget time.Duration) {
	start := time.Now()
	for len(d.volatile) > 0 {
		now := d.now()
		seen, expired := 0, 0
		for _, e := range d.volatile { // map order: a random sample
			if seen == 20 {
				break
			}
			seen++
			if e.expireAt <= now {
				d.remove(e)
				expired++
			}
		}
		if expired*4 <= seen || time.Since(start) > budget {
			return
		}
	}
}

func (d *db) flush() {
	clear(d.m)
	clear(d.volatile)
}

// Error replies.
const (
	errSyntax     = "ERR syntax error"
	errNotInteger = "ERR value is not an integer or out of range"
	errOverflow   = "ERR increment or decrement would overflow"
)

// exec runs one command and appends its reply to out. quit reports QUIT.
// args alias the request buffer and are not kept.
func (d *db) exec(args [][]byte, out []byte) (_ []byte, quit bool) {
	var nameBuf [16]byte
	name := args[0]
	if len(name) > len(nameBuf) {
		return appendUnknown(out, args), false
	}
	for i, c := range name {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		nameBuf[i] = c
	}
	argc := len(args)
	switch string(nameBuf[:len(name)]) {
	case "GET":
		if argc != 2 {
			return appendArity(out, "get"), false
		}
		if e := d.lookup(args[1]); e != nil {
			return appendBulk(out, e.val), false
		}
		return appendNil(out), false
	case "SET":
		if argc < 3 {
			return appendArity(out, "set"), false
		}
		return d.set(args, out), false
	case "PING":
		switch argc {
		case 1:
			return appendSimple(out, "PONG"), false
		case 2:
			return appendBulk(out, args[1]), false
		}
		return appendArity(out, "ping"), false
	case "ECHO":
		if argc != 2 {
			return appendArity(out, "echo"), false
		}
		return appendBulk(out, args[1]), false
	case "DEL", "UNLINK":
		if argc < 2 {
			return appendArity(out, lower(name)), false
		}
		n := 0
		for _, k := range args[1:] {
			if e := d.lookup(k); e != nil {
				d.remove(e)
				n++
			}
		}
		return appendInt(out, int64(n)), false
	case "EXISTS":
		if argc < 2 {
			return appendArity(out, "exists"), false
		}
		n := 0
		for _, k := range args[1:] {
			if d.lookup(k) != nil {
				n++
			}
		}
		return appendInt(out, int64(n)), false
	case "INCR", "DECR", "INCRBY", "DECRBY":
		return d.incr(args, string(nameBuf[:len(name)]), out), false
	case "MGET":
		if argc < 2 {
			return appendArity(out, "mget"), false
		}
		out = appendArray(out, argc-1)
		for _, k := range args[1:] {
			if e := d.lookup(k); e != nil {
				out = appendBulk(out, e.val)
			} else {
				out = appendNil(out)
			}
		}
		return out, false
	case "MSET":
		if argc < 3 || argc%2 == 0 {
			return appendArity(out, "mset"), false
		}
		for i := 1; i < argc; i += 2 {
			e := d.lookup(args[i])
			if e == nil {
				e = d.create(args[i])
			}
			d.setValue(e, args[i+1])
			d.setExpiry(e, 0)
		}
		return appendSimple(out, "OK"), false
	case "EXPIRE", "PEXPIRE":
		if argc != 3 {
			return appendArity(out, lower(name)), false
		}
		return d.expire(args, nameBuf[0] == 'P', out), false
	case "TTL", "PTTL":
		if argc != 2 {
			return appendArity(out, lower(name)), false
		}
		e := d.lookup(args[1])
		switch {
		case e == nil:
			return appendInt(out, -2), false
		case e.expireAt == 0:
			return appendInt(out, -1), false
		}
		ms := (e.expireAt - d.now() + 999_999) / 1e6 // ceiling, > 0 as lookup checked
		if nameBuf[0] == 'T' {
			return appendInt(out, (ms+500)/1000), false // Redis rounds TTL
		}
		return appendInt(out, ms), false
	case "PERSIST":
		if argc != 2 {
			return appendArity(out, "persist"), false
		}
		e := d.lookup(args[1])
		if e == nil || e.expireAt == 0 {
			return appendInt(out, 0), false
		}
		d.setExpiry(e, 0)
		return appendInt(out, 1), false
	case "DBSIZE":
		if argc != 1 {
			return appendArity(out, "dbsize"), false
		}
		return appendInt(out, int64(len(d.m))), false
	case "FLUSHALL", "FLUSHDB":
		if argc > 2 {
			return appendArity(out, lower(name)), false
		}
		d.flush()
		return appendSimple(out, "OK"), false
	case "SELECT":
		if argc != 2 {
			return appendArity(out, "select"), false
		}
		if string(args[1]) != "0" {
			return appendError(out, "ERR DB index is out of range"), false
		}
		return appendSimple(out, "OK"), false
	case "COMMAND":
		// Enough for redis-cli (COMMAND DOCS at start) and clients that
		// probe: no command metadata.
		if argc >= 2 && equalFold(args[1], "count") {
			return appendInt(out, 0), false
		}
		return appendArray(out, 0), false
	case "CONFIG":
		if argc < 2 {
			return appendArity(out, "config"), false
		}
		if !equalFold(args[1], "get") {
			return appendError(out, "ERR unknown subcommand '"+string(args[1])+"'. Try CONFIG GET."), false
		}
		if argc != 3 {
			return appendArity(out, "config|get"), false
		}
		// redis-benchmark asks for save and appendonly at start.
		switch {
		case equalFold(args[2], "save"):
			out = appendArray(out, 2)
			out = appendBulkString(out, "save")
			return appendBulkString(out, ""), false
		case equalFold(args[2], "appendonly"):
			out = appendArray(out, 2)
			out = appendBulkString(out, "appendonly")
			return appendBulkString(out, "no"), false
		}
		return appendArray(out, 0), false
	case "QUIT":
		return appendSimple(out, "OK"), true
	}
	return appendUnknown(out, args), false
}

// set is SET key value [NX|XX] [EX seconds|PX milliseconds|KEEPTTL] [GET].
func (d *db) set(args [][]byte, out []byte) []byte {
	var nx, xx, keepTTL, get bool
	var ttl int64 // nanoseconds; 0: none
	for i := 3; i < len(args); i++ {
		a := args[i]
		switch {
		case equalFold(a, "nx") && !xx:
			nx = true
		case equalFold(a, "xx") && !nx:
			xx = true
		case equalFold(a, "get"):
			get = true
		case equalFold(a, "keepttl") && ttl == 0:
			keepTTL = true
		case (equalFold(a, "ex") || equalFold(a, "px")) && ttl == 0 && !keepTTL && i+1 < len(args):
			v, ok := parseInt(args[i+1])
			if !ok {
				return appendError(out, errNotInteger)
			}
			unit := int64(time.Millisecond)
			if a[0]|0x20 == 'e' {
				unit = int64(time.Second)
			}
			if v <= 0 || v > (1<<62)/unit {
				return appendError(out, "ERR invalid expire time in 'set' command")
			}
			ttl = v * unit
			i++
		default:
			return appendError(out, errSyntax)
		}
	}
	e := d.lookup(args[1])
	if get {
		if e != nil {
			out = appendBulk(out, e.val)
		} else {
			out = appendNil(out)
		}
	}
	if nx && e != nil || xx && e == nil {
		if get {
			return out
		}
		return appendNil(out)
	}
	if e == nil {
		e = d.create(args[1])
	}
	d.setValue(e, args[2])
	switch {
	case ttl > 0:
		d.setExpiry(e, d.now()+ttl)
	case !keepTTL:
		d.setExpiry(e, 0)
	}
	if get {
		return out
	}
	return appendSimple(out, "OK")
}

// incr is INCR, DECR, INCRBY and DECRBY.
func (d *db) incr(args [][]byte, name string, out []byte) []byte {
	by := int64(1)
	switch name {
	case "INCR", "DECR":
		if len(args) != 2 {
			return appendArity(out, lower(args[0]))
		}
	default:
		if len(args) != 3 {
			return appendArity(out, lower(args[0]))
		}
		v, ok := parseInt(args[2])
		if !ok {
			return appendError(out, errNotInteger)
		}
		by = v
	}
	if name[0] == 'D' {
		if by == -1<<63 {
			return appendError(out, errOverflow)
		}
		by = -by
	}
	e := d.lookup(args[1])
	var cur int64
	if e != nil {
		v, ok := parseInt(e.val)
		if !ok {
			return appendError(out, errNotInteger)
		}
		cur = v
	}
	if by > 0 && cur > 1<<63-1-by || by < 0 && cur < -1<<63-by {
		return appendError(out, errOverflow)
	}
	cur += by
	if e == nil {
		e = d.create(args[1])
	}
	e.val = strconv.AppendInt(e.val[:0], cur, 10) // keeps the TTL, as Redis
	return appendInt(out, cur)
}

// expire is EXPIRE key seconds and PEXPIRE key milliseconds.
func (d *db) expire(args [][]byte, ms bool, out []byte) []byte {
	v, ok := parseInt(args[2])
	if !ok {
		return appendError(out, errNotInteger)
	}
	unit, name := int64(time.Second), "expire"
	if ms {
		unit, name = int64(time.Millisecond), "pexpire"
	}
	if v > (1<<62)/unit || v < -(1<<62)/unit {
		return appendError(out, "ERR invalid expire time in '"+name+"' command")
	}
	e := d.lookup(args[1])
	if e == nil {
		return appendInt(out, 0)
	}
	if v <= 0 {
		d.remove(e)
	} else {
		d.setExpiry(e, d.now()+v*unit)
	}
	return appendInt(out, 1)
}

func appendArity(out []byte, name string) []byte {
	out = append(out, "-ERR wrong number of arguments for '"...)
	out = append(out, name...)
	return append(out, "' command\r\n"...)
}

// appendUnknown is Redis's reply to an unknown command, quoting at most
// the first arguments.
func appendUnknown(out []byte, args [][]byte) []byte {
	out = append(out, "-ERR unknown command '"...)
	out = appendSanitized(out, args[0], 128)
	out = append(out, "', with args beginning with: "...)
	for i, a := range args[1:] {
		if i == 8 {
			break
		}
		out = append(out, '\'')
		out = appendSanitized(out, a, 128)
		out = append(out, "' "...)
	}
	return append(out, '\r', '\n')
}

// appendSanitized appends at most max bytes of b, with the bytes that would
// break an error line replaced by spaces.
func appendSanitized(out, b []byte, max int) []byte {
	if len(b) > max {
		b = b[:max]
	}
	for _, c := range b {
		if c == '\r' || c == '\n' {
			c = ' '
		}
		out = append(out, c)
	}
	return out
}

func lower(b []byte) string {
	s := []byte(string(b))
	for i, c := range s {
		if 'A' <= c && c <= 'Z' {
			s[i] = c + 'a' - 'A'
		}
	}
	return string(s)
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
