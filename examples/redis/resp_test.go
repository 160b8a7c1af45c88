package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRESPParser(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		args    []string // nil with n > 0: an ignored empty command
		n       int      // -1: len(in); 0: incomplete
		err     string
		maxBulk int
	}{
		{name: "array", in: "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", args: []string{"GET", "k"}, n: -1},
		{name: "first of two", in: "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", args: []string{"PING"}, n: 14},
		{name: "empty bulk", in: "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", args: []string{"ECHO", ""}, n: -1},
		{name: "binary bulk", in: "*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\x00\xff\r\n", args: []string{"ECHO", "\r\n\x00\xff"}, n: -1},
		{name: "*0 ignored", in: "*0\r\n", n: -1},
		{name: "*-1 ignored", in: "*-1\r\n", n: -1},
		{name: "inline", in: "PING\r\n", args: []string{"PING"}, n: -1},
		{name: "inline LF", in: "set a  b\n", args: []string{"set", "a", "b"}, n: -1},
		{name: "inline blanks", in: " \tGET\t k \r\n", args: []string{"GET", "k"}, n: -1},
		{name: "inline quotes", in: `SET k "a b\"\\\x41\n"` + "\r\n", args: []string{"SET", "k", "a b\"\\A\n"}, n: -1},
		{name: "inline empty quotes", in: `ECHO ""` + "\n", args: []string{"ECHO", ""}, n: -1},
		{name: "inline empty line", in: "\r\n", n: -1},

		{name: "nothing", in: ""},
		{name: "partial header", in: "*2\r"},
		{name: "partial bulk header", in: "*2\r\n$3\r\nGET\r\n$1"},
		{name: "partial bulk", in: "*2\r\n$3\r\nGET\r\n$5\r\nab"},
		{name: "missing CRLF", in: "*2\r\n$3\r\nGET\r\n$1\r\nk\r"},
		{name: "partial inline", in: "PIN"},

		{name: "bad count", in: "*x\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "leading zero count", in: "*01\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "too many args", in: "*2000000\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "not a bulk", in: "*1\r\n+PING\r\n", err: "Protocol error: expected '$', got '+'"},
		{name: "bad bulk length", in: "*1\r\n$-1\r\n", err: "Protocol error: invalid bulk length"},
		{name: "bulk too long", in: "*1\r\n$11\r\n", maxBulk: 10, err: "Protocol error: invalid bulk length"},
		{name: "bulk over 512MiB", in: "*1\r\n$536870913\r\n", err: "Protocol error: invalid bulk length"},
		{name: "bad bulk end", in: "*1\r\n$4\r\nPINGxx", err: "Protocol error: expected CRLF after bulk string"},
		{name: "CR without LF", in: "*1\r.", err: "Protocol error: invalid multibulk length"},
		{name: "huge count line", in: "*" + strings.Repeat("1", maxLine), err: "Protocol error: too big mbulk count string"},
		{name: "huge bulk line", in: "*1\r\n$" + strings.Repeat("1", maxLine), err: "Protocol error: too big bulk count string"},
		{name: "huge inline", in: strings.Repeat("a", maxLine), err: "Protocol error: too big inline request"},
		{name: "unbalanced quotes", in: "ECHO \"a\r\n", err: "Protocol error: unbalanced quotes in request"},
		{name: "text after quotes", in: "ECHO \"a\"b\r\n", err: "Protocol error: unbalanced quotes in request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			maxBulk := tt.maxBulk
			if maxBulk == 0 {
				maxBulk = maxBulkHard
			}
			p := newRESPParser(maxBulk, 1<<20, 1<<30)
			args, n, err := p.next([]byte(tt.in))
			if tt.err != "" {
				require.Error(t, err)
				assert.Equal(t, tt.err, err.Error())
				return
			}
			require.NoError(t, err)
			want := tt.n
			if want < 0 {
				want = len(tt.in)
			}
			assert.Equal(t, want, n)
			var got []string
			for _, a := range args {
				got = append(got, string(a))
			}
			assert.Equal(t, tt.args, got)
		})
	}
}

