package loop

import (
	"fmt"
	"time"

	"github.com/ringmachine/ringmachine/conn"
)

// The connections' inactivity timers, on the loop's timer heap.

// armInactivity arms the inactivity timer of s. Activity only stores
// lastAct; the timer re-arms itself for the remainder when it fires early,
// so traffic costs no heap operation.
func (l *Loop) armInactivity(s *sock, d time.Duration) {
	// inactivitySlack makes the timeout never early as measured by a caller
	// that reads the clock just after the activity (or the
	// SetInactivityTimeout) the loop stamped; it stays well within the
	// documented d plus one loop iteration.
	const inactivitySlack = time.Millisecond
	if s.inact == nil {
		s.inact = &inactivity{d: d}
	}
	l.armInternalTimerAt(&s.inact.t, s.lastAct+int64(d+inactivitySlack), func() {
		if s.closed() || s.inact.d == 0 {
			return
		}
		if idle := time.Duration(l.now - s.lastAct); idle < s.inact.d {
			l.armInactivity(s, s.inact.d)
			return
		}
		l.closeSock(s, conn.ErrInactivityTimeout)
	})
}

func (s *sock) SetInactivityTimeout(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("loop: negative inactivity timeout %v", d)
	}
	s.lastAct = s.l.monotonic()
	if s.inact == nil {
		if d == 0 {
			return nil
		}
		s.inact = new(inactivity)
	}
	s.inact.d = d
	s.inact.t.Cancel()
	if d > 0 && !s.closed() && !s.connecting() {
		s.l.armInactivity(s, d)
	}
	return nil
}

func (s *sock) InactivityTimeout() time.Duration {
	if s.inact == nil {
		return 0
	}
	return s.inact.d
}
