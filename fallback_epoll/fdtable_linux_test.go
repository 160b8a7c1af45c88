package epoll

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestFDTable: records by fd, below and above the slice's bound, survive
// growth and go on deletion; fds never set read as nil.
func TestFDTable(t *testing.T) {
	var tab fdTable
	fds := []int{0, 3, 63, 64, 1000, fdTableLow - 1, fdTableLow, fdTableLow + 7, 1 << 30}
	recs := map[int]*fdState{}
	for _, fd := range fds {
		assert.Nil(t, tab.get(fd), "fd %d before set", fd)
		recs[fd] = &fdState{fd: fd}
		tab.set(fd, recs[fd])
	}
	for _, fd := range fds {
		assert.Same(t, recs[fd], tab.get(fd), "fd %d", fd)
	}
	for _, fd := range []int{1, 65, 999, fdTableLow + 1, -1} {
		assert.Nil(t, tab.get(fd), "fd %d never set", fd)
	}
	for _, fd := range fds {
		tab.del(fd)
		assert.Nil(t, tab.get(fd), "fd %d after del", fd)
	}
	tab.del(5000) // never set, beyond the slice: nothing happens
	assert.LessOrEqual(t, len(tab.low), fdTableLow, "the slice stops at its bound")
}