// TestRESPParserResumes feeds a command byte by byte: each call goes on
// from where the previous one stopped.
func TestRESPParserResumes(t *testing.T) {
	in := []byte("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\n0123456789\r\nrest")
	p := newRESPParser(100, 10, 1000)
	for i := range len(in) - 4 {
		args, n, err := p.next(in[:i])
		require.NoError(t, err)
		require.Zero(t, n, "prefix %d", i)
		require.Nil(t, args)
	}
	args, n, err := p.next(in)
	require.NoError(t, err)
	assert.Equal(t, len(in)-4, n)
	assert.Equal(t, [][]byte{[]byte("SET"), []byte("key"), []byte("0123456789")}, args)
}

func TestParseInt(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1": 1, "-1": -1, "9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63,
	} {
		v, ok := parseInt([]byte(in))
		assert.True(t, ok, in)
		assert.Equal(t, want, v, in)
	}
	for _, in := range []string{"", "-", "+1", "01", "-0", " 1", "1 ", "1a", "9223372036854775808", "-9223372036854775809", "99999999999999999999"} {
		_, ok := parseInt([]byte(in))
		assert.False(t, ok, in)
	}
}

// fakeClock is a db clock the test moves by hand.
type fakeClock struct{ ns int64 }

func (c *fakeClock) now() int64 { return c.ns }

func newTestSession() (*session, *fakeClock) {
	clk := &fakeClock{ns: 1}
	return &session{db: newDB(clk.now), p: newRESPParser(1<<20, 1024, 8<<20)}, clk
}

// cmd encodes a command as a RESP array.
func cmd(args ...string) string {
	var b []byte
	b = appendArray(b, len(args))
	for _, a := range args {
		b = appendBulkString(b, a)
	}
	return string(b)
}

