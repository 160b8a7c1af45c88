package loop

import (
	"time"

	epoll "github.com/ringmachine/ringmachine/fallback_epoll"
)

var _ backend = (*epollBackend)(nil)

// epollBackend adapts epoll.Poller to the backend contract.
type epollBackend struct {
	p     *epoll.Poller
	cqes  []epoll.Completion
	comp  completion
	timeo time.Duration
}

func newEpollBackend() (*epollBackend, error) {
	p, err := epoll.New(epoll.Options{})
	if err != nil {
		return nil, err
	}
	return &epollBackend{p: p, cqes: make([]epoll.Completion, 256)}, nil
}

func (b *epollBackend) kind() Backend { return Epoll }

func (b *epollBackend) wake() error { return b.p.Wake() }

func (b *epollBackend) inFlight() int { return b.p.InFlight() }

func (b *epollBackend) poll(timeout time.Duration, dispatch func(*completion)) error {
	n, err := b.p.Wait(timeout, b.cqes)
	for i := range b.cqes[:n] {
		c := &b.cqes[i]
		b.comp = completion{tok: c.UserData, res: c.Res, flags: c.Flags, buf: c.Buf}
		dispatch(&b.comp)
		*c = epoll.Completion{}
	}
	b.comp = completion{}
	return err
}

func (b *epollBackend) close() error {
	return b.p.Close()
}
