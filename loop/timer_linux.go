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
	if s.inactTimer == nil {
		s.inactTimer = new(Timer)
	}
	l.armInternalTimerAt(s.inactTimer, s.lastAct+int64(d+inactivitySlack), func() {
		if s.closed() || s.inact == 0 {
			return
		}
		if idle := time.Duration(l.now - s.lastAct); idle < s.inact {
			l.armInactivity(s, s.inact)
			return
		}
		l.closeSock(s, conn.ErrInactivityTimeout)
	})
}

func (s *sock) SetInactivityTimeout(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("loop: negative inactivity timeout %v", d)
	}
	s.inact = d
	s.lastAct = s.l.monotonic()
	s.inactTimer.Cancel()
	if d > 0 && !s.closed() && !s.connecting() {
		s.l.armInactivity(s, d)
	}
	return nil
}

func (s *sock) InactivityTimeout() time.Duration { return s.inact }