func TestCommands(t *testing.T) {
	type step struct {
		in, want string
		advance  time.Duration // clock moves before the step
		close    bool
	}
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"ping", []step{
			{in: cmd("PING"), want: "+PONG\r\n"},
			{in: cmd("ping", "hi"), want: "$2\r\nhi\r\n"},
			{in: cmd("PING", "a", "b"), want: "-ERR wrong number of arguments for 'ping' command\r\n"},
			{in: "PING\r\nping x\r\n", want: "+PONG\r\n$1\r\nx\r\n"},
		}},
		{"echo", []step{
			{in: cmd("ECHO", "a\r\nb"), want: "$4\r\na\r\nb\r\n"},
			{in: cmd("ECHO"), want: "-ERR wrong number of arguments for 'echo' command\r\n"},
		}},
		{"set get del exists", []step{
			{in: cmd("GET", "k"), want: "$-1\r\n"},
			{in: cmd("SET", "k", "v"), want: "+OK\r\n"},
			{in: cmd("GET", "k"), want: "$1\r\nv\r\n"},
			{in: cmd("SET", "k", "longer value"), want: "+OK\r\n"},
			{in: cmd("GET", "k"), want: "$12\r\nlonger value\r\n"},
			{in: cmd("SET", "k2", "x"), want: "+OK\r\n"},
			{in: cmd("EXISTS", "k", "k2", "nope", "k"), want: ":3\r\n"},
			{in: cmd("DBSIZE"), want: ":2\r\n"},
			{in: cmd("DEL", "k", "nope", "k"), want: ":1\r\n"},
			{in: cmd("GET", "k"), want: "$-1\r\n"},
			{in: cmd("GET"), want: "-ERR wrong number of arguments for 'get' command\r\n"},
			{in: cmd("SET", "k"), want: "-ERR wrong number of arguments for 'set' command\r\n"},
			{in: cmd("DEL"), want: "-ERR wrong number of arguments for 'del' command\r\n"},
			{in: cmd("FLUSHALL"), want: "+OK\r\n"},
			{in: cmd("DBSIZE"), want: ":0\r\n"},
		}},
		{"set options", []step{
			{in: cmd("SET", "k", "1", "XX"), want: "$-1\r\n"},
			{in: cmd("SET", "k", "1", "NX"), want: "+OK\r\n"},
			{in: cmd("SET", "k", "2", "NX"), want: "$-1\r\n"},
			{in: cmd("SET", "k", "3", "xx", "GET"), want: "$1\r\n1\r\n"},
			{in: cmd("SET", "k", "3", "NX", "XX"), want: "-ERR syntax error\r\n"},
			{in: cmd("SET", "k", "3", "EX"), want: "-ERR syntax error\r\n"},
			{in: cmd("SET", "k", "3", "EX", "x"), want: "-ERR value is not an integer or out of range\r\n"},
			{in: cmd("SET", "k", "3", "EX", "0"), want: "-ERR invalid expire time in 'set' command\r\n"},
			{in: cmd("SET", "k", "3", "EX", "1", "PX", "5"), want: "-ERR syntax error\r\n"},
			{in: cmd("SET", "k", "3", "foo"), want: "-ERR syntax error\r\n"},
			{in: cmd("GET", "k"), want: "$1\r\n3\r\n"},
		}},
		{"expiry", []step{
			{in: cmd("SET", "k", "v", "PX", "50"), want: "+OK\r\n"},
			{in: cmd("PTTL", "k"), want: ":50\r\n"},
			{in: cmd("TTL", "k"), want: ":0\r\n"},
			{in: cmd("GET", "k"), want: "$1\r\nv\r\n", advance: 49 * time.Millisecond},
			{in: cmd("GET", "k"), want: "$-1\r\n", advance: time.Millisecond},
			{in: cmd("TTL", "k"), want: ":-2\r\n"},
			{in: cmd("SET", "k", "v", "EX", "10"), want: "+OK\r\n"},
			{in: cmd("TTL", "k"), want: ":10\r\n"},
			{in: cmd("SET", "k", "w", "KEEPTTL"), want: "+OK\r\n"},
			{in: cmd("TTL", "k"), want: ":10\r\n"},
			{in: cmd("SET", "k", "w"), want: "+OK\r\n"},
			{in: cmd("TTL", "k"), want: ":-1\r\n"},
			{in: cmd("EXPIRE", "k", "5"), want: ":1\r\n"},
			{in: cmd("TTL", "k"), want: ":3\r\n", advance: 2500 * time.Millisecond},
			{in: cmd("PERSIST", "k"), want: ":1\r\n"},
			{in: cmd("TTL", "k"), want: ":-1\r\n"},
			{in: cmd("EXPIRE", "nope", "5"), want: ":0\r\n"},
			{in: cmd("EXPIRE", "k", "x"), want: "-ERR value is not an integer or out of range\r\n"},
			{in: cmd("EXPIRE", "k", "0"), want: ":1\r\n"},
			{in: cmd("EXISTS", "k"), want: ":0\r\n"},
			{in: cmd("TTL"), want: "-ERR wrong number of arguments for 'ttl' command\r\n"},
		}},
		{"incr", []step{
			{in: cmd("INCR", "n"), want: ":1\r\n"},
			{in: cmd("INCR", "n"), want: ":2\r\n"},
			{in: cmd("INCRBY", "n", "-5"), want: ":-3\r\n"},
			{in: cmd("DECR", "n"), want: ":-4\r\n"},
			{in: cmd("GET", "n"), want: "$2\r\n-4\r\n"},
			{in: cmd("SET", "s", "abc"), want: "+OK\r\n"},
			{in: cmd("INCR", "s"), want: "-ERR value is not an integer or out of range\r\n"},
			{in: cmd("SET", "m", "9223372036854775807"), want: "+OK\r\n"},
			{in: cmd("INCR", "m"), want: "-ERR increment or decrement would overflow\r\n"},
			{in: cmd("INCR"), want: "-ERR wrong number of arguments for 'incr' command\r\n"},
		}},
		{"mget mset", []step{
			{in: cmd("MSET", "a", "1", "b", "2"), want: "+OK\r\n"},
			{in: cmd("MGET", "a", "x", "b"), want: "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"},
			{in: cmd("MSET", "a", "1", "b"), want: "-ERR wrong number of arguments for 'mset' command\r\n"},
		}},
		{"admin", []step{
			{in: cmd("COMMAND", "DOCS"), want: "*0\r\n"},
			{in: cmd("COMMAND"), want: "*0\r\n"},
			{in: cmd("CONFIG", "GET", "save"), want: "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"},
			{in: cmd("CONFIG", "GET", "appendonly"), want: "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"},
			{in: cmd("CONFIG", "GET", "maxmemory"), want: "*0\r\n"},
			{in: cmd("SELECT", "0"), want: "+OK\r\n"},
			{in: cmd("SELECT", "1"), want: "-ERR DB index is out of range\r\n"},
		}},
		{"unknown", []step{
			{in: cmd("NOPE", "a", "b"), want: "-ERR unknown command 'NOPE', with args beginning with: 'a' 'b' \r\n"},
			{in: "averyveryverylongcommandname\r\n", want: "-ERR unknown command 'averyveryverylongcommandname', with args beginning with: \r\n"},
		}},
		{"quit", []step{
			{in: cmd("QUIT") + cmd("PING"), want: "+OK\r\n", close: true},
			{in: cmd("PING"), want: "", close: true},
		}},
		{"protocol error after good", []step{
			{in: cmd("PING") + "*1\r\n$x\r\n" + cmd("PING"), want: "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n", close: true},
		}},
		{"pipelined split", []step{
			{in: cmd("SET", "k", "v") + cmd("GET", "k")[:7], want: "+OK\r\n"},
			{in: cmd("GET", "k")[7:] + "PI", want: "$1\r\nv\r\n"},
			{in: "NG\r\n", want: "+PONG\r\n"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, clk := newTestSession()
			for i, st := range tt.steps {
				clk.ns += int64(st.advance)
				out, closing := s.feed([]byte(st.in), nil)
				assert.Equal(t, st.want, string(out), "step %d: %q", i, st.in)
				assert.Equal(t, st.close, closing, "step %d: %q", i, st.in)
			}
		})
	}
}

