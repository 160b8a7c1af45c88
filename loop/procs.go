package loop

import (
	"runtime"
	"sync"
)

// procs keeps a second P for a process whose GOMAXPROCS is 1 while loops
// run (see Options.FixedGOMAXPROCS). A loop holds its P while it runs and
// blocks in a system call when idle; with no other P, the scheduler hands
// the loop's P to a new spinning thread at each such block, and sysmon
// wakes at its shortest interval, all on the one CPU.
var procs struct {
	mu     sync.Mutex
	raised bool // Run raised GOMAXPROCS from 1 to 2 (never taken back)
}

// raiseProcs raises GOMAXPROCS from 1 to 2. It never lowers it: that would
// stop the world while other loops serve, for nothing gained.
func raiseProcs() {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	if runtime.GOMAXPROCS(0) == 1 {
		runtime.GOMAXPROCS(2)
		procs.raised = true
	}
}

// usableCPUs is GOMAXPROCS as the user or the runtime set it, without the
// P Run added: the default number of loops of a group.
func usableCPUs() int {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	n := runtime.GOMAXPROCS(0)
	if procs.raised && n == 2 {
		return 1
	}
	return n
}
