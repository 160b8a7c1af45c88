package pool

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// workerFrame identifies a pool worker in a goroutine dump.
const workerFrame = "ringmachine/pool.(*Pool).worker"

// requireNoWorkers fails unless every worker goroutine has exited, allowing a short
// window for goroutines that have called wg.Done but not yet returned.
func requireNoWorkers(t *testing.T) {
	t.Helper()
	var dump string
	ok := assert.Eventually(t, func() bool {
		buf := make([]byte, 1<<20)
		dump = string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(dump, workerFrame)
	}, 5*time.Second, time.Millisecond)
	if !ok {
		t.Fatalf("worker goroutines left behind:\n%s", dump)
	}
}

// loopSim stands in for the loop: Post queues completions, and one goroutine runs them.
type loopSim struct {
	ch    chan func()
	wg    sync.WaitGroup
	posts atomic.Int64
}

func newLoopSim() *loopSim {
	l := &loopSim{ch: make(chan func(), 1024)}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for done := range l.ch {
			done()
		}
	}()
	return l
}

func (l *loopSim) post(done func()) { l.posts.Add(1); l.ch <- done }

// stop waits until every posted completion has run. Call it after Pool.Close.
func (l *loopSim) stop() { close(l.ch); l.wg.Wait() }

// newPool returns a pool whose Close and leak check run at the end of the test.
func newPool(t *testing.T, opts Options) *Pool {
	t.Helper()
	p, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, p.Close())
		requireNoWorkers(t)
	})
	return p
}

func TestNew(t *testing.T) {
	post := func(func()) {}
	tests := []struct {
		name    string
		opts    Options
		wantErr string
		workers int
	}{
		{name: "defaults", opts: Options{Post: post}, workers: DefaultWorkers},
		{name: "workers", opts: Options{Post: post, Workers: 3, MaxQueue: 10}, workers: 3},
		{name: "nil post", opts: Options{Workers: 3}, wantErr: "pool: Options.Post is nil"},
		{name: "negative workers", opts: Options{Post: post, Workers: -1}, wantErr: "pool: Options.Workers is negative (-1)"},
		{name: "negative queue", opts: Options{Post: post, MaxQueue: -2}, wantErr: "pool: Options.MaxQueue is negative (-2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.opts)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				assert.Nil(t, p)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.workers, p.workers)
			assert.Equal(t, Stats{}, p.Stats(), "no worker before the first Submit")
			require.NoError(t, p.Close())
		})
	}
}

func TestEveryJobOnceEveryDoneOnce(t *testing.T) {
	const (
		submitters = 8
		perSub     = 100_000 / submitters
		total      = submitters * perSub
	)
	l := newLoopSim()
	p := newPool(t, Options{Post: l.post})
	ran := make([]atomic.Int32, total)
	done := make([]atomic.Int32, total)
	var wg sync.WaitGroup
	for s := range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perSub {
				i := s*perSub + k
				err := p.Submit(func() func() {
					ran[i].Add(1)
					if i%10 == 9 {
						return nil // nothing to report: must not be posted
					}
					return func() { done[i].Add(1) }
				})
				if !assert.NoError(t, err) {
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool { return p.Stats().Completed == total }, 30*time.Second, time.Millisecond)
	require.NoError(t, p.Close())
	l.stop()

	for i := range total {
		require.Equal(t, int32(1), ran[i].Load(), "job %d runs", i)
		want := int32(1)
		if i%10 == 9 {
			want = 0
		}
		require.Equal(t, want, done[i].Load(), "done %d posts", i)
	}
	assert.Equal(t, int64(total-total/10), l.posts.Load())
	st := p.Stats()
	assert.Equal(t, Stats{Completed: total}, st)
}

func TestConcurrencyBounded(t *testing.T) {
	const workers, jobs = 4, 400
	p := newPool(t, Options{Workers: workers, Post: func(func()) {}})
	var cur, peak atomic.Int32
	var wg sync.WaitGroup
	wg.Add(jobs)
	for range jobs {
		require.NoError(t, p.Submit(func() func() {
			defer wg.Done()
			n := cur.Add(1)
			for {
				m := peak.Load()
				if n <= m || peak.CompareAndSwap(m, n) {
					break
				}
			}
			assert.LessOrEqual(t, p.Stats().Workers, workers)
			time.Sleep(50 * time.Microsecond)
			cur.Add(-1)
			return nil
		}))
	}
	wg.Wait()
	assert.LessOrEqual(t, peak.Load(), int32(workers))
	assert.Positive(t, peak.Load())
	assert.LessOrEqual(t, p.Stats().Workers, workers)
}

// blockers submits n jobs that block until release is closed and waits until they
// all run.
func blockers(t *testing.T, p *Pool, n int, release <-chan struct{}, posted func()) {
	t.Helper()
	for range n {
		require.NoError(t, p.Submit(func() func() {
			<-release
			return posted
		}))
	}
	require.Eventually(t, func() bool { return p.Stats().Running == n }, 10*time.Second, time.Millisecond)
}

func TestCloseWaitsAndDrops(t *testing.T) {
	var posted atomic.Int32
	p := newPool(t, Options{Workers: 2, Post: func(done func()) { done() }})
	release := make(chan struct{})
	blockers(t, p, 2, release, func() { posted.Add(1) })

	var dropRan atomic.Int32
	for range 5 {
		require.NoError(t, p.Submit(func() func() { dropRan.Add(1); return nil }))
	}
	assert.Equal(t, 5, p.Stats().Queued)

	closed := make(chan struct{})
	go func() { _ = p.Close(); close(closed) }()
	require.Eventually(t, func() bool { return p.Stats().Dropped == 5 }, 10*time.Second, time.Millisecond)
	select {
	case <-closed:
		t.Fatal("Close returned while jobs were running")
	case <-time.After(20 * time.Millisecond):
	}
	require.ErrorIs(t, p.Submit(func() func() { return nil }), ErrClosed, "closing pool refuses work")

	close(release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the running jobs finished")
	}
	assert.Equal(t, int32(2), posted.Load(), "running jobs' completions posted before Close returns")
	assert.Zero(t, dropRan.Load(), "dropped jobs never run")
	requireNoWorkers(t)
	assert.Equal(t, Stats{Completed: 2, Dropped: 5}, p.Stats())
}

func TestSubmitErrors(t *testing.T) {
	p := newPool(t, Options{Post: func(func()) {}})
	require.ErrorIs(t, p.Submit(nil), ErrNilJob)
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "Close is idempotent")
	ran := false
	require.ErrorIs(t, p.Submit(func() func() { ran = true; return nil }), ErrClosed)
	assert.False(t, ran)

	// Concurrent Closes all wait and succeed.
	q := newPool(t, Options{Post: func(func()) {}})
	require.NoError(t, q.Submit(func() func() { return nil }))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); assert.NoError(t, q.Close()) }()
	}
	wg.Wait()
}