func TestSweep(t *testing.T) {
	s, clk := newTestSession()
	for i := range 1000 {
		px := "10"
		if i%2 == 0 {
			px = "100000"
		}
		out, _ := s.feed([]byte(cmd("SET", "k"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune(i)), "v", "PX", px)), nil)
		require.Equal(t, "+OK\r\n", string(out))
	}
	n := len(s.db.m)
	clk.ns += int64(time.Second)
	for range 100 {
		s.db.sweep(time.Second)
	}
	assert.Less(t, len(s.db.m), n, "the sweep drops expired keys without their being touched")
	assert.GreaterOrEqual(t, len(s.db.m), 500, "live keys stay")
	assert.Equal(t, len(s.db.m), len(s.db.volatile))
}

// TestSessionNoAlloc checks the hot path of redis-benchmark's commands,
// pipelined, one of them split across reads.
func TestSessionNoAlloc(t *testing.T) {
	s, _ := newTestSession()
	batch := []byte(strings.Repeat(cmd("SET", "key:__rand_int__", "xxx")+cmd("GET", "key:__rand_int__")+cmd("PING")+"PING\r\n", 4))
	batch = append(batch, cmd("GET", "key:__rand_int__")[:10]...)
	rest := []byte(cmd("GET", "key:__rand_int__")[10:])
	out := make([]byte, 0, 4096)
	out, _ = s.feed(batch, out[:0])
	out, _ = s.feed(rest, out[:0])
	allocs := testing.AllocsPerRun(100, func() {
		out, _ = s.feed(batch, out[:0])
		out, _ = s.feed(rest, out[:0])
	})
	assert.Zero(t, allocs)
}

