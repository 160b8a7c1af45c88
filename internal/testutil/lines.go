package testutil

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lines is an io.Writer that records each line written to it with the time
// it was completed, measured from NewLines: a program's standard output
// with timestamps, for tests that check a schedule. Safe for concurrent use.
type Lines struct {
	mu      sync.Mutex
	start   time.Time
	partial []byte
	lines   []Line
}

// Line is one line of output, without its newline, and when it was written.
type Line struct {
	Text string
	At   time.Duration
}

// NewLines returns an empty Lines whose clock starts now.
func NewLines() *Lines { return &Lines{start: time.Now()} }

// Write records the complete lines in p; a trailing partial line waits for
// the rest.
func (w *Lines) Write(p []byte) (int, error) {
	at := time.Since(w.start)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := strings.IndexByte(string(w.partial), '\n')
		if i < 0 {
			break
		}
		w.lines = append(w.lines, Line{Text: string(w.partial[:i]), At: at})
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// Lines returns the complete lines written so far.
func (w *Lines) Lines() []Line {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Line(nil), w.lines...)
}

// String returns everything written so far, as written.
func (w *Lines) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, l := range w.lines {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	b.Write(w.partial)
	return b.String()
}

// TickRun describes a tutorial run for CheckTicks: a periodic timer of
// Interval prints Tick (re-armed from when it ran, so it drifts, as
// EventMachine's and loop.PeriodicTimer do) until a one-shot timer armed
// with it, and before its re-arms, ends the ticks at End intervals
// (cancelling it or stopping the loop); one-shot timers print Tail[i] at
// TailAt[i] intervals, End or later.
type TickRun struct {
	Interval time.Duration
	Tick     string
	End      int
	Tail     []string
	TailAt   []int
}

// CheckTicks checks one run's output against the timer semantics, using
// when each line was written: only ticks, then the tail in order; nothing
// early (the k-th tick at k intervals or later, each tail line at its time
// or later); at most End-1 ticks. Fewer ticks are right only if the loop
// really ran late: the next tick was due at the last one's time plus an
// interval, so it lost the race with the timer at End only if the last
// tick came End-1 intervals in or later. Failures are reported
// on t. It returns the number of ticks and whether that was all of them,
// the run the tutorial describes; a run that was late proves the timers
// right but not the schedule, so the caller runs it again.
func CheckTicks(t testing.TB, lines []Line, r TickRun) (ticks int, full bool) {
	t.Helper()
	all := r.End - 1
	for ticks < len(lines) && lines[ticks].Text == r.Tick {
		ticks++
	}
	var got []string
	for _, l := range lines[ticks:] {
		got = append(got, l.Text)
	}
	if !slices.Equal(got, r.Tail) {
		t.Errorf("after %d ticks: lines %q, want %q", ticks, got, r.Tail)
		return ticks, false
	}
	for k, l := range lines[:ticks] {
		if due := time.Duration(k+1) * r.Interval; l.At < due {
			t.Errorf("tick %d at %v, before it was due (%v)", k+1, l.At, due)
		}
	}
	for i, l := range lines[ticks:] {
		if due := time.Duration(r.TailAt[i]) * r.Interval; l.At < due {
			t.Errorf("%q at %v, before it was due (%v)", l.Text, l.At, due)
		}
	}
	switch {
	case ticks > all:
		t.Errorf("%d ticks, at most %d fit before the timer at %d intervals", ticks, all, r.End)
	case ticks == 0:
		t.Errorf("no tick, though the first was due before the timer at %d intervals", r.End)
	case ticks < all:
		late := lines[ticks-1].At
		if min := time.Duration(all) * r.Interval; late < min {
			t.Errorf("%d ticks, the last at %v: the next was due before the timer at %d intervals, which won (a late tick needs the last one at %v or later)",
				ticks, late, r.End, min)
		}
	}
	return ticks, ticks == all
}
