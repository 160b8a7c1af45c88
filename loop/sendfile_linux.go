package loop

import (
	"fmt"
	"os"

	"github.com/ringmachine/ringmachine/conn"
)

// SendFile: file segments queued between the bytes of a stream, each sent
// by the engine's splice once the bytes before it are.

type fileSeg struct {
	f    *os.File
	pipe *proxyPipe  // instead of f: a proxy's pipe (proxy_linux.go)
	px   *proxyState // the pipe's proxy
	at   int64       // outSeq when queued
	off  int64
	n    int64 // bytes left
}

func (s *sock) SendFile(path string, offset, n int64) error {
	if s.kind != sockStream {
		return conn.ErrNotStream
	}
	if s.closing() || s.wrClosed || s.closed() {
		return s.sendRefused()
	}
	if offset < 0 {
		return fmt.Errorf("loop: SendFile: negative offset %d", offset)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	size := st.Size() - offset
	if n >= 0 && n < size {
		size = n
	}
	if size <= 0 {
		f.Close()
		return nil
	}
	s.files = append(s.files, &fileSeg{f: f, at: s.outSeq, off: offset, n: size})
	if !s.connecting() {
		s.l.markDirty(s)
	}
	return nil
}

// submitSendFile sends the next part of the first file segment.
func (l *Loop) submitSendFile(s *sock) {
	f := s.files[0]
	n := int(min(f.n, 1<<30))
	if err := l.be.sendFile(s.fd, int(f.f.Fd()), f.off, n, s.tok(opSendFile)); err != nil {
		l.closeSock(s, l.opError("sendfile", s, err))
		return
	}
	s.ops++
	s.sendInFlight = true
}

func (l *Loop) onSendFile(s *sock, c *completion) {
	s.sendInFlight = false
	if s.closed() {
		return
	}
	if errRetry(c.Res) {
		l.afterSend(s) // nothing sent (see errRetry): the segment goes again
		return
	}
	if c.Res < 0 {
		l.closeSock(s, l.opError("sendfile", s, errnoOf(c.Res)))
		return
	}
	f := s.files[0]
	f.off += int64(c.Res)
	f.n -= int64(c.Res)
	s.stats.BytesOut += uint64(c.Res)
	s.lastAct = l.now
	if f.n <= 0 || c.Res == 0 { // done, or the file shrank
		f.f.Close()
		s.files[0] = nil
		s.files = s.files[1:]
		if len(s.files) == 0 {
			s.files = nil
		}
	}
	l.afterSend(s)
}