func BenchmarkSession(b *testing.B) {
	s, _ := newTestSession()
	batch := []byte(strings.Repeat(cmd("SET", "key:__rand_int__", "xxx")+cmd("GET", "key:__rand_int__"), 8))
	out := make([]byte, 0, 4096)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		out, _ = s.feed(batch, out[:0])
	}
}

// FuzzRESP feeds a stream to a session at once and in the chunks cuts
// describes: nothing panics, the kept bytes stay bounded, and the replies
// and the close decision do not depend on the chunking.
func FuzzRESP(f *testing.F) {
	for _, seed := range []string{
		cmd("PING"),
		cmd("SET", "k", "v", "PX", "50") + cmd("GET", "k") + cmd("INCR", "k") + cmd("TTL", "k"),
		cmd("MSET", "a", "1", "b", "2") + cmd("MGET", "a", "b", "c") + cmd("DEL", "a") + cmd("EXISTS", "a", "b"),
		"PING\r\nECHO \"a b\\x41\"\r\n" + cmd("QUIT") + cmd("PING"),
		"*2\r\n$4\r\nECHO\r\n$100000\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$x\r\n",
		"*0\r\n*-1\r\n\r\n" + cmd("DBSIZE") + cmd("FLUSHALL"),
	} {
		f.Add([]byte(seed), []byte{1, 5, 2, 255})
	}
	const (
		maxBulk  = 1 << 10
		maxQuery = 4 << 10
	)
	budget := 2 * maxQuery
	newSession := func() *session {
		clk := &fakeClock{ns: 1}
		d := newDB(clk.now)
		d.big = 8 // keep values and move the rest of a command as Redis sizes do
		return &session{db: d, p: newRESPParser(maxBulk, 64, maxQuery), budget: &budget}
	}
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		whole := newSession()
		want, wantClose := whole.feed(bytes.Clone(stream), nil)

		chunked := newSession()
		var got []byte
		var gotClose bool
		rest := stream
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, 1+int(cuts[i%len(cuts)]))
			}
			chunk := bytes.Clone(rest[:n])
			got, gotClose = chunked.feed(chunk, got)
			clear(chunk) // the session must have copied what it keeps
			rest = rest[n:]
			// A command in progress is at most maxQuery bytes plus the
			// lines announcing it.
			if chunked.in.len() > maxQuery+2*maxLine {
				t.Fatalf("kept %d bytes", chunked.in.len())
			}
		}
		if !bytes.Equal(want, got) || wantClose != gotClose {
			t.Fatalf("chunking changed the answer:\nwhole   %q (close %v)\nchunked %q (close %v)", want, wantClose, got, gotClose)
		}

		// With an output limit (as when the client does not read its
		// replies), answering in steps gives the same answer.
		limited := newSession()
		limited.limit = 1 + len(cuts)*20
		got, gotClose = limited.feed(bytes.Clone(stream), nil)
		for i := 0; limited.backlog; i++ {
			if i > len(stream) {
				t.Fatal("the backlog does not shrink")
			}
			got, gotClose = limited.feed(nil, got)
		}
		if !bytes.Equal(want, got) || wantClose != gotClose {
			t.Fatalf("answering in steps changed the answer:\nwhole   %q (close %v)\nsteps   %q (close %v)", want, wantClose, got, gotClose)
		}
	})
}

// bigSet returns a SET of a size-byte value cut in 16 KiB reads, as the
// loop delivers it.
func bigSet(size int) [][]byte {
	stream := []byte("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$" + strconv.Itoa(size) + "\r\n")
	stream = append(stream, bytes.Repeat([]byte("x"), size)...)
	stream = append(stream, "\r\n"...)
	stream = append(stream, cmd("PING")...)
	var reads [][]byte
	for len(stream) > 0 {
		n := min(len(stream), 16<<10)
		reads = append(reads, stream[:n])
		stream = stream[n:]
	}
	return reads
}