func TestErrFull(t *testing.T) {
	p := newPool(t, Options{Workers: 1, MaxQueue: 2, Post: func(func()) {}})
	release := make(chan struct{})
	defer close(release)
	blockers(t, p, 1, release, nil)
	noop := func() func() { return nil }
	require.NoError(t, p.Submit(noop))
	require.NoError(t, p.Submit(noop))
	require.ErrorIs(t, p.Submit(noop), ErrFull)
	assert.Equal(t, 2, p.Stats().Queued)
}

func TestPanic(t *testing.T) {
	t.Run("OnPanic", func(t *testing.T) {
		got := make(chan func(), 4)
		var gotV any
		var gotStack []byte
		p := newPool(t, Options{
			Workers: 1,
			Post:    func(done func()) { got <- done },
			OnPanic: func(v any, stack []byte) func() {
				gotV, gotStack = v, stack
				return func() {}
			},
		})
		require.NoError(t, p.Submit(func() func() { panic("boom") }))
		(<-got)()
		assert.Equal(t, "boom", gotV)
		assert.Contains(t, string(gotStack), "TestPanic")
		// The worker survived.
		require.NoError(t, p.Submit(func() func() { return func() {} }))
		(<-got)()
		require.NoError(t, p.Close())
		assert.Equal(t, Stats{Completed: 2, Panics: 1}, p.Stats())
	})
	t.Run("default re-panics where done runs", func(t *testing.T) {
		got := make(chan func(), 1)
		p := newPool(t, Options{Post: func(done func()) { got <- done }})
		cause := errors.New("disk on fire")
		require.NoError(t, p.Submit(func() func() { panic(cause) }))
		done := <-got
		var pe *PanicError
		func() {
			defer func() { pe, _ = recover().(*PanicError) }()
			done()
		}()
		require.NotNil(t, pe)
		assert.Equal(t, cause, pe.Value)
		require.ErrorIs(t, pe, cause)
		assert.Contains(t, pe.Error(), "pool: job panicked: disk on fire")
		assert.Contains(t, string(pe.Stack), "TestPanic")
	})
	t.Run("OnPanic panics", func(t *testing.T) {
		var posts atomic.Int32
		p := newPool(t, Options{
			Workers: 1,
			Post:    func(func()) { posts.Add(1) },
			OnPanic: func(any, []byte) func() { panic("again") },
		})
		require.NoError(t, p.Submit(func() func() { panic("boom") }))
		require.NoError(t, p.Submit(func() func() { return func() {} }))
		require.Eventually(t, func() bool { return p.Stats().Completed == 2 }, 10*time.Second, time.Millisecond)
		require.NoError(t, p.Close())
		assert.Equal(t, int32(1), posts.Load())
		assert.Equal(t, Stats{Completed: 2, Panics: 1}, p.Stats())
	})
}

func TestGoexit(t *testing.T) {
	var posts atomic.Int32
	p := newPool(t, Options{Workers: 1, Post: func(func()) { posts.Add(1) }})
	release := make(chan struct{})
	require.NoError(t, p.Submit(func() func() { <-release; runtime.Goexit(); return nil }))
	require.NoError(t, p.Submit(func() func() { return func() {} }))
	close(release)
	require.Eventually(t, func() bool { return p.Stats().Completed == 2 }, 10*time.Second, time.Millisecond)
	require.NoError(t, p.Close())
	assert.Equal(t, int32(1), posts.Load(), "the job queued behind Goexit still runs")
	assert.Equal(t, Stats{Completed: 2}, p.Stats())
}

func TestSubmitFromJob(t *testing.T) {
	l := newLoopSim()
	p := newPool(t, Options{Workers: 2, Post: l.post})
	var inner atomic.Int32
	require.NoError(t, p.Submit(func() func() {
		assert.NoError(t, p.Submit(func() func() { inner.Add(1); return nil }))
		return nil
	}))
	require.Eventually(t, func() bool { return inner.Load() == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, p.Close())
	l.stop()
}