// TestLargeCommandLinear is the regression test for the quadratic copying
// of a large command (each 16 KiB read re-copied the whole pending
// command: a 63 MiB SET cost 11 s of CPU). It counts the bytes the session
// copies, which does not depend on timing: about once the command when the
// preallocation budget allows, at most three times without it.
func TestLargeCommandLinear(t *testing.T) {
	const size = 8 << 20
	for _, tc := range []struct {
		name   string
		budget int
		most   int64
	}{
		{"prealloc", 64 << 20, size + 64<<10},
		{"no-budget", 1 << 20, 3 * size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{ns: 1}
			budget := tc.budget
			s := &session{db: newDB(clk.now), p: newRESPParser(64<<20, 1024, 128<<20), budget: &budget}
			var out []byte
			for _, r := range bigSet(size) {
				out, _ = s.feed(r, out)
			}
			require.Equal(t, "+OK\r\n+PONG\r\n", string(out))
			assert.Less(t, s.in.copied, tc.most, "bytes copied into the input buffer for a %d-byte command", size)
			assert.Zero(t, s.in.len(), "nothing kept once the command is done")
			assert.Equal(t, tc.budget, budget, "the budget is given back")
			out, _ = s.feed([]byte(cmd("GET", "big")), out[:0])
			require.Len(t, out, len("$8388608\r\n")+size+2)
			assert.Equal(t, bytes.Repeat([]byte("x"), size), out[len("$8388608\r\n"):len(out)-2])
			// The stored value is not touched by what follows on the connection.
			for _, r := range bigSet(size / 2) {
				out, _ = s.feed(bytes.ReplaceAll(r, []byte("x"), []byte("y")), out[:0])
			}
			out, _ = s.feed([]byte(cmd("GET", "big")+cmd("PING")), out[:0])
			require.Len(t, out, len("$4194304\r\n")+size/2+2+7)
		})
	}
}

// TestLargeMsetLinear: the values of an MSET arriving in many reads are
// copied about once: the buffer sized for the first value is left to it
// (the parser keeps the argument) instead of being copied into a larger
// one for the second.
func TestLargeMsetLinear(t *testing.T) {
	const size = 4 << 20
	clk := &fakeClock{ns: 1}
	budget := 64 << 20
	s := &session{db: newDB(clk.now), p: newRESPParser(64<<20, 1024, 128<<20), budget: &budget}
	x, y := strings.Repeat("x", size), strings.Repeat("y", size)
	stream := []byte(cmd("MSET", "a", x, "b", y) + cmd("PING"))
	var out []byte
	for len(stream) > 0 {
		n := min(len(stream), 16<<10)
		out, _ = s.feed(stream[:n], out)
		stream = stream[n:]
	}
	require.Equal(t, "+OK\r\n+PONG\r\n", string(out))
	assert.Less(t, s.in.copied, int64(2*size+64<<10), "bytes copied into the input buffer for two %d-byte values", size)
	assert.Equal(t, 64<<20, budget, "the budget is given back")
	out, _ = s.feed([]byte(cmd("SET", "c", "z")+cmd("GET", "a")+cmd("GET", "b")), out[:0])
	assert.True(t, string(out) == "+OK\r\n"+"$4194304\r\n"+x+"\r\n"+"$4194304\r\n"+y+"\r\n", "the values read back whole")
}

// BenchmarkLargeSet feeds a 63 MiB SET in 16 KiB reads; copied-B/B is the
// bytes copied into the input buffer per value byte.
func BenchmarkLargeSet(b *testing.B) {
	const size = 63 << 20
	reads := bigSet(size)
	b.SetBytes(size)
	var copied int64
	for b.Loop() {
		clk := &fakeClock{ns: 1}
		budget := 256 << 20
		s := &session{db: newDB(clk.now), p: newRESPParser(64<<20, 1024, 128<<20), budget: &budget}
		var out []byte
		for _, r := range reads {
			out, _ = s.feed(r, out)
		}
		if string(out) != "+OK\r\n+PONG\r\n" {
			b.Fatalf("replies %q", out)
		}
		copied = s.in.copied
	}
	b.ReportMetric(float64(copied)/size, "copied-B/B")
}
